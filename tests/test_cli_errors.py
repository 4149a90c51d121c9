"""Bad input and faults, as a user meets them through the CLI: one-line errors (exit 2, no traceback) and
nothing already computed lost. Each row of BAD_VALUES is an input a user can get wrong."""

import json
import sys

import pytest
import torch
import yaml

from poolskip import __version__
from poolskip.cli import main
from poolskip.engine.rundir import RunDir, new_run_dir

TINY = ["--model", "small_cnn", "--epochs", "1", "--set", "model_kwargs={width: 4}", "train_subset=64", "threads=1"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished tiny run directory (digits, small_cnn, 1 epoch)."""
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", *TINY, "--out-dir", str(root), "--run-name", "ok"]) == 0
    return root / "ok" / "seed0"


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith(f"poolskip {command}: error: "), err
    return err


BAD_VALUES = [
    (["--lr", "-1"], "'optim.lr' must be >= 0.0, got -1.0"),
    (["--set", "train_subset=0"], "'data.train_subset' must be >= 1, got 0"),
    (["--set", "threads=0"], "'run.threads' must be >= 1, got 0"),
    (
        ["--set", "label_smoothing=1.5"],
        "'classification.label_smoothing' must be < 1.0 (at 1 every target is uniform: nothing to learn), got 1.5",
    ),
    (["--set", "cutout=-1"], "'classification.cutout' must be >= 0, got -1"),
    (["--set", "warmup_epochs=-2"], "'optim.warmup_epochs' must be >= 0.0, got -2.0"),
    (["--set", "checkpoint_every=-1"], "'run.checkpoint_every' must be >= 0, got -1"),
    (["--set", "eval_every=0"], "'run.eval_every' must be >= 1, got 0"),
    (["--seeds", "-1"], "'run.seed' must be >= 0, got -1"),
    (["--set", "schedule=linear"], "'optim.schedule' must be one of multistep, cosine, poly, constant; got 'linear'"),
    (["--set", "lr=[1"], "--set 'lr=[1': the value is not valid YAML"),
    (["--set", "epochs=two"], "'optim.epochs' expects an integer, got 'two'"),
    (["--pool-skip", "nowhere"], "unknown placement policy 'nowhere'"),
    (["--set", "model_kwargs={depth: 3}"], "model 'small_cnn' has no option(s) ['depth']"),
    (["--device", "cuda"], "has no CUDA GPU"),
    (["--task", "detection"], "'task' must be one of ['classification'"),
    (["--set", "segmentation.crop=3"], "unknown config key 'segmentation.crop'"),
    (["--dataset", "mnist"], "unknown dataset 'mnist'"),
    (["--dataset", "camvid"], "('camvid' is a 2D segmentation dataset: set --task segmentation)"),
    (["--task", "segmentation", "--dataset", "cifar10"], "('cifar10' is an image classification dataset: set --task"),
    (["--task", "segmentation3d", "--dataset", "voc"], "choose one of decathlon, nnunet, btcv, amos ('voc' is a 2D"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_VALUES, ids=[" ".join(a) for a, _ in BAD_VALUES])
def test_bad_values_are_one_line_errors(argv, message, tmp_path, capsys):
    if argv[:2] == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["train", *TINY, "--out-dir", str(tmp_path), *argv]) == 2
    assert message in one_line_error(capsys, "train")
    assert not list(tmp_path.glob("*/*/checkpoints"))  # nothing half-started


def test_bad_recipe_files(tmp_path, capsys):
    binary = tmp_path / "r.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    broken = tmp_path / "broken.yaml"
    broken.write_text("lr: [0.1\n")
    for recipe, message in (
        (tmp_path, "is a directory"),
        (binary, "is not text"),
        (broken, "is not valid YAML"),
        (tmp_path / "missing.yaml", "does not exist"),
        ("nonesuch", "unknown recipe 'nonesuch': built-in recipes are"),
    ):
        assert main(["train", "--recipe", str(recipe), "--out-dir", str(tmp_path)]) == 2
        assert message in one_line_error(capsys, "train")


def test_empty_class_folder(tmp_path, capsys):
    from PIL import Image

    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (tmp_path / "data" / split / cls).mkdir(parents=True)
            if not (split == "train" and cls == "dog"):
                Image.new("RGB", (8, 8)).save(tmp_path / "data" / split / cls / "a.png")
    args = ["--dataset", "imagefolder", "--data-dir", str(tmp_path / "data"), "--set", f"cache_dir={tmp_path / 'c'}"]
    assert main(["train", *TINY, *args, "--out-dir", str(tmp_path / "runs")]) == 2
    err = one_line_error(capsys, "train")
    assert "dog" in err and "imagefolder" in err


def test_checkpoints_never_import_code_they_name(finished_run, tmp_path, capsys, monkeypatch):
    """A crafted checkpoint naming a factory outside poolskip is refused unless the user opts in."""
    marker = tmp_path / "imported"
    (tmp_path / "evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from poolskip.models.toy import small_cnn as factory\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ck = torch.load(finished_run / "checkpoints" / "last.pt", weights_only=True)
    ck["config"]["model"] = "evil:factory"
    crafted = tmp_path / "crafted.pt"
    torch.save(ck, crafted)
    for argv in (["eval", str(crafted)], ["diagnose", str(crafted), "--out", str(tmp_path / "d")]):
        assert main(argv) == 2
        assert "--allow-external-model" in one_line_error(capsys, argv[0])
    assert not marker.exists() and "evil" not in sys.modules
    assert main(["eval", str(crafted), "--allow-external-model", "--json"]) == 0  # the user's explicit choice
    assert marker.exists()
    assert json.loads(capsys.readouterr().out)["test_error"] >= 0

    # a run directory's config is data too: --resume does not import what it names
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").mkdir()
    torch.save(ck, run / "checkpoints" / "last.pt")
    (run / "config.yaml").write_text(yaml.safe_dump(ck["config"]))
    marker.unlink()
    del sys.modules["evil"]
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 2
    assert "--allow-external-model" in one_line_error(capsys, "train") and not marker.exists()


def test_foreign_and_corrupt_checkpoints(finished_run, tmp_path, capsys):
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    for path, message in ((foreign, "is not a checkpoint of this poolskip version"), (garbage, "is corrupt")):
        for command in ("eval", "diagnose"):
            assert main([command, str(path), *(["--out", str(tmp_path / "d")] if command == "diagnose" else [])]) == 2
            assert message in one_line_error(capsys, command)


def test_resume_keeps_config_until_it_runs_cleans_temp_files_and_names_corrupt_checkpoints(tmp_path, capsys):
    assert main(["train", *TINY, "--out-dir", str(tmp_path), "--run-name", "r"]) == 0
    run = tmp_path / "r" / "seed0"
    config = (run / "config.yaml").read_text()
    # an override that cannot work: the resume fails, and the run's config is as it was
    assert main(["train", "--resume", str(run), "--set", "model_kwargs={width: 8}", "epochs=2"]) == 2
    assert "does not fit the model" in one_line_error(capsys, "train")
    assert (run / "config.yaml").read_text() == config
    # a kill during a checkpoint write leaves a temp file: the next start removes it
    stale = run / "checkpoints" / ".last.pt.x1y2.tmp"
    stale.write_bytes(b"half")
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    assert not stale.exists() and yaml.safe_load((run / "config.yaml").read_text())["optim"]["epochs"] == 2
    capsys.readouterr()
    # a corrupt last.pt names itself and points at best.pt
    (run / "checkpoints" / "last.pt").write_bytes(b"\x00" * 10)
    assert main(["train", "--resume", str(run), "--epochs", "3"]) == 2
    err = one_line_error(capsys, "train")
    assert "last.pt is corrupt" in err and "best.pt" in err


def test_one_writer_per_run_directory(tmp_path, capsys):
    # a partial run (config.yaml, no checkpoint) is never overwritten silently
    partial = tmp_path / "p" / "seed0"
    partial.mkdir(parents=True)
    (partial / "config.yaml").write_text("task: classification\n")
    assert main(["train", *TINY, "--out-dir", str(tmp_path), "--run-name", "p"]) == 2
    assert "holds a run that stopped before its first checkpoint" in one_line_error(capsys, "train")
    # a second writer is refused while the first holds the directory
    holder = RunDir(partial)
    holder.open(resume=False, overwrite=True)
    try:
        assert main(["train", *TINY, "--out-dir", str(tmp_path), "--run-name", "p", "--overwrite"]) == 2
        assert "is being written by pid" in one_line_error(capsys, "train")
    finally:
        holder.close()
    assert main(["train", *TINY, "--out-dir", str(tmp_path), "--run-name", "p", "--overwrite"]) == 0
    assert json.loads((partial / "summary.json").read_text())["epochs"] == 1
    # run names stay inside --out-dir; default names never collide
    for bad in ("../escape", "/abs"):
        assert main(["train", *TINY, "--out-dir", str(tmp_path / "o"), "--run-name", bad]) == 2
        assert "inside --out-dir" in one_line_error(capsys, "train")
    assert new_run_dir(tmp_path / "o", None, "same") != new_run_dir(tmp_path / "o", None, "same")


def test_report_names_corrupt_run_files(finished_run, tmp_path, capsys):
    import shutil

    for name, content, message in (
        ("summary.json", "{not json", "summary.json is unreadable or not JSON"),
        ("metrics.jsonl", '{"epoch": 1}\n{broken\n', "metrics.jsonl, line 2, is not JSON"),
    ):
        run = tmp_path / name / "r"
        shutil.copytree(finished_run, run)
        (run / name).write_text(content)
        assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 2
        assert message in one_line_error(capsys, "report")


def test_small_things_users_notice(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"poolskip {__version__}"
    assert main(["train", "--recipe", "digits", "--lr", "0.3", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert yaml.safe_load(printed)["optim"]["lr"] == 0.3 and "# peak learning rate" in printed
    assert not (tmp_path / "runs").exists()
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "devries_taylor" in help_text and "official" in help_text and "digits" in help_text
    assert "peak learning rate" in help_text and "config key lr" not in help_text
    assert main(["train", *TINY, "--out-dir", str(tmp_path), "--run-name", "one"]) == 0
    out = capsys.readouterr().out
    assert "1 epoch x" in out and "1 epochs" not in out


@pytest.mark.parametrize("command", ["eval", "diagnose", "ensemble"])
def test_which_that_contradicts_the_checkpoint_file_given_is_refused(command, tmp_path, capsys):
    """`CMD RUN/checkpoints/best.pt --which last` read best.pt as given: the number of another checkpoint."""
    best = tmp_path / "run" / "checkpoints" / "best.pt"
    assert main([command, str(best), "--which", "last"]) == 2
    assert f"{best} is the best checkpoint, but --which last asks for the last one" in capsys.readouterr().err
    assert main([command, str(tmp_path / "model.pt"), "--which", "last"]) == 2
    assert "--which picks a run directory's checkpoint" in capsys.readouterr().err
