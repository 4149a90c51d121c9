"""The GPU scripts (benchmarks/gpu/) on the CPU at tiny size (the GPU run itself needs a GPU)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu" / "compare.py"


def _module():
    import sys

    spec = importlib.util.spec_from_file_location("gpu_compare", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
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


def test_pack_keeps_the_jpeg_bytes_and_decodes_as_the_image_folder(tmp_path):
    mod = _module()
    data = _image_folder(tmp_path / "data")
    assert mod.main(["pack", "--data-dir", str(data), "--out", str(tmp_path / "packed")]) == 0
    packed = tmp_path / "packed" / mod.PACKED_NAME
    from_pack, from_files = mod.load(packed), mod.load(data)
    for k in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(from_pack[k], from_files[k]), k
    assert from_pack["train_x"].shape == (16, 3, 32, 32) and from_pack["train_y"].tolist() == [0] * 8 + [1] * 8
    raw = torch.load(packed, weights_only=True)
    first = sorted((data / "train" / "cat").iterdir())[0].read_bytes()
    import zlib

    assert zlib.decompress(raw["train_zlib"].numpy().tobytes())[: len(first)] == first  # the file's bytes as is
    with pytest.raises(SystemExit, match="not a folder"):
        mod.main(["pack", "--data-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])


def test_tiny_run_trains_every_variant_and_seed_and_writes_each_runs_files(tmp_path):
    """The GPU script end to end on the CPU at tiny size: MobileNet and ResNet18, plain / Pool Skip / widened
    to Pool Skip's MACs, 2 seeds; the CUDA tests run (skipped here); per-run config, metrics, summary."""
    import tarfile

    mod = _module()
    data = _image_folder(tmp_path / "data")
    mod.main(["pack", "--data-dir", str(data), "--out", str(tmp_path / "packed")])
    out = tmp_path / "out"
    argv = ["run", "--data", str(tmp_path / "packed" / mod.PACKED_NAME), "--out", str(out), "--tiny", "--tar"]
    assert mod.main(argv + ["--runs-dir", str(tmp_path / "runs")]) == 0
    expected = ["cuda-tests.txt", "env.txt", "results.json", "runs.tar.gz", "table.md"]
    assert sorted(p.name for p in out.iterdir()) == expected  # at most 8 files: what the device tool returns
    results = json.loads((out / "results.json").read_text())
    names = [f"{m}-{v}" for m in ("mobilenet", "resnet18") for v in ("plain", "pool_skip", "wide")]
    assert [(r["name"], r["seed"]) for r in results["runs"]] == [(n, s) for s in (0, 1) for n in names]
    by = {r["name"]: r for r in results["runs"]}
    for m in ("mobilenet", "resnet18"):  # the widened plain network costs what Pool Skip costs, within a width step
        plain, ps, wide = by[f"{m}-plain"], by[f"{m}-pool_skip"], by[f"{m}-wide"]
        assert wide["width"] > plain["width"] and plain["macs"] < ps["macs"]
        assert abs(wide["macs"] - ps["macs"]) < abs(plain["macs"] - ps["macs"]) / 4
    with tarfile.open(out / "runs.tar.gz") as tar:
        files = set(tar.getnames())
    for n in names:
        for f in ("config.json", "metrics.jsonl", "summary.json"):
            assert f"runs/{n}/seed1/{f}" in files
    metrics = (tmp_path / "runs" / "resnet18-pool_skip" / "seed0" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in metrics] == [1]
    assert "passed" in (out / "cuda-tests.txt").read_text() or "skipped" in (out / "cuda-tests.txt").read_text()
    assert "CUDA tests: exit 0" in (out / "env.txt").read_text()
    table = (out / "table.md").read_text()
    for n in names:
        m, v = n.split("-")
        assert f"| {m} | {v} |" in table
    assert "not the paper's 200-epoch protocol" in table and "pool_skip − wide" in table


def test_segmentation_script_packs_the_data_and_runs_both_parts_at_tiny_size(tmp_path):
    """benchmarks/gpu/pack_seg_data.py then benchmarks/gpu/seg.sh --tiny: both comparisons, their reports and
    pictures in at most 8 files at the top of OUT (what the device tool returns)."""
    import os
    import subprocess

    from seg_layouts import make_camvid

    gpu = SCRIPT.parent
    spec = importlib.util.spec_from_file_location("pack_seg_data", gpu / "pack_seg_data.py")
    pack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pack)
    camvid = make_camvid(tmp_path / "camvid", counts={"train": 3, "test": 2}, size=(25, 33))
    args = ["--camvid", str(camvid), "--out", str(tmp_path / "data")]
    three_d = all(importlib.util.find_spec(m) for m in ("monai", "nibabel", "dynamic_network_architectures"))
    if three_d:
        import volumetric_data as vd

        args += ["--hippocampus", str(vd.decathlon(tmp_path / "hippo", n=5))]
    assert pack.main(args) == 0
    assert len(list((tmp_path / "data" / "camvid" / "train" / "images").glob("*.jpg"))) == 3
    out = tmp_path / "out"
    env = {**os.environ, "RUNS": str(tmp_path / "runs")}
    proc = subprocess.run(
        ["bash", str(gpu / "seg.sh"), str(tmp_path / "data"), str(out), "--tiny"],
        capture_output=True, text=True, env=env, timeout=600, cwd=gpu.parents[1],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8 and {"env.txt", "log.txt", "seg2d.md", "seg2d.png", "summaries.json"} <= set(files)
    assert "| deeplabv3plus_mobilenet (output_stride=16) | segfolder:camvid | miou" in (out / "seg2d.md").read_text()
    summaries = json.loads((out / "summaries.json").read_text())
    assert {"2d/pool_skip_false/seed0", "2d/pool_skip_true/seed0"} <= set(summaries)
    assert "FAILED" not in (out / "log.txt").read_text()
    if three_d:
        seg3d = (out / "seg3d.md").read_text()  # Table 3's metrics: Dice (monitored), NSD and IoU per placement
        assert "| nnunet | Tiny | dice (higher is better) | plain |" in seg3d and "| NSD |" in seg3d
        assert (out / "seg3d.png").is_file()
        assert {"3d/nnunet_pool_skip_false/seed0", "3d/nnunet_pool_skip_true/seed0"} <= set(summaries)


def test_a_failed_run_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    """One run that fails (out of memory, say) is named in results.json and table.md, the command exits 1, and
    every other run is trained and packed (the tarball is rewritten after each run, so a command stopped at its
    time limit still returns the runs it finished)."""
    import tarfile

    mod = _module()
    data = _image_folder(tmp_path / "data", per_class=4)
    real = mod.train_one

    def train_one(data, v, seed, *args):
        if v.name == "mobilenet-wide" and seed == 0:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(data, v, seed, *args)

    monkeypatch.setattr(mod, "train_one", train_one)
    out = tmp_path / "out"
    argv = ["run", "--data", str(data), "--out", str(out), "--tiny", "--tar", "--skip-tests", "--seeds", "1"]
    assert mod.main(argv) == 1
    results = json.loads((out / "results.json").read_text())
    assert results["failed"] == [
        {"name": "mobilenet-wide", "seed": 0, "error": "OutOfMemoryError: CUDA out of memory (simulated)"}
    ]
    assert len(results["runs"]) == 5
    assert "mobilenet-wide seed 0 failed: OutOfMemoryError" in (out / "table.md").read_text()
    with tarfile.open(out / "runs.tar.gz") as tar:
        assert "runs/resnet18-wide/seed0/summary.json" in tar.getnames()
    assert not list(out.glob("*.tmp"))
