"""The run-dir reader (experiments/results.py), the table renderer (experiments/tables.py), the placement
summary.json records (engine/placement.py) and `poolskip report` grouping by it, on real tiny runs."""

import csv
import json
import shutil

import pytest
import torch

from poolskip.cli import main
from poolskip.engine.placement import placement, placement_name
from poolskip.engine.rundir import RunDir
from poolskip.experiments.results import (
    ResultsError,
    code_note,
    commit_of,
    placement_key,
    placement_label,
    read_history,
    read_summary,
    run_status,
)
from poolskip.experiments.tables import Column, Stat, markdown, ours_minus_paper, to_csv
from poolskip.models import create_model

TINY = ["--model", "small_cnn", "--set", "model_kwargs={width: 4}", "batch_size=64", "threads=1", "train_subset=128"]

#: run name -> pool_skip value: plain, Pool Skip, a Table 4 ablation and a cost control
PLACEMENTS = {
    "plain": "false",
    "pool_skip": "true",
    "conv_skip": "{variant: conv_skip}",
    "depthwise": "{groups: depthwise}",
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Real tiny runs in one directory: the four placements, Pool Skip with two seeds."""
    root = tmp_path_factory.mktemp("runs")
    for name, value in PLACEMENTS.items():
        seeds = ["--seeds", "0", "1"] if name == "pool_skip" else []
        argv = ["train", *TINY, "--set", f"pool_skip={value}", "--epochs", "1", *seeds]
        assert main([*argv, "--out-dir", str(root), "--run-name", name]) == 0
    return root


def test_summary_records_the_resolved_placement(runs):
    s = {name: read_summary(runs / name / "seed0") for name in PLACEMENTS}
    assert s["plain"].placement == {"pool_skip": False}
    full = s["pool_skip"].placement
    assert full["pool_skip"] and full["variant"] == "full" and full["groups"] == 1 and full["kernel_size"] == 3
    assert full["sites"] >= 1 and full["pool_size"] == [[2, 2]]
    assert s["conv_skip"].placement == {**full, "variant": "conv_skip"}
    assert s["depthwise"].placement == {**full, "groups": "depthwise"}
    assert all(x.model_kwargs == {"width": 4} and x.metric == "test_error" for x in s.values())
    assert "variant" not in json.loads((runs / "plain" / "seed0" / "summary.json").read_text())
    assert [r["epoch"] for r in read_history(runs / "plain" / "seed0")] == [1]


def test_report_keeps_pool_skip_its_ablation_and_controls_apart(runs, tmp_path, capsys):
    capsys.readouterr()
    assert main(["report", str(runs), "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| small_cnn (width=4) | digits |")]
    assert len(rows) == 4, out
    labels = [row.split(" | ")[3] for row in rows]
    assert labels[0] == "plain" and labels[1].startswith("Pool Skip (")
    assert {labels[2].split(" (")[0], labels[3].split(" (")[0]} == {"Pool Skip {Conv,Skip}", "Pool Skip, depthwise"}
    by_label = {r["placement"]: r for r in csv.DictReader(open(tmp_path / "rep" / "report.csv"))}
    plain = read_summary(runs / "plain" / "seed0").final
    for name in ("conv_skip", "depthwise"):
        s = read_summary(runs / name / "seed0")
        row = by_label[placement_label(s.placement)]
        assert row["ours_n"] == "1" and float(row["ours_mean"]) == s.final
        assert float(row["vs_plain"]) == pytest.approx(s.final - plain)
    finals = [read_summary(runs / "pool_skip" / f"seed{k}").final for k in (0, 1)]
    row = by_label[labels[1]]
    assert row["ours_n"] == "2" and float(row["ours_mean"]) == pytest.approx(sum(finals) / 2)
    assert float(row["vs_plain"]) == pytest.approx(sum(finals) / 2 - plain)
    assert by_label["plain"]["vs_plain"] == "" and by_label["plain"]["ours_std"] == ""
    assert "paper" not in out  # a report cannot know the runs followed the paper's protocol
    assert (tmp_path / "rep" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["report", str(tmp_path / "rep")]) == 2
    assert "no finished run (summary.json) under" in capsys.readouterr().err


def test_every_run_names_the_code_that_trained_it_and_the_report_says_which(runs, tmp_path, capsys):
    """summary.json's versions.poolskip_commit: the checkout's commit (``+changes`` where src/ differs from it);
    the report names the commits of its runs, and says when they are several (config.yaml cannot tell code
    changes apart)."""
    import re

    from poolskip.engine.trainer import source_commit

    commit = source_commit()
    assert commit_of(read_summary(runs / "plain" / "seed0")) == commit
    if commit is not None:  # an editable install in a git checkout (CI's)
        assert re.fullmatch(r"[0-9a-f]{40}(\+changes)?", commit)
    capsys.readouterr()
    assert main(["report", str(runs), "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "Code: poolskip commit " in out and "may mix" not in out  # one checkout made them all
    assert code_note([]) == ""
    assert code_note(["a" * 40, "a" * 40]) == "Code: poolskip commit aaaaaaaaaa (2 runs)."
    mixed = code_note(["a" * 40, "b" * 40 + "+changes", None])
    assert "commit aaaaaaaaaa (1 run), bbbbbbbbbb+changes (1 run), not recorded (1 run: " in mixed
    assert "a row whose runs come from several commits may mix such changes" in mixed


def test_report_keeps_runs_trained_differently_apart_and_counts_each_run_once(runs, tmp_path, capsys):
    """Runs of one model and placement trained with other epochs are another row, labelled by what differs,
    paired with the plain row of their own protocol; a run named twice is read once; two runs of one row and
    seed are refused (either would be a silently wrong mean)."""
    import yaml

    tree = tmp_path / "tree"
    for name in ("plain", "pool_skip"):
        shutil.copytree(runs / name / "seed0", tree / name / "seed0", ignore=shutil.ignore_patterns(".lock"))
        longer = tree / f"{name}_e9" / "seed0"
        shutil.copytree(runs / name / "seed0", longer, ignore=shutil.ignore_patterns(".lock"))
        config = yaml.safe_load((longer / "config.yaml").read_text())
        config["optim"]["epochs"] = 9
        (longer / "config.yaml").write_text(yaml.safe_dump(config))
        summary = json.loads((longer / "summary.json").read_text())
        (longer / "summary.json").write_text(json.dumps({**summary, "final": {"plain": 10.0, "pool_skip": 7.0}[name]}))
    capsys.readouterr()
    assert main(["report", str(tree), str(tree / "plain" / "seed0"), "--out", str(tmp_path / "rep")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "rep" / "report.csv")))
    assert [(r["protocol"], r["placement"].split(" (")[0], r["ours_n"]) for r in rows] == [
        ("epochs=1", "plain", "1"), ("epochs=1", "Pool Skip", "1"), ("epochs=9", "plain", "1"),
        ("epochs=9", "Pool Skip", "1"),
    ]  # fmt: skip
    plain, ours = (read_summary(runs / name / "seed0").final for name in ("plain", "pool_skip"))
    assert float(rows[1]["vs_plain"]) == pytest.approx(ours - plain) and float(rows[3]["vs_plain"]) == -3.0
    held = RunDir(tree / "plain_e9" / "seed0")  # a run another process writes (resumed with more epochs, say)
    held.open(resume=True)
    try:
        assert main(["report", str(tree), "--out", str(tmp_path / "rep3")]) == 0
        out, err = capsys.readouterr()
        assert "note: left out 1 run(s) another process is writing" in err and "epochs=9" in out
        assert [r["placement"].split(" (")[0] for r in csv.DictReader(open(tmp_path / "rep3" / "report.csv"))] == [
            "plain", "Pool Skip", "Pool Skip",
        ]  # fmt: skip
    finally:
        held.close()
    shutil.copytree(runs / "pool_skip" / "seed0", tree / "again" / "seed0", ignore=shutil.ignore_patterns(".lock"))
    assert main(["report", str(tree), "--out", str(tmp_path / "rep2")]) == 2
    err = capsys.readouterr().err
    assert "are two finished runs of one row (seed 0, the same config)" in err and str(tree / "again") in err


def test_a_run_missing_a_key_never_joins_two_runs_that_differ_in_it_into_one_row(runs, tmp_path, capsys):
    """Run a (an older poolskip's config, without optim.warmup_epochs) agrees with b (warm-up 0) and with c
    (warm-up 5), which disagree: b and c are never one row, whatever a agrees with."""
    import yaml

    tree = tmp_path / "tree"
    for name, seed, warmup in (("a", 0, None), ("b", 1, 0.0), ("c", 1, 5.0)):
        run = tree / name / f"seed{seed}"
        shutil.copytree(runs / "pool_skip" / f"seed{seed}", run, ignore=shutil.ignore_patterns(".lock"))
        config = yaml.safe_load((run / "config.yaml").read_text())
        if warmup is None:
            del config["optim"]["warmup_epochs"]
        else:
            config["optim"]["warmup_epochs"] = warmup
        (run / "config.yaml").write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["report", str(tree), "--out", str(tmp_path / "rep")]) == 0, capsys.readouterr().err
    rows = list(csv.DictReader(open(tmp_path / "rep" / "report.csv")))
    assert [(r["protocol"], r["ours_n"]) for r in rows] == [("warmup_epochs=0.0", "2"), ("warmup_epochs=5.0", "1")]


def test_a_summary_without_required_fields_is_a_one_line_error_naming_the_file(runs, tmp_path, capsys):
    run = tmp_path / "old" / "seed0"
    shutil.copytree(runs / "plain" / "seed0", run)
    summary = json.loads((run / "summary.json").read_text())
    del summary["placement"], summary["model_kwargs"]
    (run / "summary.json").write_text(json.dumps(summary))
    capsys.readouterr()
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"{run / 'summary.json'} lacks model_kwargs, placement" in err
    (run / "summary.json").write_text(json.dumps({**summary, "final_error": 1.0, "placement": {}, "model_kwargs": {}}))
    with pytest.raises(ResultsError, match="'placement' must be a mapping with 'pool_skip'"):
        read_summary(run)


def test_run_status_tells_each_state_apart(runs, tmp_path):
    d = tmp_path / "r"
    assert run_status(d) == "new"
    d.mkdir()
    assert run_status(d) == "new"
    (d / "config.yaml").write_text("task: classification\n")
    assert run_status(d) == "stale"
    (d / "checkpoints").mkdir()
    (d / "checkpoints" / "last.pt").write_bytes(b"")
    assert run_status(d) == "incomplete"
    holder = RunDir(d)
    holder.open(resume=True)
    try:
        assert run_status(d) == "running"
    finally:
        holder.close()
    assert run_status(d) == "incomplete"
    assert run_status(runs / "plain" / "seed0") == "finished"


def test_a_model_option_at_its_default_is_the_same_network():
    """resnet18 with width=64 written out and resnet18 without it are one network: they were two rows."""
    from poolskip.experiments.results import model_key, model_label

    assert model_key("resnet18", {"width": 64}) == model_key("resnet18", {}) == "resnet18"
    assert model_key("resnet18", {"width": 8}) == "resnet18 (width=8)"
    assert model_key("pkg.mod:make", {"width": 64}) == "pkg.mod:make (width=64)"  # not registered: as written
    assert model_label("resnet18", {"width": 64}) == "resnet18 (width=64)"  # a row is shown as its runs wrote it


def test_a_lock_is_tested_as_nfs_allows(tmp_path, monkeypatch):
    """On NFS, flock is a byte-range lock: an exclusive one on a file opened read-only fails (EBADF). The test
    opened .lock read-only and took any failure as held, so every started run there read as "running"."""
    import errno
    import fcntl

    from poolskip.engine.rundir import lock_held

    flock = fcntl.flock

    def nfs_flock(fh, op):
        if op & fcntl.LOCK_EX and "r" == getattr(fh, "mode", ""):
            raise OSError(errno.EBADF, "Bad file descriptor")
        return flock(fh, op)

    monkeypatch.setattr(fcntl, "flock", nfs_flock)
    d = tmp_path / "run"
    holder = RunDir(d)
    holder.open(resume=False)
    try:
        assert lock_held(d) and run_status(d) == "running"
    finally:
        holder.close()
    assert not lock_held(d) and run_status(d) == "new"  # only its .lock stays
    monkeypatch.setattr(fcntl, "flock", lambda fh, op: (_ for _ in ()).throw(OSError(errno.ENOLCK, "No locks")))
    assert not lock_held(d)  # a lock that cannot be tested at all is not taken as held


def test_placement_groups_what_builds_the_same_network():
    def of(value):
        return placement("resnet18", value, create_model("resnet18", width=4, pool_skip=value))

    paper = of(True)
    assert paper["pool_skip"] and paper["policy"] and paper["variant"] == "full"
    assert of({"policy": paper["policy"]}) == paper  # named or implied, the same network
    assert of(4)["pool_size"] == [[4, 4]] != paper["pool_size"]
    assert of(None) == of("plain") == {"pool_skip": False}
    assert of({"variant": "pool_conv"})["variant"] == "pool_conv"
    assert [placement_name("resnet18", v) for v in (None, True, {"variant": "conv_skip"}, {"groups": "depthwise"})] == [
        "plain", "pool_skip", "pool_skip-conv_skip", "pool_skip-depthwise",
    ]  # fmt: skip
    label = placement_label(of({"variant": "conv_skip", "groups": "depthwise"}))
    assert label.startswith("Pool Skip {Conv,Skip}, depthwise (") and f"{paper['sites']} sites" in label
    # inner convs without bias, or started as the identity: another network (or start), another row; the
    # defaults are not written, so a default placement reads as it did before these were recorded
    assert "bias" not in paper and "zero_init" not in paper and of({"bias": True, "zero_init": False}) == paper
    assert of({"bias": False}) == {**paper, "bias": False} and of({"zero_init": True}) == {**paper, "zero_init": True}
    assert placement_label(of({"bias": False, "zero_init": True})).startswith("Pool Skip, no bias, zero init (")
    # a placement that never pools is {Conv,Skip} whatever pool size its config named: one row, no pool named
    conv_skip = placement_key(of({"variant": "conv_skip"}))
    assert placement_key(of({"variant": "conv_skip", "pool_size": 4})) == conv_skip == placement_key(of(1))
    assert "pool" not in placement_label(of(1)).split("(")[1] and placement_label(of(1)).startswith("Pool Skip {Conv,")
    assert placement_key(of(4)) != placement_key(paper)


def test_one_renderer_for_markdown_and_csv():
    rows = [
        {"row": "plain", "ours": Stat((10.0, 12.0, 14.0)), "diff": None},
        {"row": "a|b", "ours": Stat((9.5,)), "diff": -2.5},
        {"row": "none", "ours": Stat(()), "diff": 0.5},
    ]
    cols = [Column("row", "row", False), Column("ours", "ours"), Column("diff", "− plain", signed=True)]
    assert markdown(rows, cols).splitlines() == [
        "| row | ours | − plain |",
        "|---|---:|---:|",
        "| plain | 12.00 ± 2.00 (n=3) | - |",
        "| a\\|b | 9.50 (n=1) | -2.50 |",
        "| none | - | +0.50 |",
    ]
    lines = to_csv(rows, cols).splitlines()
    assert lines[0] == "row,ours_mean,ours_std,ours_n,ours_values,diff"
    assert lines[1] == "plain,12.0,2.0,3,10.0 12.0 14.0,"
    assert lines[2] == "a|b,9.5,,1,9.5,-2.5"
    assert lines[3] == "none,,,0,,0.5"


def test_ours_minus_paper_only_on_the_papers_dataset_at_the_papers_scale():
    assert ours_minus_paper(6.0, 5.0, dataset="cifar10", paper_dataset="cifar10", scale="paper") == 1.0
    assert ours_minus_paper(6.0, 5.0, dataset="cifar10", paper_dataset="cifar100", scale="paper") is None
    assert ours_minus_paper(6.0, 5.0, dataset="cifar10", paper_dataset="cifar10", scale="quick") is None
    assert ours_minus_paper(None, 5.0, dataset="cifar10", paper_dataset="cifar10", scale="paper") is None


def test_folds_read_their_status_through_the_reader(runs, tmp_path):
    """run_folds keeps a finished fold as it is (its status, not a file test of its own)."""
    import yaml

    from poolskip.engine.config import make_config
    from poolskip.experiments import folds3d

    fold = tmp_path / "f" / "fold0"
    shutil.copytree(runs / "plain" / "seed0", fold)
    before = (fold / "summary.json").read_text()
    cfg = make_config({"task": "segmentation3d", "model": "vnet", "data": {"dataset": "decathlon"},
                       "segmentation3d": {"num_folds": 2}})  # fmt: skip
    task = folds3d._cross_validated(cfg.task)
    (fold / "config.yaml").write_text(yaml.safe_dump(folds3d._fold_config(cfg, task, 0, tmp_path / "f").to_dict()))
    said = []
    assert folds3d.run_folds(cfg, tmp_path / "f", folds=[0], log=said.append) == [fold]
    assert "finished" in said[0] and (fold / "summary.json").read_text() == before
    assert torch.load(fold / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1


def test_only_the_writer_rank_opens_a_run_directory(tmp_path):
    """Under DDP every rank opens the run after the writer may have written it: a slow non-writer rank must not
    check the directory again and find the writer's new ``config.yaml`` (it refused the run as "already holds a
    run", exit 2, when the CPU was busy)."""
    d = tmp_path / "run"
    writer = RunDir(d)
    writer.check(resume=False)
    other = RunDir(d, writer=False)
    other.check(resume=False)  # both ranks check before anything is written
    writer.open(resume=False)
    (d / "config.yaml").write_text("model: x\n")  # the writer's first file
    try:
        other.open(resume=False)  # the slow rank arrives now: nothing to refuse, nothing written
        assert sorted(p.name for p in d.iterdir()) == [".lock", "config.yaml"]
        with pytest.raises(Exception, match="holds a run"):
            RunDir(d).open(resume=False)  # a second writer is still refused
    finally:
        writer.close()
