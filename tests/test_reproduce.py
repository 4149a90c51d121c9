"""``poolskip reproduce``: plans, dry runs, skip/resume, the tables in the paper's layout."""

import argparse
import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from poolskip.commands import reproduce as command_line
from poolskip.engine.config import make_config
from poolskip.experiments import reproduce
from poolskip.experiments.reproduce import COMMANDS, Run, collect, plan, render_table
from poolskip.experiments.results import LOCAL_KEYS, ResultsError, flat_config, read_summary, run_status


def _args(command, tmp_path, *extra):
    p = argparse.ArgumentParser()
    command_line.add_arguments(p)
    return p.parse_args([command, "--out", str(tmp_path), *extra])


def _run(args):
    return command_line.run(args)


@pytest.mark.parametrize("command", COMMANDS)
def test_dry_run_of_every_command_lists_every_run_and_trains_nothing(command, tmp_path, capsys):
    args = _args(command, tmp_path, "--scale", "tiny", "--dry-run", "--time-steps", "0", "--controls")
    assert _run(args) == 0
    out = capsys.readouterr().out
    runs = plan(command, "tiny", controls=True)
    assert f"{len(runs)} runs;" in out
    for r in runs:
        assert r.name in out
    assert not any(tmp_path.iterdir())  # nothing written, nothing trained
    if command in ("table2", "table3"):  # tasks other issues add: said plainly, no crash
        from poolskip.tasks import list_tasks

        task = "segmentation" if command == "table2" else "segmentation3d"
        if task not in list_tasks():
            assert f"task {task!r} is not registered yet" in out


def test_dry_run_measures_step_time_and_estimates_wall_time(tmp_path, capsys):
    args = _args("table4", tmp_path, "--scale", "tiny", "--dry-run", "--time-steps", "1", "--controls")
    assert _run(args) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "_plain/seed0" in ln)
    cells = line.split()
    assert cells[1] == "new" and cells[4].endswith("iB") and cells[5].endswith("iB")  # peak memory, train and eval
    assert cells[6].endswith("s") and cells[6] != "—" and cells[7] != "—"  # measured step and evaluation times
    assert "estimated" in out and "runs;" in out and "peak memory" in out


def test_dry_run_shows_a_rows_finished_runs_beside_its_timed_estimate(tmp_path, capsys):
    # seed 0 of the plain row finished (its real summary, wall time set to 1,234 s): seed 1 of that row is
    # estimated by timing, as every run is (the machine now need not be the machine then), and its note gives
    # the finished run's wall time; the other rows, with nothing finished, have no such note
    plain = next(r for r in plan("table1", "tiny") if r.key == "plain")
    done = tmp_path / "table1-tiny" / "runs" / plain.name
    done.mkdir(parents=True)
    summary = {
        "task": "classification", "model": plain.model, "model_kwargs": {}, "placement": {"pool_skip": None},
        "dataset": "digits", "seed": 0, "monitor": {"metric": "test_error", "mode": "min"}, "final": 50.0,
        "wall_seconds": 1234.0,
    }  # fmt: skip
    (done / "summary.json").write_text(json.dumps(summary))
    args = _args("table1", tmp_path, "--scale", "tiny", "--seeds", "0", "1", "--dry-run", "--time-steps", "1")
    assert _run(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert next(ln for ln in lines if ln.startswith(plain.name)).split()[1] == "finished"
    seed1 = next(ln for ln in lines if ln.startswith(plain.name.replace("seed0", "seed1")))
    estimate, note = seed1.split("its row's")
    assert estimate.split()[1] == "new" and note.strip() == "1 finished run: 21 min (median)"
    assert estimate.rstrip().endswith(" s") and "min" not in estimate  # timed: a tiny run's seconds
    other = next(ln for ln in lines if "_pool_skip/seed1" in ln)
    assert "finished run" not in other


def test_paper_scale_is_the_papers_protocol():
    runs = plan("table1", "paper")
    assert len(runs) == 5 * 2 * 2 * 5  # models x datasets x {plain, +ours} x seeds
    assert {r.model for r in runs} == {"mobilenet", "googlenet", "vgg16", "resnet18", "resnet34"}
    r = runs[0]
    o = r.config["optim"]
    assert o["epochs"] == 200 and o["milestones"] == [60, 120, 160] and o["lr"] == 0.1 and o["batch_size"] == 128
    assert r.config["data"]["dataset"] in ("cifar10", "cifar100") and r.recipe == "devries_taylor"
    assert r.config["data"]["train_subset"] is None and r.config["model_kwargs"] == {}
    assert sorted({r.seed for r in runs}) == [0, 1, 2, 3, 4]
    t4 = plan("table4", "paper")
    assert [r.config["pool_skip"] for r in t4 if r.seed == 0] == [
        None,
        {"variant": "pool_skip"},
        {"variant": "conv_skip"},
        {"variant": "pool_conv"},
        True,
    ]
    f3 = plan("fig3", "paper")
    assert sorted({r.depth for r in f3}) == [50, 101, 152, 200, 350, 420]
    c10 = {r.config["pool_skip"].get("pool_size") for r in f3 if r.key == "pool_skip" and r.column == "cifar10"}
    assert c10 == {2}  # Fig. 3: pool 2 on CIFAR-10, the policy's 4 on CIFAR-100
    assert {r.config["pool_skip"] for r in f3 if r.key == "pool_skip" and r.column == "cifar100"} == {True}
    t5 = plan("table5", "paper")
    assert {r.config["optim"]["lr"] for r in t5 if r.column == "cifar100"} == {6e-4}
    assert {r.config["optim"]["lr"] for r in t5 if r.column == "cifar10"} == {5.5e-4}
    assert {r.config["optim"]["optimizer"] for r in t5} == {"adamw"}
    assert {r.config["classification"]["label_smoothing"] for r in t5} == {0.1}
    t2 = plan("table2", "paper")
    assert len(t2) == 2 * 2 * 2 * 5  # datasets x models x {plain, +ours} x seeds
    assert {(r.model, r.dataset) for r in t2} >= {("deeplabv3plus_resnet101", "voc")}
    assert {r.config["task"] for r in t2} == {"segmentation"}
    assert {r.config["model_kwargs"]["output_stride"] for r in t2} == {16}  # the recipe's, kept for ResNet101
    t3 = plan("table3", "paper")
    assert {r.config["task"] for r in t3} == {"segmentation3d"} and {r.model for r in t3} == {"vnet", "nnunet"}
    assert len(t3) == 2 * 2 * 2 * 5  # datasets x models x {plain, +ours} x folds
    assert {r.config["segmentation3d"]["patch_multiple"] for r in t3 if r.model == "vnet"} == {16}


def test_an_image_folder_of_cifar100_is_compared_with_the_papers_cifar100_column():
    """Table 1 on --dataset imagefolder was always set beside the paper's CIFAR-10 column, whatever the folder
    held; the folder's name tells CIFAR-100 (its direction differs: MobileNet -5.44 against -2.74)."""
    for folder, column in (("/data/cifar100-jpg", "cifar100"), ("/data/cifar10-jpg", "cifar10"), (None, "cifar10")):
        runs = plan("table1", "quick", dataset="imagefolder", data_dir=folder, seeds=[0])
        assert {r.column for r in runs} == {column} and all(f"imagefolder-as-{column}_" in r.name for r in runs)


def test_quick_scale_is_labelled_shorter_and_seeds_and_controls_apply():
    runs = plan("table4", "quick", dataset="imagefolder", data_dir="/data/c10", seeds=[0, 1, 2, 3], controls=True)
    assert {r.seed for r in runs} == {0, 1, 2, 3}
    keys = [r.key for r in runs if r.seed == 0]
    assert keys == ["plain", "pool_skip_only", "conv_skip", "pool_conv", "pool_skip", "wide", "depthwise"]
    r = runs[0]
    assert r.config["optim"]["epochs"] == 4 and r.config["optim"]["schedule"] == "cosine"
    assert r.config["data"]["train_subset"] == 50000 and r.config["model_kwargs"]["width"] == 8
    assert r.config["run"]["eval_every"] == 4
    assert r.config["data"]["data_dir"] == "/data/c10" and r.column == "cifar100"
    assert "imagefolder-as-cifar100" in r.name
    wide = next(r for r in runs if r.key == "wide")
    assert wide.config["pool_skip"] is None and wide.config["model_kwargs"]["width"] > r.config["model_kwargs"]["width"]
    dw = next(r for r in runs if r.key == "depthwise")
    assert dw.config["pool_skip"] == {"groups": "depthwise"}
    t1 = plan("table1", "quick", controls=True)
    assert {r.model for r in t1} == {"resnet18", "mobilenet"} and len({r.seed for r in t1}) == 3
    assert {r.key for r in t1} == {"plain", "pool_skip", "conv_skip", "wide", "depthwise"}
    # the quick scale trains with a one-cycle shape (warm-up over the first fifth, cosine to 0), which keeps
    # its shape when --epochs shortens it; a shortened paper-scale run still squeezes the recipe's milestones
    for r in [*runs, *t1]:
        o = r.config["optim"]
        lr, epochs = (0.1, 6) if r.model == "mobilenet" else (0.02, 4)  # MobileNet's rows: calibrated apart
        assert (o["schedule"], o["min_lr"], o["warmup_epochs"], o["lr"]) == ("cosine", 0.0, 0.2 * o["epochs"], lr)
        assert o["epochs"] == epochs and r.config["run"]["eval_every"] == epochs
        assert r.config["data"]["train_subset"] == 50000 and r.config["run"]["channels_last"] is True
    short = plan("table1", "quick", epochs=3)[0].config["optim"]
    assert (short["epochs"], short["schedule"], short["warmup_epochs"]) == (3, "cosine", pytest.approx(0.6))
    assert plan("table1", "paper", epochs=3)[0].config["optim"]["milestones"] == [1, 2, 2]
    # the segmentation tables get the same three controls; the widened one where the model has a width knob
    t2 = plan("table2", "quick", controls=True, seeds=[0])
    assert [r.key for r in t2] == ["plain", "pool_skip", "conv_skip", "wide", "depthwise"]
    assert t2[0].recipe == "deeplab_camvid" and t2[0].config["segmentation"]["eval_split"] == "test"
    assert t2[0].config["segmentation"]["crop_size"] == [120, 160] and t2[0].config["optim"]["epochs"] == 12
    wide2 = next(r for r in t2 if r.key == "wide")
    assert wide2.config["pool_skip"] is None and wide2.config["model_kwargs"]["width"] > 256
    t3 = plan("table3", "quick", controls=True, seeds=[0])
    assert {r.recipe for r in t3} == {"hippocampus"} and {r.fold for r in t3} == {0, 1, 2}
    assert {r.config["optim"]["grad_clip"] for r in t3} == {12.0}
    keys3 = {(r.model, r.key) for r in t3}
    assert ("nnunet", "wide") in keys3 and ("vnet", "wide") not in keys3 and ("vnet", "depthwise") in keys3
    wide3 = next(r for r in t3 if r.key == "wide")
    assert wide3.config["model_kwargs"] == {"width": wide3.config["model_kwargs"]["width"]}  # the task plans the patch
    assert wide3.config["model_kwargs"]["width"] > 32
    with pytest.raises(ValueError, match="unknown reproduction 'table9'"):
        plan("table9")
    with pytest.raises(ValueError, match="unknown scale"):
        plan("table1", "huge")


#: Where a run was made, not how it trained: the keys a committed calibration run's config may differ in. Those
#: reproduce ignores when it checks a run on disk against its plan, but for two the calibration runs share anyway.
_PLACE = LOCAL_KEYS - {"data.download", "run.eval_batch_size"}


_CALIBRATION = "calib-quick-cifar10/runs"


@pytest.mark.parametrize(
    "command, dataset, model, key, folder",
    [
        ("table1", "imagefolder", "resnet18", "plain", f"{_CALIBRATION}/resnet18-w8-n50k-e4-lr0.02/seed0"),
        ("table1", "imagefolder", "mobilenet", "plain", f"{_CALIBRATION}/mobilenet-w8-n50k-e6-lr0.1/seed0"),
        ("table4", "imagefolder", "vgg16", "plain", f"{_CALIBRATION}/vgg16-w8-n50k-e4-lr0.02/seed0"),
        ("fig3", "imagefolder", "resnet50", "plain", f"{_CALIBRATION}/resnet50-w4-n50k-e6-lr0.1/seed0"),
        ("fig3", "imagefolder", "resnet101", "plain", f"{_CALIBRATION}/resnet101-w4-n50k-e6-lr0.1/seed0"),
        ("fig3", "imagefolder", "resnet152", "plain", f"{_CALIBRATION}/resnet152-w4-n50k-e6-lr0.1/seed0"),
        ("fig4", "imagefolder", "resnet350", "plain", f"{_CALIBRATION}/resnet350-w4-n50k-e6-lr0.1/seed0"),
        ("table5", "imagefolder", "vit_7_4_32", "plain", f"{_CALIBRATION}/vit2-n50k-e30-lr0.001/seed0"),
        ("table5", "imagefolder", "cvt_7_4_32", "plain", f"{_CALIBRATION}/cvt2-n50k-e20-lr0.001/seed0"),
        ("table5", "imagefolder", "cct_7_3x1_32", "plain", f"{_CALIBRATION}/cct2-n50k-e10-lr0.001/seed0"),
        ("table2", "camvid", "deeplabv3plus_mobilenet", "plain", "seg2d-camvid-cpu-12ep/runs/pool_skip_false/seed0"),
        ("table2", "camvid", "deeplabv3plus_mobilenet", "pool_skip", "seg2d-camvid-cpu-12ep/runs/pool_skip_true/seed0"),
        ("table3", "decathlon", "nnunet", "plain", "med3d-hippocampus-cpu-500steps/files/nnunet_plain"),
        ("table3", "decathlon", "nnunet", "pool_skip", "med3d-hippocampus-cpu-500steps/files/nnunet_pool_skip"),
        ("table3", "decathlon", "vnet", "plain", "med3d-hippocampus-cpu-500steps/files/vnet_plain"),
        ("table3", "decathlon", "vnet", "pool_skip", "med3d-hippocampus-cpu-500steps/files/vnet_pool_skip"),
    ],
)
def test_quick_cells_are_their_committed_calibration_runs(command, dataset, model, key, folder):
    """Each calibrated quick scale (protocols.QUICK_CIFAR, QUICK_MOBILENET, QUICK_DEEP, QUICK_TRANSFORMER,
    QUICK_VIT, QUICK_CCT, QUICK_CAMVID, QUICK_HIPPOCAMPUS) claims the accuracy of a committed run under
    results/: the quick cell's resolved config must be that run's, but for where the run was made."""
    import yaml

    from poolskip.engine.config import make_config

    committed = yaml.safe_load((Path(__file__).parents[1] / "results" / folder / "config.yaml").read_text())
    if committed["pool_skip"] is False:  # written as --pool-skip false; the plan's plain row leaves it unset
        committed["pool_skip"] = None
    cell = next(r for r in plan(command, "quick", dataset=dataset, seeds=[0]) if r.model == model and r.key == key)
    assert (cell.seed, cell.fold) == (0, 0 if command == "table3" else None)

    def how(config):  # 0.2 * 6 is 1.2000000000000002
        flat = flat_config(config)
        return {k: round(v, 9) if isinstance(v, float) else v for k, v in flat.items() if k not in _PLACE}

    assert how(cell.config) == how(make_config(committed).to_dict())


def _fake_config(run_dir, cfg):
    """The resolved config the engine writes first into every run directory (``cfg``: a TrainConfig)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def _fake_summary(run_dir, final, cfg=None):
    """A finished run's summary.json as the engine writes it (the fields the results reader requires), and its
    config.yaml where ``cfg`` is given (a run without one is never taken as a plan's)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg is not None:
        _fake_config(run_dir, cfg)
    s = {
        "task": "classification", "model": "small_cnn", "model_kwargs": {}, "dataset": "digits", "seed": 0,
        "monitor": {"metric": "test_error", "mode": "min"}, "final": final, "best": final, "params": 1,
        "placement": {"pool_skip": False},
    }  # fmt: skip
    (run_dir / "summary.json").write_text(json.dumps(s))


def test_execute_refuses_a_run_another_process_holds_and_writes_nothing(tmp_path, monkeypatch):
    """A run whose lock another process holds (e.g. a concurrent ``poolskip train`` into it) stops the whole
    reproduction before anything is moved aside or trained: one of the two writers refuses."""
    import poolskip.engine.trainer as trainer
    from poolskip.engine.rundir import RunDir

    calls = []
    monkeypatch.setattr(trainer, "train", lambda cfg, d, resume=False: calls.append(d))
    runs = plan("table4", "tiny")
    root = tmp_path / "table4-tiny"
    held = root / "runs" / runs[-1].name
    held.mkdir(parents=True)
    holder = RunDir(held)
    holder.open(resume=False)
    (held / "config.yaml").write_text("task: classification\n")  # a start without checkpoint: 'stale' if free
    try:
        with pytest.raises(ResultsError, match="being trained by another process"):
            reproduce.execute(runs, root, log=lambda *a: None)
    finally:
        holder.close()
    assert calls == [] and (held / "config.yaml").is_file() and not list(held.parent.glob("*.stale-*"))


def test_a_run_on_disk_that_read_another_data_folder_is_refused(tmp_path):
    """A folder dataset is whatever its folder holds: runs on disk of one ImageFolder tree are not this plan's
    runs of another (they were skipped as finished and their numbers tabulated); the same folder moved to
    another place on another machine is the same data."""
    import yaml

    from poolskip.engine.config import make_config

    r = plan("table1", "tiny", dataset="imagefolder", data_dir=str(tmp_path / "a" / "cifar10-jpg"))[0]
    run_dir = tmp_path / "out" / "runs" / r.name
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text("{}")
    config = make_config(r.config).to_dict()
    for folder, refused in (("/elsewhere/cifar10-jpg", False), ("/data/cifar100-jpg", True)):
        config["data"]["data_dir"] = folder
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
        if refused:
            with pytest.raises(ResultsError, match=r"was trained with data.data_dir '/data/cifar100-jpg' where this"):
                reproduce.refuse_held([r], tmp_path / "out")
        else:
            assert reproduce.refuse_held([r], tmp_path / "out") == ["finished"]


def test_execute_skips_finished_resumes_partial_and_keeps_stale_starts(tmp_path, monkeypatch):
    import poolskip.engine.trainer as trainer

    calls = []

    def fake_train(cfg, run_dir, resume=False):
        calls.append((str(run_dir), resume))
        _fake_summary(run_dir, 10.0 + cfg.run.seed, cfg)
        return {}

    monkeypatch.setattr(trainer, "train", fake_train)
    runs = plan("table4", "tiny", seeds=[0, 1])
    root = tmp_path / "table4-tiny"
    finished, partial, stale = (root / "runs" / runs[i].name for i in (0, 1, 2))
    _fake_summary(finished, 50.0, make_config(runs[0].config))
    _fake_config(partial, make_config(runs[1].config))
    (partial / "checkpoints").mkdir(parents=True)
    (partial / "checkpoints" / "last.pt").write_bytes(b"x")
    stale.mkdir(parents=True)
    (stale / "config.yaml").write_text("a: 1")
    assert run_status(finished) == "finished" and run_status(partial) == "incomplete" and run_status(stale) == "stale"
    done = reproduce.execute(runs, root, log=lambda *a: None)
    assert [s for _, s in done].count("skipped") == 1 and [s for _, s in done].count("trained") == len(runs) - 1
    assert (str(partial), True) in calls and all(not r for d, r in calls if d != str(partial))
    assert str(finished) not in [d for d, _ in calls]
    assert list(stale.parent.glob(f"{stale.name}.stale-*"))  # moved aside, not deleted
    records = collect(runs, root)
    plain = next(r for r in records if r["key"] == "plain")
    assert plain["values"] == [50.0, 11.0] and plain["seeds"] == [0, 1]


def test_fig4_tabulates_the_largest_layer_l2_l1_of_each_checkpoint_beside_the_papers(tmp_path):
    from poolskip.diagnostics.measures import l2_l1

    runs = plan("fig4", "quick")
    spiky = torch.zeros(4, 4, 3, 3)
    spiky[0, 0, 1, 1] = 1.0  # one nonzero weight: l2/l1 = 1
    one_by_one = torch.full((4, 4, 1, 1), 2.0)  # 16 equal weights: l2/l1 = 1/4
    shared = {"fc.weight": torch.ones(10, 4), "a.pool_skip.conv.weight": spiky, "b.weight": one_by_one}
    for r, state in zip(runs, ({"conv.weight": torch.ones(4, 4, 3, 3)}, {"conv.weight": spiky}, {})):
        root = tmp_path / "runs" / r.name
        _fake_summary(root, 80.0)
        (root / "checkpoints").mkdir()
        torch.save({"model": {**state, **shared}}, root / "checkpoints" / "last.pt")
    records = collect(runs, tmp_path)
    assert [r["key"] for r in records] == ["plain", "pool_skip_s2", "pool_skip_s4"]
    plain, s2, s4 = records
    # the largest over the network's conv weights; Pool Skip's own convs and linear layers left out
    assert plain["values"] == [pytest.approx(max(l2_l1(torch.ones(4, 4, 3, 3)), l2_l1(torch.ones(16))))]
    assert s2["values"] == [pytest.approx(1.0)] and s4["values"] == [pytest.approx(0.25)]
    assert plain["metric"] == "max_l2_l1" and plain["test_error"] == [80.0]
    assert plain["paper"]["mean"] == 0.35 and s2["paper"]["mean"] == s4["paper"]["mean"] == 0.1  # CIFAR-10 text
    md = render_table("fig4", records, "quick")
    assert "| ResNet350 (width 4) Pool Skip S2 |" in md and "Test error (%) of the same runs" in md
    # reading writes nothing; writing the table keeps each run's l2/l1 beside its files, which makes the table
    # again without the checkpoint (results/ keeps none)
    first = tmp_path / "runs" / runs[0].name
    assert not (first / "weights_l2_l1.json").exists()
    reproduce.write_outputs("fig4", "quick", records, tmp_path)
    (first / "checkpoints" / "last.pt").unlink()
    assert [r["values"] for r in collect(runs, tmp_path)] == [r["values"] for r in records]
    (first / "weights_l2_l1.json").unlink()
    with pytest.raises(ResultsError, match=r"last.pt is missing, and so is weights_l2_l1.json: Fig. 4's l2/l1 is"):
        collect(runs, tmp_path)


def test_table_in_the_papers_layout_with_paper_numbers_and_differences(tmp_path):
    runs = plan("table4", "quick", seeds=[0, 1])
    root = tmp_path
    for r in runs:
        _fake_summary(root / "runs" / r.name, {"plain": 30.0, "pool_skip": 29.0}.get(r.key, 40.0) + r.seed)
    records = collect(runs, root)
    md = render_table("table4", records, "quick")
    assert "NOT the paper's protocol" in md and "Table 4" in md
    plain = next(ln for ln in md.splitlines() if ln.startswith("| VGG16 |"))
    cells = [c.strip() for c in plain.strip("|").split("|")]
    # a shortened scale: row, params, MACs, ours, ours - our plain, the paper's row - its plain; never the
    # paper's number beside ours
    assert cells[3] == "30.50 ± 0.71 (n=2)" and cells[4] == "—" and cells[5] == "—"
    assert cells[1].endswith(" M") and cells[2].endswith(" M")
    ours = [c.strip() for c in next(ln for ln in md.splitlines() if ln.startswith("| +{Ours} |")).strip("|").split("|")]
    assert ours[4] == "-1.00" and ours[5] == "-0.61"  # ours vs our plain; the paper's 27.23 - 27.84
    assert "27.84" not in md and "27.23" not in md and "ours − paper" not in md
    # at the paper's scale (and dataset) the paper's number and ours − paper are shown
    paper_md = render_table("table4", [{**r, "dataset": r["column"]} for r in records], "paper")
    row = next(ln for ln in paper_md.splitlines() if ln.startswith("| VGG16 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "30.50 ± 0.71 (n=2)" and cells[4] == "27.84" and cells[5] == "+2.66" and cells[6] == "—"


def test_no_ours_minus_paper_where_the_paper_scored_otherwise_or_the_protocol_was_shortened(tmp_path):
    """Table 3's paper numbers are 5-fold ensembles on the test set: ours each fold on its validation part is not
    set beside them even at the paper's scale, ours as those ensembles is; nor is a paper-scale table shortened
    by --epochs / --train-subset.
    A row's params and MACs are each column's network's where they differ (nnU-Net's AMOS placement)."""
    from poolskip.commands.reproduce import _scale_label

    runs = [r for r in plan("table3", "paper") if r.fold in (0, 1)]
    for r in runs:
        _fake_summary(tmp_path / "runs" / r.name, 80.0 + r.fold)
    records = [{**r, "metric": "dice", "mode": "max"} for r in collect(runs, tmp_path)]
    md = render_table("table3", records, "paper")
    assert "ours − paper" not in md and "82.47" not in md and "scored otherwise: the paper scores the 5 folds'" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| nnUNet +ours |"))
    params = [c.strip() for c in row.strip("|").split("|")][1]
    ours = {(r["row"], r["column"]): r["params"] for r in records}
    assert ours[("nnUNet +ours", "btcv")] != ours[("nnUNet +ours", "amos")]
    assert params == " / ".join(f"{ours[('nnUNet +ours', c)] / 1e6:.2f} M" for c in ("btcv", "amos"))
    assert "a / b: each column's network" in md and "(n=2)" in md and "n = runs finished: seeds, or Table 3's" in md
    # scored as the paper scores it (every cell its folds' ensemble on the test set): set beside the paper's
    ensembles = [{**r, "scored": "ensemble", "values": [80.0]} for r in records]
    md = render_table("table3", ensembles, "paper")
    assert "scored otherwise" not in md and "ours − paper" in md and "on the test set, mean ± sample std over" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| nnUNet +ours |"))
    assert "| 80.00 (n=1) | 82.47 | -2.47 | +0.00 |" in row
    t4 = [{**r, "dataset": r["column"]} for r in collect(plan("table4", "paper", seeds=[0]), tmp_path / "none")]
    assert "ours − paper" in render_table("table4", t4, "paper")
    for extra, label in ((["--epochs", "1"], "paper with --epochs 1"), (["--train-subset", "500"], None)):
        label = label or "paper with --train-subset 500"
        assert _scale_label(_args("table4", tmp_path, "--scale", "paper", *extra)) == label
        md = render_table("table4", t4, label)
        assert "ours − paper" not in md and f"Scale: **{label}** — a shortened run, NOT the paper's protocol" in md


def test_stand_in_dataset_has_no_difference_to_the_papers_number(tmp_path):
    runs = [r for r in plan("table2", "quick", seeds=[0]) if r.key in ("plain", "pool_skip")]
    for r in runs:
        _fake_summary(tmp_path / "runs" / r.name, {"plain": 50.0, "pool_skip": 51.5}[r.key])
    records = collect(runs, tmp_path)
    assert {r["dataset"] for r in records} == {"camvid"} and all(r["paper"] for r in records)
    for scale in ("quick", "paper"):  # even at the paper's scale, a stand-in dataset gets no ours − paper
        md = render_table("table2", records, scale)
        row = next(ln for ln in md.splitlines() if "51.50" in ln)
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[3] == "51.50 (n=1)" and "+1.50" in cells and "camvid for Cityscapes" in md and "left out" in md
        if scale == "paper":
            assert cells[5] == "—"  # ours - paper left out
        else:  # the paper's caption ("over 5 seeds") is not said of our cells
            assert md.splitlines()[0].endswith("over 5 seeds (the paper's caption; ours: quick scale, n per cell)")


def test_run_records_the_table_and_csv_after_training(tmp_path, monkeypatch, capsys):
    import poolskip.engine.trainer as trainer

    monkeypatch.setattr(trainer, "train", lambda cfg, d, resume=False: _fake_summary(d, 20.0 + cfg.run.seed, cfg))
    assert _run(_args("fig3", tmp_path, "--scale", "tiny", "--seeds", "0", "1")) == 0
    root = tmp_path / "fig3-tiny"
    for f in ("fig3.md", "fig3.csv", "fig3.json", "fig3.png", "plan.json"):
        assert (root / f).is_file(), f
    assert "20.50 ± 0.71 (n=2)" in (root / "fig3.md").read_text()
    assert "Code: poolskip commit not recorded (4 runs: " in (root / "fig3.md").read_text()  # the fakes name none
    # a second call trains nothing: every run is finished
    monkeypatch.setattr(trainer, "train", lambda *a, **k: pytest.fail("trained a finished run"))
    assert _run(_args("fig3", tmp_path, "--scale", "tiny", "--seeds", "0", "1")) == 0
    assert "0 run(s) trained" in capsys.readouterr().out
    # --table-only tabulates what is finished of a larger plan (a stopped reproduction) and trains nothing
    (root / "fig3.md").unlink()
    assert _run(_args("fig3", tmp_path, "--scale", "tiny", "--seeds", "0", "1", "2", "--table-only")) == 0
    out = capsys.readouterr().out
    assert "table of the 4 finished run(s) of 6 planned (2 not finished" in out
    assert "20.50 ± 0.71 (n=2)" in (root / "fig3.md").read_text() and not list((root / "runs").glob("*/seed2"))
    with pytest.raises(command_line.UsageError, match="no runs under .*nothing of this plan was trained"):
        command_line.run(_args("fig3", tmp_path / "elsewhere", "--scale", "tiny", "--table-only"))
    with pytest.raises(command_line.UsageError, match="--table-only and --dry-run"):
        command_line.run(_args("fig3", tmp_path, "--scale", "tiny", "--table-only", "--dry-run"))


def test_run_is_a_dataclass_with_a_stable_directory_name():
    r = Run("table1", "ResNet18 +ours", "pool_skip", "resnet18", "cifar10", "cifar10", 3, group="ResNet18 (w 8)")
    assert r.name == "cifar10_ResNet18-w-8-_pool_skip/seed3"
    r.dataset = "imagefolder"
    assert r.name == "imagefolder-as-cifar10_ResNet18-w-8-_pool_skip/seed3"
    r.fold = 2  # table3: a fold is not a seed
    assert r.name.endswith("/seed3-fold2")
    r.seed = 0
    assert r.name.endswith("/fold2")


def test_tiny_table4_end_to_end_through_the_engine(tmp_path, capsys):
    """A real reproduction: table4 at tiny scale (digits, the small CNN, 1 epoch, 1 seed), then again (skipped)."""
    args = _args("table4", tmp_path, "--scale", "tiny", "--threads", "1")
    assert _run(args) == 0
    root = tmp_path / "table4-tiny"
    runs = plan("table4", "tiny")
    assert len(runs) == 5
    for r in runs:
        s = read_summary(root / "runs" / r.name)
        assert (s.metric, s.mode) == ("test_error", "min") and 0 <= s.final <= 100 and s.raw["epochs"] == 1
    md = (root / "table4.md").read_text()
    for label in ("VGG16", "+{Pool,Skip}", "+{Conv,Skip}", "+{Pool,Conv}", "+{Ours}"):
        assert f"| {label} " in md
    assert "(n=1)" in md and "27.84" not in md and "paper: row − its plain" in md and "tiny" in md
    capsys.readouterr()
    assert _run(args) == 0
    assert "0 run(s) trained" in capsys.readouterr().out


def test_parallel_jobs_and_overrides_train_the_same_runs(tmp_path):
    """--jobs 2 trains in spawned worker processes (both runs of table1's tiny plan at once); --train-subset
    reaches every run's config."""
    args = _args("table1", tmp_path, "--scale", "tiny", "--threads", "1", "--jobs", "2", "--train-subset", "128")
    assert _run(args) == 0
    root = tmp_path / "table1-tiny"
    plan_json = json.loads((root / "plan.json").read_text())
    assert {r["config"]["data"]["train_subset"] for r in plan_json} == {128}
    assert {r["layers"]["cli"]["train_subset"] for r in plan_json} == {128}
    for r in plan("table1", "tiny"):
        assert read_summary(root / "runs" / r.name).raw["epochs"] == 1


def test_table3_costs_are_those_of_the_network_the_task_trains():
    pytest.importorskip("dynamic_network_architectures")
    pytest.importorskip("monai")
    from poolskip.experiments.reproduce import estimate

    runs = {(r.model, r.key): r for r in plan("table3", "quick", seeds=[0])}
    # nnU-Net is planned for Hippocampus' 40x56x40 patch, as the task plans it (the summaries' counts)
    assert estimate(runs[("nnunet", "plain")], time_steps=0).params == 5_603_177
    assert estimate(runs[("nnunet", "pool_skip")], time_steps=0).params == 10_304_297
    vnet = estimate(runs[("vnet", "plain")], time_steps=0)  # counted at the patch padded to multiples of 16
    assert vnet.macs and not vnet.note
    # the finished table prints the dry run's count: one function (run_cost) for both
    records = {(r["model"], r["key"]): r for r in collect(list(runs.values()), Path("/nonexistent"))}
    for k, r in runs.items():
        e = estimate(r, time_steps=0)
        assert (records[k]["params"], records[k]["macs"]) == (e.params, e.macs)


@pytest.mark.parametrize("command", ["table1", "table5", "fig3", "fig4", "table2", "table3"])
def test_every_other_command_trains_end_to_end_at_tiny_size_on_fixtures(command, tmp_path, monkeypatch):
    """Each command for real at tiny scale: the classification ones on digits (no download), table2 on a tiny
    CamVid and table3 on a tiny Decathlon layout written here; every run finishes and the table is written."""
    extra = ["--dataset", "digits"]
    if command == "table2":
        from seg_layouts import make_camvid

        extra = ["--data-dir", str(make_camvid(tmp_path / "camvid", counts={"train": 4, "test": 1}, size=(25, 33)))]
    elif command == "table3":
        pytest.importorskip("monai")
        pytest.importorskip("dynamic_network_architectures")
        import volumetric_data as vd

        extra = ["--data-dir", str(vd.decathlon(tmp_path / "Task98_Tiny", n=5))]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # decoded data and splits stay under tmp_path
    out = tmp_path / "out"
    assert _run(_args(command, out, "--scale", "tiny", "--threads", "1", *extra)) == 0
    root = out / f"{command}-tiny"
    runs = json.loads((root / "plan.json").read_text())
    assert runs and all(run_status(root / "runs" / r["name"]) == "finished" for r in runs)
    md = (root / f"{command}.md").read_text()
    assert "NOT the paper's protocol" in md and "(n=1)" in md
    if command in ("fig3", "fig4"):
        assert (root / f"{command}.png").read_bytes()[:4] == b"\x89PNG"


def _two_fold_btcv_table3(tmp_path, monkeypatch, test_shape: tuple | None = None) -> Path:
    """A tiny BTCV (8 cases of 12x12x10 voxels, 3 of them its test set, those of ``test_shape`` where given) and
    Table 3's tiny scale cut to nnU-Net (width 4, 16^3 patches) on 2 folds of 2: a cell's folds are all the task's."""
    for module in ("monai", "nibabel", "dynamic_network_architectures"):
        pytest.importorskip(module)
    import volumetric_data as vd
    from poolskip.experiments.reproduce import protocols
    from poolskip.experiments.reproduce.protocols import Net

    names = [f"img{i:04d}" for i in range(8)]
    groups = {"training": names[:6], "validation": names[6:]}
    data = vd.listed(tmp_path / "btcv", "dataset_0.json", groups)
    if test_shape:  # the test set (BTCV's: a seeded 12 of 30, here 3 of 8) written again at that size
        from poolskip.data.seg3d import load_volumes

        vd.listed(data, "dataset_0.json", groups, shapes=dict.fromkeys(load_volumes("btcv", data).test_ids, test_shape))
    tiny = protocols.TINY["table3"]
    two_folds = dataclasses.replace(
        tiny, folds=(0, 1), nets=(Net("nnunet", "nnUNet"),),
        config={**tiny.config, "num_folds": 2, "patch_size": [16, 16, 16], "model_kwargs": {"width": 4}},
    )  # fmt: skip
    monkeypatch.setitem(protocols.TINY, "table3", two_folds)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return data


def test_a_table3_ensemble_is_sized_on_the_test_volumes_and_its_memory_is_in_the_peak(tmp_path, monkeypatch):
    """The dry run sizes a cell's folds' ensemble on the test set's own volumes, not its folds' validation ones:
    here each test volume has 8 sliding windows where each validation volume has 1, so the ensemble's forward
    passes are k x 3 volumes x 8 windows at the fold's time a window; each test volume is scored once (the task's
    scoring asked for the test set, fold -1); loading the task on the test set is added, its first preparation
    kept apart. Its memory (k models, an evaluation of the largest test volume, the summed probabilities) is
    larger than a fold's evaluation and is the dry run's evaluation peak."""
    import importlib

    from poolskip.experiments.reproduce.ensembles import cells, test_config

    est = importlib.import_module("poolskip.experiments.reproduce.estimate")
    data = _two_fold_btcv_table3(tmp_path, monkeypatch, test_shape=(24, 24, 20))
    runs = plan("table3", "tiny", dataset="btcv", data_dir=str(data))
    members = next(m for (cell, _), m in cells(runs).items() if cell.endswith("_plain"))
    fold_g, test_g = est.geometry(members[0].config), est.geometry(test_config(members))
    assert (fold_g.n_eval, fold_g.eval_windows) == (1, 1) and (test_g.n_eval, test_g.eval_windows) == (3, 8)
    assert test_g.eval_shape[1:] == (24, 24, 20)
    scored = []
    monkeypatch.setattr(est, "scoring_seconds", lambda config: scored.append(config) or 0.75)
    monkeypatch.setattr(est, "_time_data", lambda run_, cache: (5.0, 1.0, None, ""))
    fold = est.Estimate(eval_seconds=2.0 + 0.5, score_seconds=0.5)  # 2 s a window, 0.5 s to score a volume
    e = est.ensemble_estimate(members, fold, time_steps=1)
    assert [c["segmentation3d"]["fold"] for c in scored] == [-1]
    assert e.eval_seconds == pytest.approx(3 * (2 * 8 * 2.0 + 0.75))  # as the validation volume: 3 x (2 x 2 + 0.5)
    assert e.wall_seconds == pytest.approx(e.eval_seconds + 1.0) and (e.prepare_seconds, e.data_seconds) == (5.0, 1.0)
    _, fold_eval = est.peak_memory(members[0])
    params = est.run_cost(members[0])[0] * 4
    assert e.eval_bytes - fold_eval >= params + 2 * 3 * 24 * 24 * 20 * 4  # a second model, the summed probabilities
    report = est.dry_run_report(runs, tmp_path / "out", time_steps=0)
    peak = next(ln for ln in report.splitlines() if ln.startswith("4 runs;"))
    assert "evaluation batch" in peak and "(ensemble of btcv_nnUNet_" in peak
    line = next(ln for ln in report.splitlines() if ln.startswith("ensemble of btcv_nnUNet_plain/seed0"))
    assert est._gib(e.eval_bytes).replace(" ", "") in line and "2 folds x 3 test volumes" in line


def test_table3_scores_each_cells_folds_ensemble_on_the_test_set(tmp_path, monkeypatch, capsys):
    """Table 3 as the paper measures it: once a cell's folds (every fold of the task) are trained on data with a
    labelled test set (a tiny BTCV here, 3 of its 8 cases the test set), reproduce scores their ensemble there,
    writes its record, and the table shows it (the very number ``ensemble_runs`` gives); a second reproduction
    keeps the record; a fold trained again since makes it stale (the table falls back to the folds' own scores,
    the next reproduction scores it again). On the Decathlon (no test set) the folds' scores stand
    (``test_every_other_command_trains_end_to_end_at_tiny_size_on_fixtures``)."""
    from poolskip.experiments.folds3d import ensemble_runs

    data = _two_fold_btcv_table3(tmp_path, monkeypatch)
    args = _args("table3", tmp_path / "out", "--scale", "tiny", "--threads", "1", "--dataset", "btcv",
                 "--data-dir", str(data))  # fmt: skip
    dry = _args("table3", tmp_path / "out", "--scale", "tiny", "--dataset", "btcv", "--data-dir", str(data),
                "--dry-run", "--time-steps", "1")  # fmt: skip
    assert _run(dry) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("ensemble of btcv_nnUNet_plain/"))
    assert " new " in line and "2 folds x 3 test volumes" in line and " — " not in line  # timed
    assert _run(args) == 0
    root = tmp_path / "out" / "table3-tiny"
    runs = plan("table3", "tiny", dataset="btcv", data_dir=str(data))
    assert len(runs) == 4 and {r.fold for r in runs} == {0, 1}
    plain = sorted(r.name for r in runs if r.key == "plain")
    record_file = root / "ensembles" / str(Path(plain[0]).parent) / "seed0.json"
    record = json.loads(record_file.read_text())
    assert sorted(record["members"]) == plain and record["which"] == "best"
    direct = ensemble_runs([root / "runs" / n for n in plain], "best", "cpu")
    assert record["scores"]["dice"] == pytest.approx(direct["dice"], abs=1e-6)
    assert record["scores"]["models"] == 2 and record["scores"]["eval_volumes"] == direct["eval_volumes"] == 3
    md = (root / "table3.md").read_text()
    assert "each seed's folds' ensemble (softmax averaged) on the test set" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| nnUNet |"))
    assert f"{record['scores']['dice']:.2f} (n=1)" in row  # one seed: its ensemble
    stamp = record_file.stat().st_mtime_ns
    capsys.readouterr()
    assert _run(args) == 0
    assert "the folds' ensemble was scored before, kept" in capsys.readouterr().out
    assert record_file.stat().st_mtime_ns == stamp
    summary = root / "runs" / plain[1] / "summary.json"  # as if that fold were trained again
    summary.write_text(summary.read_text().replace("{", '{"again": 1, ', 1))
    records = {r["key"]: r for r in collect(runs, root)}
    assert records["plain"]["scored"] == "folds" and len(records["plain"]["values"]) == 2
    assert records["pool_skip"]["scored"] == "ensemble" and len(records["pool_skip"]["values"]) == 1
    md = render_table("table3", list(records.values()), "tiny")
    assert "Scored as each seed's folds' ensemble on the test set: nnUNet +ours (BTCV)" in md
    # scored again, here as a Slurm job (submitit's local executor), as a cluster reproduction would
    slurm = ("--launcher", "slurm", "--slurm-executor", "local", "--slurm-gpus", "0", "--slurm-cpus", "1")
    capsys.readouterr()
    assert _run(_args("table3", tmp_path / "out", "--scale", "tiny", "--threads", "1", "--dataset", "btcv",
                      "--data-dir", str(data), *slurm)) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.count("submitted as local job") == 1 and "btcv_nnUNet_plain/seed0: scoring the 2 folds'" in out
    again = json.loads(record_file.read_text())
    assert again["members"] != record["members"] and again["scores"]["dice"] == pytest.approx(direct["dice"])


def test_mean_std_and_its_cell():
    from poolskip.experiments.stats import format_mean_std, mean_std

    assert mean_std([]) == (None, None)
    assert mean_std([3.0]) == (3.0, None)
    mean, std = mean_std([1.0, 2.0, 6.0])
    assert mean == 3.0 and abs(std - 7**0.5) < 1e-12  # sample std (n - 1): variance (4 + 1 + 9) / 2
    assert format_mean_std(mean, std, 3) == "3.00 ± 2.65 (n=3)"
    assert format_mean_std(3.0, None) == "3.00"
    assert format_mean_std(None, None, 0, missing="not run") == "not run"


def test_time_estimates_time_the_runs_own_batch_memory_format_and_threads():
    """The dry run's step time is measured as the run will compute: its batch where that is cheap (per-sample
    time on a CPU depends on the batch), a smaller batch then smaller inputs (scaled back by MACs) where it is
    not, with the run's ``--threads`` and channels_last."""
    import importlib

    est = importlib.import_module("poolskip.experiments.reproduce.estimate")  # the module, not its function
    assert est._timing_input(1_000_000, 128, (3, 32, 32), 16) == (128, (3, 32, 32), 1.0)
    # 1 GMAC per input at batch 128: the batch halves down to 16, then the image to 256x256 (4x fewer pixels)
    assert est._timing_input(10**9, 128, (3, 512, 512), 16) == (16, (3, 256, 256), 32.0)
    r = plan("table1", "quick", threads=1)[0]
    assert r.config["run"]["threads"] == 1 and r.config["run"]["channels_last"] is True
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with est._as_the_run(r):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    net, x = est._layout(r, torch.nn.Conv2d(3, 4, 3), torch.randn(2, 3, 8, 8))
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert net.weight.is_contiguous(memory_format=torch.channels_last)


def test_a_pass_is_timed_at_its_real_size_when_affordable_and_a_size_the_network_refuses_is_not_used(monkeypatch):
    """Per-sample time depends on the batch and the input size, so a pass timed smaller (and scaled by MACs) is
    timed again at its real size when that is predicted to take at most ``_REAL_SECONDS`` a call; a smaller
    input the network cannot take (nnU-Net's patch halved) falls back to the real input with the smaller batch."""
    import importlib

    est = importlib.import_module("poolskip.experiments.reproduce.estimate")
    calls = []

    def make(seconds_per_pixel_sample, refuse=()):
        def at(batch, shape):
            if shape in refuse:

                def fail():
                    raise RuntimeError("Sizes of tensors must match except in dimension 1")

                return fail
            return lambda: calls.append((batch, shape)) or batch * math.prod(shape[1:]) * seconds_per_pixel_sample

        return at

    monkeypatch.setattr(est, "_time", lambda fn, steps, **kw: fn())  # one call: the fake pass returns its seconds
    real = (3, 512, 512)
    # 1 GMAC an input, batch 128: timed at 16 x 256x256 (x32 = 1.05 s predicted), then at the real size
    assert est._time_pass(make(1e-7 / 32), 10**9, 128, real, 16, 2) == pytest.approx(128 * 512 * 512 * 1e-7 / 32)
    assert calls == [(16, (3, 256, 256)), (128, real)]
    calls.clear()
    # predicted 33.6 s a call (> _REAL_SECONDS): the scaled time is the answer, the real size is never run
    assert est._time_pass(make(1e-6), 10**9, 128, real, 16, 2) == pytest.approx(16 * 256 * 256 * 1e-6 * 32)
    assert calls == [(16, (3, 256, 256))]
    calls.clear()
    # the halved input refused: timed at the real input with the smaller batch, then at the real batch
    assert est._time_pass(make(1e-9, refuse=((3, 256, 256),)), 10**9, 128, real, 16, 2) == pytest.approx(
        128 * 512 * 512 * 1e-9
    )
    assert calls == [(16, real), (128, real)]
    calls.clear()
    # a failure at the real input is the network's own: raised
    with pytest.raises(RuntimeError, match="Sizes of tensors"):
        est._time_pass(make(1e-9, refuse=((3, 32, 32),)), 10**6, 128, (3, 32, 32), 16, 2)


def test_the_estimate_counts_building_the_network_and_every_checkpoint_write(monkeypatch):
    """Besides steps and evaluations a run builds its network once and writes last.pt (weights and optimiser
    state) at every epoch's end and every ``checkpoint_every`` steps, best.pt every epoch: the estimate counts
    the build (timed by its caller: 5 s here) and times both writes once (a fake clock: last.pt 2 s, best.pt
    1 s), counting them as the run will; the network the estimate times is built once."""
    import importlib

    import poolskip.engine.checkpoint as checkpoint

    est = importlib.import_module("poolskip.experiments.reproduce.estimate")
    clock, written = [0.0], []
    monkeypatch.setattr(est.time, "perf_counter", lambda: clock[0])

    def save(path, state):
        written.append((path.name, sorted(state)))
        clock[0] += 2.0 if path.name == "last.pt" else 1.0

    monkeypatch.setattr(checkpoint, "save_checkpoint", save)
    r = plan("table1", "tiny")[0]
    g = est.geometry(r.config)

    def overhead(epochs, every=0):
        cfg = {
            **r.config,
            "optim": {**r.config["optim"], "epochs": epochs},
            "run": {**r.config["run"], "checkpoint_every": every},
        }
        return est._time_overhead(dataclasses.replace(r, config=cfg), g, torch.nn.Linear(3, 2), 5.0)

    assert overhead(1) == 5 + 2 + 1 and written == [("last.pt", ["model", "optimizer"]), ("best.pt", ["model"])]
    assert overhead(10) == 5 + 10 * (2 + 1)
    # every N steps as well: (steps - 1) // N more last.pt an epoch (the epoch's end writes the last one)
    n = max(1, g.steps_per_epoch // 3)
    assert overhead(2, every=n) == 5 + 2 * (2 * (1 + (g.steps_per_epoch - 1) // n) + 1)
    # estimate() builds the network it times once (on the CPU; the meta-device builds count parameters and memory)
    monkeypatch.undo()
    built, net = [], est._net
    monkeypatch.setattr(est, "_net", lambda run_, g, device: built.append(device) or net(run_, g, device))
    e = est.estimate(r, time_steps=1)
    assert e.overhead_seconds > 0 and e.step_seconds > 0 and e.eval_seconds > 0
    assert built.count("cpu") == 1


def test_the_estimate_adds_the_preparing_of_every_training_batch_on_the_data(monkeypatch):
    """Each step waits for its batch (read, cropped, augmented in the training process): where the data is on
    this machine (scikit-learn's digits here) the estimate times its first batches and adds one to every step."""
    import importlib

    est = importlib.import_module("poolskip.experiments.reproduce.estimate")
    r = plan("table1", "tiny")[0]
    e = est.estimate(r, time_steps=1)
    assert e.batch_seconds is not None and e.data_seconds is not None and e.overhead_seconds is not None
    steps, evals = est._steps_and_evals(r)
    assert e.wall_seconds == pytest.approx(
        (e.step_seconds + e.batch_seconds) * steps + e.eval_seconds * evals + e.data_seconds + e.overhead_seconds
    )
    # the first batch of an epoch is left out where there are more: it pays for starting the epoch
    clock = iter([0.0, 1.0, 1.0, 1.4, 1.4, 2.0, 2.0])  # 1.0 s, then 0.4 and 0.6 s, then no batch is left
    monkeypatch.setattr(est.time, "perf_counter", lambda: next(clock))
    assert est._time_batches(iter(range(3))) == pytest.approx(0.5)
    assert est._time_batches(iter(())) is None


def test_the_estimate_adds_the_scoring_of_every_evaluated_volume(tmp_path, monkeypatch):
    """A 3D evaluation scores each volume after its forward passes (Dice, IoU, surface distances in its own grid:
    tens of seconds for a CT-sized map), which the estimate left out: the task times it on the first evaluated
    case's label and scales it by voxels; every evaluated volume adds it; without the data it says so."""
    import importlib

    pytest.importorskip("monai")
    pytest.importorskip("dynamic_network_architectures")
    import poolskip.tasks.segmentation3d as seg3d
    import volumetric_data as vd

    est = importlib.import_module("poolskip.experiments.reproduce.estimate")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = vd.decathlon(tmp_path / "Task98_Tiny", n=5)
    r = plan("table3", "tiny", data_dir=str(root))[0]
    seconds, voxels = seg3d._timed_scoring.__wrapped__(str(root / "labelsTr" / "task_000.nii.gz"), 3, 1.0)
    assert seconds > 0 and voxels == math.prod(vd.SHAPE)  # score_volume on a label map as read
    timed = []
    monkeypatch.setattr(seg3d, "_timed_scoring", lambda *a: timed.append(a) or (3.0, voxels // 2))
    evaluated = seg3d._read_geometry("decathlon", str(root), None, seg3d.Segmentation3dOptions())[-1]
    assert est.scoring_seconds(r.config) == pytest.approx(6.0)  # scaled to the evaluated volumes' size
    assert timed == [(str(root / "labelsTr" / f"{evaluated[0]}.nii.gz"), 3, 1.0)]  # the first evaluated case's

    for name, value in (("_time_overhead", 0.0), ("_time_train_step", 0.0), ("_time_eval", 1.0)):
        monkeypatch.setattr(est, name, lambda *a, value=value: value)
    monkeypatch.setattr(est, "_net", lambda *a: None)
    g = est.geometry(r.config)
    assert est.estimate(r, time_steps=1).eval_seconds == pytest.approx(1.0 + 6.0 * g.n_eval)
    assert est.scoring_seconds(plan("table1", "tiny")[0].config) == 0.0  # a class decision: nothing beyond
    gone = dataclasses.replace(r, config={**r.config, "data": {**r.config["data"], "data_dir": str(tmp_path / "no")}})
    assert est.scoring_seconds(gone.config) is None
    e = est.estimate(gone, time_steps=1)
    assert e.eval_seconds == 1.0 and "scoring of each volume not timed (no data folder)" in e.note


def test_the_scoring_estimate_adds_taking_a_resampled_case_back_to_its_own_grid(tmp_path, monkeypatch):
    """A case read at another spacing than the target one is scored in its own grid after its probabilities are
    resampled back (seconds per class for a CT-sized volume): the estimate times ``to_original`` on the first such
    case's sizes and adds it, scaled by voxels, for those cases only."""
    pytest.importorskip("monai")
    pytest.importorskip("dynamic_network_architectures")
    import poolskip.tasks.segmentation3d as seg3d
    import volumetric_data as vd
    from poolskip.engine.config import make_config
    from poolskip.engine.trainer import task_context

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    back = seg3d._timed_resampling.__wrapped__(3, vd.SHAPE, (1.0, 1.0, 1.0), (2.0, 1.0, 1.0))
    assert back > 0  # to_original on a 3-class prediction at 2 mm back to 20x24x16 voxels at 1 mm
    root = vd.decathlon(tmp_path / "Task97_Tiny", n=5)
    monkeypatch.setattr(seg3d, "_timed_scoring", lambda *a: (3.0, math.prod(vd.SHAPE)))
    calls = []
    monkeypatch.setattr(seg3d, "_timed_resampling", lambda *a: calls.append(a) or 5.0)
    cfg = plan("table3", "tiny", data_dir=str(root))[0].config
    at_its_spacing = seg3d.Segmentation3dTask.scoring_seconds(task_context(make_config(cfg)))
    assert at_its_spacing == pytest.approx(3.0) and calls == []  # nothing to take back
    moved = make_config(cfg, {"target_spacing": [2.0, 1.0, 1.0]})
    assert seg3d.Segmentation3dTask.scoring_seconds(task_context(moved)) == pytest.approx(3.0 + 5.0)
    assert calls == [(3, vd.SHAPE, (1.0, 1.0, 1.0), (2.0, 1.0, 1.0))]


def test_timing_runs_in_a_process_that_has_freed_a_large_buffer_as_a_runs_has(monkeypatch):
    """glibc's malloc serves blocks above its mmap threshold with fresh pages until a block that large was freed; a
    run's process has freed large buffers reading its data, a dry run's had not (its steps paid page faults: the
    small networks' estimates 16-44 % high, 47 % beside the test suite). Every timing frees one buffer near
    glibc's largest threshold first, and times with the run's threads."""
    import importlib

    est = importlib.import_module("poolskip.experiments.reproduce.estimate")
    sizes, empty = [], torch.empty

    def recording(*size, **kw):
        sizes.append(math.prod(size) if size and isinstance(size[0], int) else 0)
        return empty(*size, **kw)

    monkeypatch.setattr(torch, "empty", recording)
    r = next(r for r in plan("table1", "tiny") if r.key == "plain")
    r = dataclasses.replace(r, config={**r.config, "run": {**r.config["run"], "threads": 1}})
    before = torch.get_num_threads()
    with est._as_the_run(r):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    assert 16 * 2**20 < est._FREED_BUFFER <= 32 * 2**20 and est._FREED_BUFFER in sizes


def test_step_time_is_the_median_after_warm_up_not_the_fastest_call(monkeypatch):
    """A run's steps average what the median of timed steps sees; the fastest call is one a run rarely
    repeats, and the first calls pay for allocation (a fake clock: each call takes the next duration)."""
    import importlib

    est = importlib.import_module("poolskip.experiments.reproduce.estimate")
    clock, durations = [0.0], iter([9.0, 8.0, 0.1, 0.5, 0.3, 0.4, 0.2] + [1000.0] * 20)
    monkeypatch.setattr(est.time, "perf_counter", lambda: clock[0])

    def step():
        clock[0] += next(durations)

    # two warm-up calls (9, 8) ignored; then at least 3 calls, more while under the 1.4 s budget: 0.1..0.2
    # (1.5 s); the 1000 s call is not reached. The fastest call (0.1) is not the answer.
    assert est._time(step, 3, budget=1.4) == pytest.approx(0.3)


def test_a_run_with_fewer_inputs_than_its_batch_is_timed_and_sized_on_those_inputs(monkeypatch):
    """A tiny run of 64 images at batch size 128 steps once on 64: its step is timed, and its memory counted, at
    64 inputs (timed at 128, fig3's tiny Pool Skip step was estimated 1.7x the run's)."""
    import importlib

    est = importlib.import_module("poolskip.experiments.reproduce.estimate")
    r = next(r for r in plan("fig3", "tiny") if r.key == "pool_skip")
    g = est.geometry(r.config)
    assert r.config["optim"]["batch_size"] == 128 and g.n_train == 64 and g.steps_per_epoch == 1
    assert est._step_batch(r, g) == 64
    big = dataclasses.replace(g, n_train=1000, steps_per_epoch=8)
    assert est._step_batch(r, big) == 128
    batches = []
    monkeypatch.setattr(est, "_time_pass", lambda make, macs, batch, shape, least, steps: batches.append(batch) or 1.0)
    est._time_train_step(r, g, 10**6, 1, net=torch.nn.Conv2d(3, 10, 1))
    sized = []
    monkeypatch.setattr(est, "_train_bytes", lambda net, batch, shape, opt: sized.append(batch) or (1, 1, 1))
    est.peak_memory(r)
    assert batches == [64] and sized == [64]


def test_a_data_dir_the_runs_do_not_read_is_said(tmp_path, capsys):
    """The tiny scales train on scikit-learn's digits, which ship with it: a --data-dir given there is not read,
    and the command says so instead of planning on digits in silence."""
    _run(_args("table5", tmp_path, "--scale", "tiny", "--dry-run", "--time-steps", "0", "--data-dir", "somewhere"))
    assert "--data-dir somewhere is not read by the runs on digits" in capsys.readouterr().out
    runs = plan("table5", "tiny", data_dir="somewhere")
    assert runs and all(r.dataset == "digits" and r.config["data"]["data_dir"] is None for r in runs)
    assert plan("table2", "tiny", data_dir="somewhere")[0].config["data"]["data_dir"] == "somewhere"
    _run(_args("table5", tmp_path, "--scale", "tiny", "--dry-run", "--time-steps", "0"))
    assert "is not read" not in capsys.readouterr().out


def test_a_dataset_that_is_one_of_the_tables_columns_gets_that_column_and_its_recipe():
    """Tables 2 and 3 let any --dataset stand in for their first column, but the paper's own second column is
    its own: VOC with DeepLab's VOC recipe and the paper's VOC numbers, AMOS with the AMOS protocol."""
    voc = plan("table2", "paper", dataset="voc")
    assert {(r.column, r.recipe) for r in voc} == {("voc", "deeplab_voc")}
    assert {r.column for r in plan("table3", "paper", dataset="amos")} == {"amos"}
    assert {r.column for r in plan("table2", "paper", dataset="camvid")} == {"cityscapes"}  # a stand-in


def test_only_a_folder_named_100_stands_in_for_cifar100(tmp_path):
    from poolskip.experiments.reproduce.plan import _paper_column

    columns = ("cifar100", "cifar10")  # the paper's order (Table 1): a stand-in falls to the last
    assert _paper_column("imagefolder", columns, str(tmp_path / "cifar100-jpg")) == "cifar100"
    assert _paper_column("imagefolder", columns, str(tmp_path / "cifar10-1000")) == "cifar10"
    assert _paper_column("imagefolder", columns, str(tmp_path / "cifar10-jpg")) == "cifar10"
