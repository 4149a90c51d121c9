"""benchmarks/gpu/compare.py's logic on the CPU at tiny size (the GPU run itself needs a GPU)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "compare.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_compare", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _image_folder(root: Path, per_class: int = 8) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in ("cat", "dog"):
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / split / c / f"{i}.jpg")
    return root


def test_augment_crops_and_flips_within_the_padded_image():
    mod = _module()
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4) + 1
    out = mod.augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for i in range(2):  # every output pixel is zero padding or a pixel of the same image
        assert set(out[i].unique().tolist()) <= set(x[i].unique().tolist()) | {0.0}


def test_tiny_run_writes_table_and_results(tmp_path, capsys):
    mod = _module()
    data = _image_folder(tmp_path / "data")
    out = tmp_path / "out"
    assert mod.main(["--data-dir", str(data), "--out", str(out), "--tiny"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["variant"] for r in results["runs"]] == ["plain", "pool_skip"]
    assert results["runs"][1]["params"] > results["runs"][0]["params"]
    assert set(results["throughput"]) == {"plain", "pool_skip"}
    table = (out / "table.md").read_text()
    assert "| plain | 1 |" in table and "| pool_skip | 1 |" in table and "img/s" in table
    assert "not the paper's 200-epoch protocol" in table
    with pytest.raises(SystemExit, match="not a folder"):
        mod.main(["--data-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "o2"), "--tiny"])
