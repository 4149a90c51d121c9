"""The check in resume_check.txt (2026-12-02, 01:45 UTC): MobileNet Pool Skip seeds 1 and 2 were stopped after 2
of their 6 epochs and resumed from their epoch-2 checkpoints, and both ended worse than seed 0 (not resumed). Is
resuming this network exact? Its seed-1 config, cut to 1,024 training images and 3 epochs, deterministic: trained
straight, and trained with an interruption after epoch 2 (before its checkpoint, as tests/test_tasks.py's
StopAfter does) then resumed from epoch 1's checkpoint; the final weights compared. From the repository root:

    python3 results/repro-table1-quick-v2/timing/resume_check.py pool_skip det
"""

import sys
from pathlib import Path

import torch
import yaml

sys.path.insert(0, "tests")
from poolskip.engine import make_config, train  # noqa: E402
from test_tasks import Interrupt, StopAfter, same  # noqa: E402

torch.set_num_threads(1)
name, mode = sys.argv[1], sys.argv[2]  # e.g. pool_skip det
R = Path("results/repro-table1-quick-v2/table1-quick/runs")
cfg = yaml.safe_load((R / f"imagefolder-as-cifar10_MobileNet-width-8-_{name}/seed1/config.yaml").read_text())
cfg["data"]["train_subset"], cfg["optim"]["epochs"], cfg["run"]["deterministic"] = 1024, 3, mode == "det"
c = make_config(cfg)
out = Path(f"/tmp/resexp/{name}-{mode}")
quiet = {"log": lambda *a, **k: None}
whole = train(c, out / "whole", **quiet)
try:
    train(c, out / "cut", callbacks=[StopAfter(2)], **quiet)
except Interrupt:
    pass
resumed = train(c, out / "cut", resume=True, **quiet)
a = torch.load(out / "whole/checkpoints/last.pt", weights_only=True)["model"]
b = torch.load(out / "cut/checkpoints/last.pt", weights_only=True)["model"]
diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
print(name, mode, "whole", whole["final"], "resumed", resumed["final"], "same weights", same(a, b), "max |diff|", diff)
