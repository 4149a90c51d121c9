"""The training engine on tiny runs: config and recipes, the schedule, run directories, NaN stops."""

import json

import pytest
import torch
import yaml

from poolskip.cli import main
from poolskip.engine import NonFiniteLoss, train
from poolskip.engine.config import ConfigError, OptimConfig, make_config, parse_set
from poolskip.engine.optim import lr_at, make_optimizer, param_groups
from poolskip.experiments.recipes import list_recipes, load_recipe

TINY = ["--model", "small_cnn", "--set", "model_kwargs={width: 4}", "batch_size=128", "threads=1"]


def tiny_run(tmp_path, *extra, name="r"):
    """Train the tiny CNN on digits; returns (exit code, the seed-0 run dir)."""
    argv = ["train", *TINY, *extra, "--out-dir", str(tmp_path), "--run-name", name]
    return main(argv), tmp_path / name / "seed0"


def test_unknown_keys_are_errors_that_name_the_key(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"'lrr'.*did you mean 'lr'"):
        make_config({"lrr": 0.1})
    with pytest.raises(ConfigError, match="'optim.epochs' expects an integer, got 'many'"):
        make_config({"epochs": "many"})
    with pytest.raises(ConfigError, match="'warmup'.*did you mean 'warmup_epochs'"):
        make_config(parse_set(["warmup=3"]))
    with pytest.raises(ConfigError, match="'optim.lrr'"):
        make_config({"optim": {"lrr": 1}})
    with pytest.raises(ConfigError, match="space after each colon"):
        parse_set(["model_kwargs={width:16}"])
    assert parse_set(["model_kwargs={width: 16}"]) == {"model_kwargs": {"width": 16}}
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 0.1\nnesterow: true\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*'nesterow'"):
        load_recipe(str(bad))
    assert main(["train", "--set", "batchsize=3"]) == 2
    assert "unknown config key 'batchsize'" in capsys.readouterr().err
    assert main(["train", "--model", "resnet19", "--out-dir", str(tmp_path)]) == 2
    assert "unknown model 'resnet19'" in capsys.readouterr().err
    assert main(["train", "--model", "poolskip.models.toy:nope", "--out-dir", str(tmp_path)]) == 2
    assert "cannot import nope" in capsys.readouterr().err


def test_config_is_grouped_and_every_spelling_reaches_the_same_key():
    cfg = make_config({"lr": 0.5}, {"optim.momentum": 0.8}, {"optim": {"epochs": 3}}, parse_set(["run.seed=4"]))
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.epochs, cfg.run.seed) == (0.5, 0.8, 3, 4)
    assert cfg.task == "classification" and cfg.options.crop_padding == 4  # the task's own section
    assert make_config({"cutout": 8}).options.cutout == make_config({"classification": {"cutout": 8}}).options.cutout
    # the nested form round-trips, and old flat configs (results/*/config.yaml) still read
    assert make_config(cfg.to_dict()) == cfg
    flat = {"dataset": "imagefolder", "data_dir": "d", "model": "resnet18", "model_kwargs": {"width": 16}}
    flat |= {"lr": 0.1, "milestones": [60], "mean": [0.5] * 3, "std": [0.2] * 3, "seed": 1, "run_name": None}
    old = make_config(flat)
    assert (old.data.data_dir, old.optim.milestones, old.options.mean, old.run.seed) == ("d", [60], [0.5] * 3, 1)
    # real coercion: ints to floats, YAML-1.1 strings to floats, list elements; not bools to numbers
    assert make_config({"lr": 1, "weight_decay": "5e-4"}).optim.weight_decay == 5e-4
    with pytest.raises(ConfigError, match="'optim.lr' expects a number"):
        make_config({"lr": True})
    with pytest.raises(ConfigError, match=r"'optim.milestones\[1\]' expects an integer"):
        make_config({"milestones": [1, "x"]})
    with pytest.raises(ConfigError, match="'task' must be one of"):
        make_config({"task": "nope"})
    # a registered model's own options are keys too (--set backbone_weights=PATH), merged into model_kwargs
    deeplab = {"task": "segmentation", "model": "deeplabv3plus_mobilenet", "model_kwargs": {"output_stride": 8}}
    seg = make_config(deeplab)
    seg = make_config(seg.to_dict(), parse_set(["backbone_weights=/w.pt"]))
    assert seg.model_kwargs == {"output_stride": 8, "backbone_weights": "/w.pt"}
    with pytest.raises(ConfigError, match="unknown config key 'backbone_weights'"):
        make_config({"model": "resnet18", "backbone_weights": "/w.pt"})


def test_run_files_are_strict_json():
    from poolskip.engine.rundir import strict_json

    record = {"miou": 50.0, "class_iou": [1.0, float("nan")], "x": {"y": float("inf")}}
    assert json.loads(json.dumps(strict_json(record)), parse_constant=pytest.fail) == {
        "miou": 50.0, "class_iou": [1.0, None], "x": {"y": None}
    }  # fmt: skip


def test_recipes_follow_the_papers_protocols():
    assert {"devries_taylor", "official", "digits"} <= set(list_recipes())
    dt = make_config(load_recipe("devries_taylor"))
    o, a = dt.optim, dt.options
    assert (o.optimizer, o.lr, o.momentum, o.nesterov, o.weight_decay) == ("sgd", 0.1, 0.9, True, 5e-4)
    assert (o.batch_size, o.epochs, o.milestones, o.gamma) == (128, 200, [60, 120, 160], 0.2)
    assert (a.crop_padding, a.flip, a.rotation, o.warmup_epochs) == (4, True, 0.0, 0.0)
    assert [round(m * 255, 1) for m in a.mean] == [125.3, 123.0, 113.9]
    assert [round(s * 255, 1) for s in a.std] == [63.0, 62.1, 66.7]
    of = make_config(load_recipe("official"))
    assert (of.optim.nesterov, of.optim.warmup_epochs, of.options.rotation) == (False, 1.0, 15.0)
    assert [round(m, 5) for m in of.options.mean] == [0.50708, 0.48655, 0.44092]
    assert [round(s, 5) for s in of.options.std] == [0.26733, 0.25644, 0.27615]
    # precedence: defaults < recipe < overrides, with YAML values from --set
    cfg = make_config(load_recipe("official"), {"epochs": 2}, parse_set(["milestones=[1, 2]", "pool_skip=true"]))
    assert (cfg.optim.epochs, cfg.optim.milestones, cfg.optim.nesterov, cfg.pool_skip) == (2, [1, 2], False, True)


def test_learning_rate_schedules():
    cfg = OptimConfig(lr=0.1, milestones=[2, 4], gamma=0.2)
    assert [round(lr_at(cfg, e, 0, 10), 6) for e in range(6)] == [0.1, 0.1, 0.02, 0.02, 0.004, 0.004]
    warm = OptimConfig(lr=0.1, warmup_epochs=1, milestones=[60])
    assert lr_at(warm, 0, 0, 10) == pytest.approx(0.01) and lr_at(warm, 0, 9, 10) == pytest.approx(0.1)
    assert lr_at(warm, 1, 0, 10) == 0.1
    cos = OptimConfig(lr=0.1, schedule="cosine", epochs=4, min_lr=0.0)
    assert lr_at(cos, 0, 0, 10) == pytest.approx(0.1) and lr_at(cos, 2, 0, 10) == pytest.approx(0.05)
    # poly, per iteration: lr * (1 - it / total) ** 0.9 (DeepLab); with warm-up it starts after the ramp
    poly = OptimConfig(lr=0.01, schedule="poly", power=0.9, epochs=3)
    assert [lr_at(poly, 1, s, 10) for s in (0, 5)] == [pytest.approx(0.01 * (1 - i / 30) ** 0.9) for i in (10, 15)]
    warm_poly = OptimConfig(lr=0.01, schedule="poly", epochs=3, warmup_epochs=1)
    assert lr_at(warm_poly, 0, 4, 10) == pytest.approx(0.005)
    assert lr_at(warm_poly, 2, 0, 10) == pytest.approx(0.01 * (1 - 10 / 20) ** 0.9)


def test_parameter_groups_take_learning_rate_multipliers_from_the_config():
    from torch import nn

    model = nn.Sequential()
    model.add_module("backbone", nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 1)))
    model.add_module("head", nn.Conv2d(4, 2, 1))
    groups = param_groups(model, {"backbone": 0.1, "backbone.1": 0.5})
    by_name = {g["name"]: (g["lr_mult"], len(g["params"])) for g in groups}
    assert by_name == {"backbone": (0.1, 2), "backbone.1": (0.5, 2), "rest": (1.0, 2)}  # longest prefix wins
    optimizer = make_optimizer(OptimConfig(lr=0.2, lr_mult={"backbone": 0.1}), model)
    from poolskip.engine.optim import set_lr

    set_lr(optimizer, 0.2)
    assert sorted(g["lr"] for g in optimizer.param_groups) == [pytest.approx(0.02), 0.2]
    with pytest.raises(ConfigError, match=r"names \['encoder'\], which match no parameter.*backbone, head"):
        param_groups(model, {"encoder": 0.1})


def test_a_run_writes_its_directory_and_evaluates(tmp_path, capsys):
    code, run = tiny_run(tmp_path, "--epochs", "2", "--pool-skip", "true")
    assert code == 0
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["optim"]["epochs"] == 2 and cfg["pool_skip"] is True and cfg["model_kwargs"] == {"width": 4}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert {"train_loss", "test_loss", "test_error", "lr", "epoch_seconds", "samples_per_s"} <= set(r)
        assert 0 <= r["test_error"] <= 100 and r["train_loss"] > 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["monitor"] == {"metric": "test_error", "mode": "min"}
    assert summary["final"] == records[-1]["test_error"] == summary["final_metrics"]["test_error"]
    assert summary["best"] == min(r["test_error"] for r in records)
    assert records[summary["best_epoch"] - 1]["test_error"] == summary["best"]
    assert (summary["placement"]["pool_skip"], summary["dataset"], summary["seed"]) == (True, "digits", 0)
    assert summary["versions"]["torch"] == torch.__version__ and summary["wall_seconds"] > 0
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == 2 and any(".pool_skip." in k for k in last["model"])
    assert (
        sum(v.numel() for k, v in last["model"].items() if "running" not in k and "tracked" not in k)
        == (summary["params"])
    )
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)  # weights only: no optimiser state
    assert "optimizer" not in best and "history" not in best and best["metric"] == {"test_error": summary["best"]}
    assert (run / "checkpoints" / "best.pt").stat().st_size < (run / "checkpoints" / "last.pt").stat().st_size
    assert list((run / "tb").glob("events.out.tfevents.*"))
    code, _ = tiny_run(tmp_path, "--epochs", "2")  # the same run dir again is refused, not overwritten
    assert code == 2

    capsys.readouterr()
    assert main(["eval", str(run / "checkpoints" / "last.pt"), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["test_error"] == pytest.approx(records[-1]["test_error"]) and evaluated["epoch"] == 2
    assert main(["eval", str(run), "--which", "best", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["test_error"] == pytest.approx(summary["best"]) and evaluated["epoch"] == summary["best_epoch"]
    assert main(["eval", str(tmp_path / "nope.pt")]) == 2


def test_eval_scores_a_checkpoint_as_the_run_did_and_names_what_it_read(tmp_path, capsys):
    """eval ran in fp32 what the run evaluated under bf16 (another number than summary.json's, no word), named a
    mid-epoch last.pt by its completed epoch, read last.pt when asked --which best of that file, and printed NaN,
    which is not JSON."""
    code, run = tiny_run(tmp_path, "--epochs", "2", "--set", "amp=bf16")
    assert code == 0
    summary = json.loads((run / "summary.json").read_text())
    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["test_loss"] == summary["final_metrics"]["test_loss"] and evaluated["amp"] == "bf16"
    assert main(["eval", str(run), "--json", "--amp", "none"]) == 0  # asked for: fp32
    assert json.loads(capsys.readouterr().out)["amp"] == "none"

    last = run / "checkpoints" / "last.pt"
    assert main(["eval", str(last), "--which", "best"]) == 2
    assert f"{last} is the last checkpoint, but --which best asks for the best one" in capsys.readouterr().err
    ck = torch.load(last, weights_only=True)
    torch.save({**ck, "step": 3}, tmp_path / "mid.pt")  # what a stop after 3 steps of epoch 3 leaves
    assert main(["eval", str(tmp_path / "mid.pt")]) == 0
    assert f"{tmp_path / 'mid.pt'} (epoch 2 + 3 steps of epoch 3, bf16): " in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "mid.pt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 3


def test_the_loop_evaluates_a_task_without_autograd(tmp_path):
    """Task.evaluate is called under torch.no_grad() (its contract): a task without a decorator of its own must
    not build graphs. The decorator once slid onto the function inserted above evaluate."""
    import contextlib

    from poolskip.engine.trainer import evaluate

    class Task:
        def evaluate(self, model, autocast):
            return {"grad": torch.is_grad_enabled()}

    assert evaluate(torch.nn.Linear(1, 1), Task(), contextlib.nullcontext) == {"grad": False}


def test_eval_json_is_strict_json(tmp_path, capsys, monkeypatch):
    from poolskip.commands import evaluate

    monkeypatch.setattr(evaluate, "evaluate_checkpoint", lambda *a, **k: {"iou_per_class": [1.0, float("nan")],
                        "epoch": 1, "step": 0, "amp": "none", "eval_seconds": 0.1})  # fmt: skip
    assert main(["eval", str(tmp_path / "x.pt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out, parse_constant=pytest.fail)["iou_per_class"] == [1.0, None]


def test_seeds_make_one_run_dir_each(tmp_path):
    assert main(["train", *TINY, "--epochs", "1", "--seeds", "3", "4", "--out-dir", str(tmp_path)]) == 0
    runs = sorted(tmp_path.glob("*/seed*/summary.json"))
    assert [json.loads(p.read_text())["seed"] for p in runs] == [3, 4]
    a, b = (torch.load(p.parent / "checkpoints" / "last.pt", weights_only=True)["model"] for p in runs)
    assert not torch.equal(a["0.weight"], b["0.weight"])


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    # the lr jumps by 1e30 after epoch 1 (past the config's checks, which refuse such a gamma): epoch 2 diverges
    cfg = make_config(
        {"model": "small_cnn", "model_kwargs": {"width": 4}, "batch_size": 128, "threads": 1, "epochs": 3,
         "milestones": [1]}
    )  # fmt: skip
    cfg.optim.gamma = 1e30
    run = tmp_path / "r" / "seed0"
    with pytest.raises(NonFiniteLoss) as caught:
        train(cfg, run, log=lambda *a, **k: None)
    err = str(caught.value)
    assert "the training loss is nan at step 2 of epoch 2; stopped before writing anything of this epoch" in err
    assert "learning rate" in err and "NaN/Inf values in the inputs" in err and str(run / "checkpoints/last.pt") in err
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1 and not (run / "summary.json").exists()


def test_options_adamw_cosine_warmup_smoothing_clipping_channels_last_bf16(tmp_path):
    sets = [
        "optimizer=adamw", "lr=0.002", "weight_decay=0.05", "schedule=cosine", "warmup_epochs=1", "epochs=3",
        "label_smoothing=0.1", "grad_clip=1.0", "channels_last=true", "amp=bf16", "rotation=15", "cutout=4",
        "train_subset=256", "eval_every=2",
    ]  # fmt: skip
    code, run = tiny_run(tmp_path, "--set", *sets)
    assert code == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [("test_error" in r) for r in records] == [False, True, True]  # every 2nd epoch, and the last
    cfg = OptimConfig(lr=0.002, schedule="cosine", warmup_epochs=1, epochs=3)
    steps = 256 // 128
    assert [r["lr"] for r in records] == [pytest.approx(lr_at(cfg, e, steps - 1, steps)) for e in range(3)]
    assert records[0]["lr"] == pytest.approx(0.002) and records[2]["lr"] < records[1]["lr"] < 0.002
    assert all(r["train_loss"] == r["train_loss"] for r in records)  # finite, not NaN
    assert main(["train", *TINY, "--set", "amp=fp16", "--out-dir", str(tmp_path), "--device", "cpu"]) == 2


def test_diagnostics_every_n_epochs_go_into_metrics_and_tensorboard(tmp_path):
    code, run = tiny_run(tmp_path, "--epochs", "2", "--set", "diagnostics_every=2", "train_subset=128")
    assert code == 0
    first, second = (json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines())
    assert "diagnostics" not in first and second["diagnostics"]
    assert all(isinstance(v, float) for v in second["diagnostics"].values())
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(run / "tb")).Reload().Tags()["scalars"]
    assert {"test_error", "train_loss", "lr"} <= set(tags) and any(t.startswith("diagnostics/") for t in tags)


def test_progress_bar_only_on_terminals():
    import io

    from poolskip.progress import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = Progress(4, "epoch 1/2", stream=stream)
        for i in range(1, 5):
            bar.update(i, lambda: "loss 0.5")
        bar.close()
    assert "\repoch 1/2 [" in tty.getvalue() and "4/4" in tty.getvalue() and "loss 0.5" in tty.getvalue()
    assert pipe.getvalue() == ""


def test_long_loops_log_progress_lines_and_their_time(monkeypatch):
    import io

    from poolskip import progress

    lines: list[str] = []
    with progress.reporting(lines.append, every=0):  # every item "takes long enough" for a line
        assert list(progress.track(range(3), 3, "eval", "volumes")) == [0, 1, 2]
    assert lines[:2] == [
        line for line in lines[:2] if line.startswith("eval: ") and " volumes (" in line and "s left" in line
    ]
    assert [line.split(" (")[0] for line in lines[:2]] == ["eval: 1/3 volumes", "eval: 2/3 volumes"]
    assert len(lines) == 3 and lines[2].startswith("eval: 3 volumes in ") and lines[2].endswith(" s")

    quiet: list[str] = []
    with progress.reporting(quiet.append, enabled=False, every=0):  # another rank of a distributed run
        list(progress.track(range(3), 3, "eval"))
    assert quiet == []

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    monkeypatch.setattr("sys.stderr", tty)
    with progress.reporting(quiet.append, enabled=False, every=0):
        list(progress.track(range(3), 3, "eval"))
    assert tty.getvalue() == ""  # no bar on the other ranks either
    for i in progress.track(range(2), 2, "eval"):  # outside reporting(): the bar only
        progress.tick(f"window {i + 1}")
    progress.tick("outside any loop")  # a no-op
    assert "\reval [" in tty.getvalue() and "window 1" in tty.getvalue() and "outside" not in tty.getvalue()


def test_training_and_eval_log_evaluation_progress(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("poolskip.progress.LOG_EVERY", 0.0)  # every evaluation counts as long
    code, run = tiny_run(tmp_path, "--epochs", "1")
    out = capsys.readouterr().out
    assert code == 0 and "\neval: 1 batch in " in out  # digits' test set is one evaluation batch
    epoch_line = next(line for line in out.splitlines() if line.startswith("epoch 1/1"))
    assert "  eval " in epoch_line  # the epoch line carries the evaluation's seconds
    threads, set_to = torch.get_num_threads(), []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: set_to.append(n))
    assert main(["eval", str(run), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["eval_seconds"] >= 0  # stdout: the result only
    assert "eval: 1 batch in " in captured.err
    assert set_to == [1, threads]  # the run's threads (TINY sets 1), then the caller's again
    assert main(["eval", str(run), "--json", "--threads", "2"]) == 0 and set_to[2:] == [2, threads]
    assert main(["eval", str(run), "--threads", "0"]) == 2


def test_log_line_keeps_slow_rates_readable():
    from poolskip.engine.trainer import _format

    slow = _format({"epoch": 1, "train_loss": 1.38, "lr": 0.01, "epoch_seconds": 124.2, "samples_per_s": 0.4025})
    assert "train_loss 1.38" in slow and "124.2s  0.40 samples/s" in slow  # 3D on a CPU: not "0 samples/s"
    fast = _format({"epoch": 1, "lr": 0.1, "epoch_seconds": 2.0, "samples_per_s": 1234.4})
    assert fast.endswith("2.0s  1234 samples/s")
