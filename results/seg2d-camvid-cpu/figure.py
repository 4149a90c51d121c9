"""The prediction picture of the short CPU run: 3 CamVid test images, ground truth, plain and Pool Skip.

PYTHONPATH=src python3 results/seg2d-camvid-cpu/figure.py   (from the repository root, after run.sh)
"""

from pathlib import Path

import torch

from poolskip.engine.trainer import restore
from poolskip.experiments.seg_figure import predict_examples, save_prediction_figure

torch.set_num_threads(1)
here = Path(__file__).parent
models = {}
for name, run in (("plain", "pool_skip_false"), ("Pool Skip", "pool_skip_true")):
    model, task, _ = restore(here / "runs" / run / "seed0", "last", "cpu")
    models[name] = model
examples = predict_examples(task, models, count=3, seed=0)
print(save_prediction_figure(examples, task.data.palette, here / "predictions.png"))
