"""DeepLabv3+ with Pool Skip through the CLI on tiny CamVid: train, an interrupted run resumed exactly, eval."""

import json
import math

import pytest
import yaml

from interrupt import Interrupt, StopAfter
from poolskip.cli import main
from poolskip.engine import make_config, train
from seg_layouts import make_camvid

ARGS = [
    "--recipe", "deeplab_camvid", "--epochs", "2", "--batch-size", "3", "--device", "cpu", "--pool-skip", "true",
    "--set", "crop_size=[17, 21]", "eval_every=1", "eval_batch_size=2", "threads=1", "deterministic=true",
]  # fmt: skip
TIMING = {"epoch_seconds", "eval_seconds", "samples_per_s"}


def records(run):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def test_train_resume_and_eval_through_the_cli(tmp_path, capsys):
    data = make_camvid(tmp_path / "camvid", counts={"train": 6, "test": 2}, size=(25, 33))
    common = [*ARGS, "--data-dir", str(data), "--set", f"cache_dir={tmp_path / 'cache'}", "--out-dir", str(tmp_path)]
    assert main(["train", *common, "--run-name", "whole"]) == 0
    whole = tmp_path / "whole" / "seed0"
    summary = json.loads((whole / "summary.json").read_text())
    assert summary["monitor"]["metric"] == "miou" and summary["monitor"]["mode"] == "max"
    assert len(records(whole)) == 2 and len(records(whole)[-1]["class_iou"]) == 11

    # the same run interrupted after epoch 2 is recorded but before its checkpoint, resumed from the command line
    cfg = make_config(yaml.safe_load((whole / "config.yaml").read_text()))
    with pytest.raises(Interrupt):
        train(cfg, tmp_path / "cut", callbacks=[StopAfter(2)], log=lambda *a, **k: None)
    assert main(["train", "--resume", str(tmp_path / "cut")]) == 0
    assert records(tmp_path / "cut") == records(whole)

    capsys.readouterr()
    assert main(["eval", str(whole), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["miou"] == pytest.approx(summary["final"])


def test_report_draws_predictions_of_each_placement(tmp_path, capsys):
    data = make_camvid(tmp_path / "camvid", counts={"train": 3, "test": 2}, size=(25, 33))
    common = [*ARGS, "--data-dir", str(data), "--set", f"cache_dir={tmp_path / 'cache'}", "--out-dir", str(tmp_path)]
    common[common.index("--epochs") + 1] = "1"
    for variant in ("false", "true"):
        argv = [*common, "--run-name", f"v-{variant}"]
        argv[argv.index("--pool-skip") + 1] = variant
        assert main(["train", *argv]) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "v-false"), str(tmp_path / "v-true"), "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    row = "| deeplabv3plus_mobilenet (output_stride=16) | camvid | miou (higher is better) |"
    assert f"{row} plain |" in out and f"{row} Pool Skip (" in out
    assert "paper" not in out  # CamVid is not the paper's dataset, nor is one epoch its protocol
    picture = tmp_path / "rep" / "predictions_deeplabv3plus_mobilenet_output_stride_16_camvid.png"
    assert picture.read_bytes()[:4] == b"\x89PNG" and f"wrote {picture}" in out


def test_bf16_autocast_trains_and_evaluates_with_pool_skip_and_a_sliding_window(tmp_path):
    data = make_camvid(tmp_path / "camvid", counts={"train": 3, "test": 2}, size=(25, 33))
    argv = [*ARGS, "--data-dir", str(data), "--out-dir", str(tmp_path), "--run-name", "bf16"]
    argv[argv.index("--epochs") + 1] = "1"
    argv += ["--set", f"cache_dir={tmp_path / 'cache'}", "amp=bf16", "eval_window=[16, 20]"]
    assert main(["train", *argv]) == 0
    summary = json.loads((tmp_path / "bf16" / "seed0" / "summary.json").read_text())
    metrics = summary["final_metrics"]
    assert 0.0 <= metrics["miou"] <= 100.0 and math.isfinite(metrics["eval_loss"])
    assert yaml.safe_load((tmp_path / "bf16" / "seed0" / "config.yaml").read_text())["run"]["amp"] == "bf16"
