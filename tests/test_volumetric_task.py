"""The segmentation3d task: the task contract, folds' pieces, ensemble (its metrics: tests/test_metrics.py)."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import pytest
import torch
import yaml

pytest.importorskip("monai")
pytest.importorskip("nibabel")
pytest.importorskip("dynamic_network_architectures")

import volumetric_data as vd  # noqa: E402
from poolskip.data import seg3d as V  # noqa: E402
from poolskip.engine import build_task, task_context  # noqa: E402
from poolskip.engine.config import make_config  # noqa: E402
from poolskip.metrics import score_volume  # noqa: E402
from poolskip.models import create_model  # noqa: E402
from poolskip.tasks import Task, get_task  # noqa: E402
from poolskip.tasks.segmentation3d import deep_supervision_weights, ensemble  # noqa: E402


def _plate(x: slice, z: int, shape=(10, 8, 6)) -> torch.Tensor:
    """A one-voxel-thick plate of class 1: every voxel of it is a surface voxel."""
    t = torch.zeros(shape, dtype=torch.long)
    t[x, 2:6, z] = 1
    return t


def test_deep_supervision_weights_are_nnunets():
    assert deep_supervision_weights(1) == [1.0]
    assert deep_supervision_weights(4) == pytest.approx([4 / 7, 2 / 7, 1 / 7, 0.0])


# ------------------------------------------------------------------------------------------ the task


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = vd.decathlon(tmp_path_factory.mktemp("Task98_Tiny"), n=5)
    cache = tmp_path_factory.mktemp("cache")

    def cfg(**task):
        return make_config({
            "task": "segmentation3d", "model": "nnunet", "pool_skip": True, "data": {"dataset": "decathlon",
            "data_dir": str(root), "cache_dir": str(cache)}, "optim": {"batch_size": 3}, "run": {"seed": 7},
            "segmentation3d": {"iterations": 2, "patch_size": [16, 16, 16], **task},
        })  # fmt: skip

    return cfg


def test_task_contract(setup):
    cfg = setup()
    cls = get_task("segmentation3d")
    task = cls(task_context(cfg))
    assert isinstance(task, Task) and cls.monitor.metric == "dice" and cls.monitor.mode == "max"
    spec = task.model_spec()
    assert (spec.in_channels, spec.num_classes, spec.spatial_dims) == (1, 3, 3)
    assert spec.hints == {"patch_size": (16, 16, 16), "spacing": (1.0, 1.0, 1.0)}
    assert len(task.train_ids) == 4 and len(task.eval_ids) == 1 and "fold 0 of 5" in task.describe()
    assert task.steps_per_epoch() == 2

    batches = list(task.train_batches(3))
    assert len(batches) == 2 and batches[0].inputs.shape == (3, 1, 16, 16, 16) and batches[0].global_size == 3
    again = cls(task_context(cfg))  # a fresh process: same batches for (seed, epoch, step)
    resumed = next(iter(again.train_batches(3, start=1)))
    assert torch.equal(resumed.inputs, batches[1].inputs) and torch.equal(resumed.targets, batches[1].targets)

    torch.manual_seed(0)
    model = create_model("nnunet", num_classes=3, pool_skip=True, **spec.hints)
    out = model(batches[0].inputs)
    assert isinstance(out, list)
    loss = task.loss(out, batches[0].targets)
    assert loss.shape == (3,) and torch.isfinite(loss).all() and loss.requires_grad
    assert task.loss(out[0], batches[0].targets).shape == (3,)

    model.eval()
    with torch.no_grad():
        metrics = task.evaluate(model, nullcontext)
    assert {"dice", "nsd", "iou", "dice_per_class", "nsd_per_class", "iou_per_class"} <= set(metrics)
    assert 0.0 <= metrics["dice"] <= 100.0 and len(metrics["dice_per_class"]) == 2 and metrics["eval_volumes"] == 1

    x, y = task.probe_batch(2, seed=1)
    x2, y2 = task.probe_batch(2, seed=1)
    assert x.shape == (2, 1, 16, 16, 16) and torch.equal(x, x2) and torch.equal(y, y2)
    assert task.probe_loss(model(x), y).dim() == 0

    state = task.state()
    torch.save(state, "/dev/null")  # plain values only
    rebuilt = cls(task_context(setup(fold=2, patch_size=None)), state=state)  # the state wins over the config
    assert rebuilt.eval_ids == task.eval_ids and rebuilt.patch_size == task.patch_size
    assert torch.equal(next(iter(rebuilt.train_batches(3))).inputs, batches[0].inputs)


def test_folds_share_one_split_and_one_plan(setup, tmp_path):
    split = tmp_path / "splits.json"
    tasks = [build_task(setup(fold=k, split_file=str(split), patch_size=None)) for k in (0, 4)]
    assert split.exists()
    assert not set(tasks[0].eval_ids) & set(tasks[1].eval_ids)
    assert tasks[0].patch_size == tasks[1].patch_size == [20, 24, 16]  # planned once from the training part
    with pytest.raises(Exception, match="no labelled test set"):
        build_task(setup(fold=-1))


def test_ensemble_averages_softmax(setup, monkeypatch):
    import io

    from poolskip.progress import reporting

    class Tty(io.StringIO):
        def isatty(self):
            return True

    task = build_task(setup())
    torch.manual_seed(0)
    models = [create_model("nnunet", num_classes=3, **task.model_spec().hints).eval() for _ in range(2)]
    one = ensemble(task, models[:1])
    lines: list[str] = []
    monkeypatch.setattr("sys.stderr", tty := Tty())
    with reporting(lines.append, every=0):  # progress: a line per volume and the time, windows on the bar
        two = ensemble(task, models)
    assert lines[-1].startswith("ensemble of 2: 1 volume in ") and "windows" in tty.getvalue()
    assert one["models"] == 1 and two["models"] == 2 and one["eval_volumes"] == 1
    vol = task.eval_vols[0]
    probs = (
        task.predict(models[0], vol["image"], nullcontext) + task.predict(models[1], vol["image"], nullcontext)
    ) / 2
    expected = score_volume(probs.argmax(0), vol["label"], 3, task.spacing)
    assert two["dice_per_class"] == pytest.approx([v * 100 for v in expected[0].tolist()], nan_ok=True)


def test_evaluation_and_ensembles_score_each_case_in_its_own_voxel_grid(setup, monkeypatch):
    """With ``target_spacing`` 2 mm the 1 mm cases are scored in their own grid: a prediction that is the
    resampled label scores below 100 against the label as read, the same for evaluate and ensemble."""
    import nibabel as nib

    task = build_task(setup(target_spacing=[2.0, 2.0, 2.0], patch_size=[8, 8, 8]))
    vol = task.eval_vols[0]
    assert vol["label"].shape == (10, 12, 8)  # the 20 x 24 x 16 case at 2 mm
    perfect = torch.nn.functional.one_hot(vol["label"].long(), 3).movedim(-1, 0).float()
    monkeypatch.setattr(task, "predict", lambda model, image, autocast: perfect)
    read = nib.load(str(task.ds.cases[task.eval_ids[0]].label)).get_fdata()
    pred, label, spacing = V.to_original(perfect, vol)
    assert label.shape == read.shape and (label.numpy() == read).all() and spacing == [1.0, 1.0, 1.0]
    expected = [100 * v for v in score_volume(pred, label, 3, spacing)[0].tolist()]
    metrics = task.evaluate(torch.nn.Identity(), nullcontext)
    assert metrics["dice_per_class"] == pytest.approx(expected) and max(expected) < 99.0
    assert ensemble(task, [torch.nn.Identity()])["dice_per_class"] == pytest.approx(expected)


@pytest.mark.parametrize("recipe", ["nnunet_btcv", "nnunet_amos", "vnet_btcv", "vnet_amos", "hippocampus"])
def test_recipes_resolve(recipe):
    from poolskip.experiments.recipes import load_recipe

    cfg = make_config(load_recipe(recipe))
    assert cfg.task == "segmentation3d" and cfg.model in ("nnunet", "vnet") and cfg.options.num_folds == 5


def test_table3_layout_and_slices_png(tmp_path):
    from poolskip.experiments.table3 import format_table3, save_slices

    rows = [
        {"dataset": "BTCV", "model": "nnunet", "variant": "plain", "dice": 80.0, "nsd": 75.0, "iou": 70.0},
        {"dataset": "BTCV", "model": "nnunet", "variant": "pool_skip", "dice": 81.0, "nsd": 76.0, "iou": 71.0},
        {"dataset": "BTCV", "model": "nnunet", "variant": "pool_skip", "dice": 83.0, "nsd": 76.0, "iou": 71.0},
    ]
    rows.append({"dataset": "Hippocampus", "model": "vnet", "variant": "plain", "dice": 50.0, "nsd": float("nan"),
                 "iou": 40.0})  # fmt: skip
    text = format_table3(rows)
    # the paper's numbers (BTCV nnU-Net 81.52 / 76.10 / 72.14 plain) are never set beside ours: it cannot tell
    # how ours were scored; its own +ours − plain (82.47 - 81.52, 77.00 - 76.10, 73.08 - 72.14) is the direction
    assert "| BTCV | nnUNet | 1 | 80.00 | 75.00 | 70.00 |  |  |" in text and "81.52" not in text
    pool_skip = "| BTCV | nnUNet +ours | 2 | 82.00 ± 1.41 | 76.00 ± 0.00 | 71.00 ± 0.00 | +2.00 |"
    assert pool_skip + " +0.95 / +0.90 / +0.94 |" in text
    # a dataset the paper has no numbers for; a NaN metric is left out, not averaged
    assert "| Hippocampus | V-Net | 1 | 50.00 | - | 40.00 |  |  |" in text
    label = _plate(slice(2, 6), 2)
    preds = {"plain": label, "pool skip": label * 0}
    png = save_slices(tmp_path / "s.png", torch.rand(1, 10, 8, 6), label, preds, classes=["background", "plate"])
    assert png.stat().st_size > 1000


def _amos_folds(tmp_path, split_file=None):
    """Two folds of a tiny AMOS copy (4 cases + 2 test) as finished run directories ``tmp_path/fold<k>``
    (summary.json written) and a fake ``load`` giving each fold's model, config and task state (a checkpoint
    file in a run's checkpoints/ folder is read as its run)."""
    train, test = ["amos_0001", "amos_0002", "amos_0507", "amos_0600"], ["amos_0003", "amos_0540"]
    root = vd.listed(tmp_path / "amos", "dataset.json", {"training": train, "validation": test})
    cfg = make_config({
        "task": "segmentation3d", "model": "nnunet", "data": {"dataset": "amos", "data_dir": str(root),
        "cache_dir": str(tmp_path / "cache")}, "segmentation3d": {"num_folds": 2, "patch_size": [8, 8, 8],
        "split_file": split_file or str(tmp_path / "splits.json")},
    })  # fmt: skip
    configs, states, models = {}, {}, {}
    torch.manual_seed(0)
    for k in (0, 1):
        d = tmp_path / f"fold{k}"
        (d / "checkpoints").mkdir(parents=True)
        (d / "summary.json").write_text("{}")
        configs[d] = make_config({**cfg.to_dict(), "segmentation3d": {**cfg.to_dict()["segmentation3d"], "fold": k}})
        states[d] = build_task(configs[d]).state()
        configs[d] = configs[d].to_dict()
        models[d] = create_model("nnunet", num_classes=3, patch_size=(8, 8, 8))

    def load(d, which, device):
        d = Path(d)
        d = d.parent.parent if d.parent.name == "checkpoints" else d
        return models[d], {"config": configs[d], "task_state": states[d]}

    return list(configs), configs, states, load


def test_ensemble_runs_scores_the_folds_on_the_test_set(tmp_path):
    from poolskip.experiments.folds3d import ensemble_runs

    dirs, configs, states, load = _amos_folds(tmp_path)
    assert states[dirs[0]]["normalisation"] == ["CT: CT window [-175, 250]; MRI: z-score"]  # AMOS: CT and MRI scans
    # where each fold ran does not count (LOCAL_KEYS), nor the fold itself
    configs[dirs[1]]["run"].update(threads=3, device="cpu", run_name="elsewhere")
    configs[dirs[1]]["segmentation3d"]["split_file"] = "moved/splits.json"
    r = ensemble_runs(dirs, load=load)
    assert r["models"] == 2 and r["eval_volumes"] == 2  # AMOS's validation list is the test set


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [(None, "pool_skip", True), ("run", "seed", 1), ("optim", "lr", 0.5), ("model_kwargs", "width", 4),
     ("segmentation3d", "sw_overlap", 0.25)],
)  # fmt: skip
def test_ensemble_runs_refuses_a_member_of_another_config(tmp_path, section, key, value):
    """Plain fold 0 with Pool Skip fold 1, or seed0/fold0 with seed1/fold1, was scored as an ensemble of one run:
    the members were compared only on their data, fold and test cases."""
    from poolskip.engine import ConfigError
    from poolskip.experiments.folds3d import ensemble_runs

    dirs, configs, _, load = _amos_folds(tmp_path)
    (configs[dirs[1]] if section is None else configs[dirs[1]][section])[key] = value
    configs[dirs[1]]["optim"]["epochs"] = 7
    name = {None: key, "model_kwargs": "model_kwargs"}.get(section, f"{section}.{key}")
    with pytest.raises(ConfigError) as refused:
        ensemble_runs(dirs, load=load)
    message = str(refused.value)
    differ = message.split("(keys that differ: ")[1].split(")")[0].split(", ")
    assert sorted(differ) == sorted([name, "optim.epochs"])  # in the config's order, the first one's values shown
    assert message.startswith(f"ensemble member {dirs[1]} was trained with {differ[0]} "), message
    if section is None:  # pool_skip (None: plain) comes before optim.epochs
        assert f"was trained with pool_skip True where {dirs[0]} has None (keys that differ: " in message
    assert "an ensemble's members are folds of one config (poolskip train --folds)" in message


def test_ensemble_runs_refuses_a_member_that_has_not_finished(tmp_path):
    """A fold still training, or killed after its first evaluation, has a best.pt: it entered the ensemble
    silently and lowered its score."""
    from poolskip.engine import ConfigError
    from poolskip.engine.rundir import RunDir
    from poolskip.experiments.folds3d import ensemble_runs

    dirs, _, _, load = _amos_folds(tmp_path)
    (dirs[1] / "summary.json").unlink()
    for name in ("last.pt", "best.pt"):
        (dirs[1] / "checkpoints" / name).write_bytes(b"")
    for member in (dirs[1], dirs[1] / "checkpoints" / "best.pt"):
        with pytest.raises(
            ConfigError, match=rf"ensemble member {member}: its run {dirs[1]} has not finished \(incomplete: "
        ):  # fmt: skip
            ensemble_runs([dirs[0], member], load=load)
    (dirs[1] / "summary.json").write_text("{}")  # finished, then resumed for more epochs: being written
    holder = RunDir(dirs[1])
    holder.open(resume=True)
    try:
        with pytest.raises(ConfigError, match=rf"member {dirs[1]}: its run {dirs[1]} has not finished \(running: "):
            ensemble_runs(dirs, load=load)
    finally:
        holder.close()
    loose = tmp_path / "best.pt"
    loose.write_bytes(b"")
    with pytest.raises(ConfigError, match=rf"member {loose} is a checkpoint file outside a run's checkpoints/"):
        ensemble_runs([dirs[0], loose], load=load)
    with pytest.raises(ConfigError, match=rf"member {tmp_path / 'fold7'}: no such run directory or checkpoint"):
        ensemble_runs([dirs[0], tmp_path / "fold7"], load=load)
    r = ensemble_runs([dirs[0], dirs[1] / "checkpoints" / "best.pt"], load=load)  # a finished run's checkpoint
    assert r["models"] == 2


def test_ensemble_runs_reads_moved_data_and_predicts_under_the_runs_precision(tmp_path, capsys, monkeypatch):
    """The ensemble predicted in fp32 whatever the folds trained under (their own evaluations: their run.amp),
    and could only read the data where the folds had it."""
    import shutil

    import poolskip.experiments.folds3d as folds3d
    from poolskip.data import DatasetError
    from poolskip.engine import ConfigError

    dirs, configs, _, load = _amos_folds(tmp_path)
    for d in dirs:
        configs[d]["run"]["amp"] = "bf16"
    seen = []
    real = folds3d.ensemble
    monkeypatch.setattr(
        folds3d, "ensemble", lambda task, models, autocast: seen.append(autocast) or real(task, models, autocast)
    )
    r = folds3d.ensemble_runs(dirs, load=load)
    assert r["amp"] == "bf16" and seen[-1].keywords == {"dtype": torch.bfloat16, "enabled": True}
    fp32 = folds3d.ensemble_runs(dirs, load=load, amp="none")
    assert fp32["amp"] == "none" and not seen[-1].keywords["enabled"] and fp32["dice"] != r["dice"]
    for d in dirs:
        configs[d]["run"]["amp"] = "fp16"  # trained on CUDA, scored on a CPU: fp32, said
    assert folds3d.ensemble_runs(dirs, load=load)["amp"] == "none"
    assert "trained under fp16, which needs CUDA; evaluating in fp32 on cpu" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--amp fp16 needs a CUDA device"):
        folds3d.ensemble_runs(dirs, load=load, amp="fp16")

    moved = tmp_path / "moved"
    shutil.move(tmp_path / "amos", moved)
    with pytest.raises(DatasetError, match="amos"):  # where the folds had it: gone
        folds3d.ensemble_runs(dirs, load=load, amp="none")
    assert folds3d.ensemble_runs(dirs, load=load, amp="none", data_dir=moved) == fp32


def test_ensemble_from_another_directory_writes_no_splits_file(tmp_path, monkeypatch):
    """Folds saved with the relative splits path of --out-dir runs: ensemble run from another directory wrote
    a new runs/.../splits.json there."""
    from poolskip.experiments.folds3d import ensemble_runs

    monkeypatch.chdir(tmp_path)
    dirs, _, _, load = _amos_folds(tmp_path, split_file="runs/x/seed0/splits.json")
    assert (tmp_path / "runs/x/seed0/splits.json").is_file()
    elsewhere = tmp_path / "analysis"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert ensemble_runs(dirs, load=load)["models"] == 2
    assert list(elsewhere.rglob("*")) == []


def _state(fold: int, train: list[str], val: list[str], **keys) -> dict:
    return {"train_ids": train, "eval_ids": val, "fold": fold, "split_file": "s.json", "channels": ["CT"],
            "classes": ["bg", "a"], "spacing": [1.0, 1.0, 1.0], "patch_size": [8, 8, 8], **keys}  # fmt: skip


def test_ensemble_members_are_compared_by_what_their_states_recorded():
    from poolskip.engine import ConfigError
    from poolskip.tasks.segmentation3d import check_ensemble_members

    a, b = _state(0, ["c", "d"], ["e"]), _state(1, ["d", "e"], ["c"])
    check_ensemble_members([("a", a), ("b", b)])
    # states written before the normalisation and the case list were recorded: compared by their channels
    with pytest.raises(ConfigError, match=r"member b: its channels \['MRI'\] where a has \['CT'\]"):
        check_ensemble_members([("a", a), ("b", {**b, "channels": ["MRI"]})])
    with pytest.raises(ConfigError, match=r"member b: its normalisation \['z-score'\] where a has \['CT window"):
        check_ensemble_members([("a", {**a, "normalisation": ["CT window [-1, 1]"]}), ("b", {**b, "normalisation":
                                ["z-score"]})])  # fmt: skip
    with pytest.raises(ConfigError, match=r"member b: its spacing 1x1x2 mm where a has 1x1x1 mm"):
        check_ensemble_members([("a", a), ("b", {**b, "spacing": [1.0, 1.0, 2.0]})])
    with pytest.raises(ConfigError, match=r"member b: its data has 4 cases where a has 3, 1 only in its data \(f\)"):
        check_ensemble_members([("a", {**a, "cases": ["c", "d", "e"]}), ("b", {**b, "cases": ["c", "d", "e", "f"]})])
    with pytest.raises(ConfigError, match="member b is the same fold as a"):
        check_ensemble_members([("a", a), ("b", {**a, "fold": 0})])
    with pytest.raises(ConfigError, match="member b is the same fold as a"):  # fold 0 again on a train_subset
        check_ensemble_members([("a", a), ("b", {**a, "train_ids": ["c"]})])
    with pytest.raises(
        ConfigError, match=r"member b was trained or validated on 1 of the 2 cases of a's test set \(x\)"
    ):
        check_ensemble_members([("a", {**a, "test_ids": ["x", "y"]}), ("b", _state(1, ["d", "x"], ["c"]))])
    # a member trained on all folds (fold -1) evaluated on the test set: its evaluation cases are not training
    check_ensemble_members([("a", {**a, "test_ids": ["x"]}), ("all", _state(-1, ["c", "d", "e"], ["x"]))])


def test_run_folds_trains_resumes_or_keeps_each_fold(setup, tmp_path, monkeypatch):
    from poolskip.experiments import folds3d

    calls = []

    def fake_train(cfg, run_dir, resume, overwrite):
        calls.append((cfg.options.fold, resume, overwrite))

    monkeypatch.setattr(folds3d, "train", fake_train)
    (tmp_path / "fold1" / "checkpoints").mkdir(parents=True)
    (tmp_path / "fold1" / "checkpoints" / "last.pt").write_bytes(b"")
    (tmp_path / "fold2").mkdir()
    (tmp_path / "fold2" / "summary.json").write_text("{}")
    (tmp_path / "fold3").mkdir()
    (tmp_path / "fold3" / "config.yaml").write_text("task: segmentation3d\n")  # killed before its first checkpoint
    cfg = setup()
    task = folds3d._cross_validated(cfg.task)
    for k in (1, 2):  # as the engine writes it first: a fold without its config is never kept or resumed
        config = folds3d._fold_config(cfg, task, k, tmp_path).to_dict()
        (tmp_path / f"fold{k}" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    dirs = folds3d.run_folds(cfg, tmp_path, folds=[0, 1, 2, 3], log=lambda *a: None)
    assert dirs == [tmp_path / f"fold{k}" for k in (0, 1, 2, 3)]
    # fold 0 new, fold 1 resumed, fold 2 finished: kept, fold 3 had nothing to resume: trained afresh
    assert calls == [(0, False, True), (1, True, False), (3, False, True)]
    assert cfg.options.fold == 0 and cfg.options.split_file is None  # the caller's config is not changed
    calls.clear()
    folds3d.run_folds(cfg, tmp_path, folds=[1, 2], log=lambda *a: None, overwrite=True)
    assert calls == [(1, False, True), (2, False, True)]  # --overwrite: every fold afresh, finished ones too


def test_folds_name_their_splits_file_by_its_absolute_path(setup, tmp_path, monkeypatch):
    """--out-dir runs stored runs/<name>/seed0/splits.json in each fold's config: read again from another
    working directory (ensemble), it named another file, written there."""
    from poolskip.experiments import folds3d

    splits = []
    monkeypatch.setattr(folds3d, "train", lambda cfg, run_dir, resume, overwrite: splits.append(cfg.options.split_file))
    monkeypatch.chdir(tmp_path)
    folds3d.run_folds(setup(), "runs", folds=[0, 1], log=lambda *a: None)
    assert splits == [str(tmp_path.resolve() / "runs" / folds3d.SPLITS_FILE)] * 2


def test_run_folds_refuses_to_keep_or_resume_a_fold_trained_with_another_config(setup, tmp_path, monkeypatch):
    """A finished fold was kept, and a half-done one resumed, under a --folds command of other epochs
    and lr: the ensemble mixed folds of two protocols, and the resume wrote the new config over the old."""
    import yaml

    from poolskip.engine.rundir import RunDirError
    from poolskip.experiments import folds3d

    calls = []
    monkeypatch.setattr(folds3d, "train", lambda cfg, run_dir, resume, overwrite: calls.append(cfg.options.fold))
    cfg = setup()
    for k, done in ((0, "summary.json"), (1, "checkpoints/last.pt")):
        fold = tmp_path / f"fold{k}"
        (fold / done).parent.mkdir(parents=True, exist_ok=True)
        (fold / done).write_text("{}")
        stored = folds3d._fold_config(cfg, folds3d._cross_validated(cfg.task), k, tmp_path).to_dict()
        stored["run"]["threads"] = 7  # where it ran does not count
        (fold / "config.yaml").write_text(yaml.safe_dump(stored))
    assert [a for _, _, a in folds3d.plan_folds(cfg, tmp_path, [0, 1])] == ["keep", "resume"]
    more = make_config({**cfg.to_dict(), "optim": {**cfg.to_dict()["optim"], "epochs": 9, "lr": 0.5}})
    for k in (0, 1):
        with pytest.raises(
            RunDirError,
            match=rf"fold {k} \(.*fold{k}\) was trained with optim.epochs 200 where this plan has 9 \(and 1 more",
        ):
            folds3d.run_folds(more, tmp_path, folds=[k], log=lambda *a: None)
    assert calls == []
    folds3d.run_folds(more, tmp_path, folds=[0, 1], log=lambda *a: None, overwrite=True)
    assert calls == [0, 1]  # --overwrite trains them afresh with this config


def test_a_restored_state_is_checked_before_anything_is_preprocessed(setup, tmp_path):
    """A fold's state rebuilt on a CT twin of its MRI data: refused naming both, nothing cached; a state
    written before the normalisation was recorded is compared by its channels."""
    from poolskip.tasks import StateMismatch

    state = build_task(setup()).state()
    assert state["normalisation"] == ["z-score"] and state["layout"] == "decathlon" and len(state["cases"]) == 5
    ct = vd.decathlon(tmp_path / "ct", n=5, modality="CT")
    cfg = make_config({**setup().to_dict(), "data": {"dataset": "decathlon", "data_dir": str(ct),
                                                     "cache_dir": str(tmp_path / "cache")}})  # fmt: skip
    with pytest.raises(StateMismatch, match=r"normalisation \['z-score'\], but the decathlon data at .* has channels"):
        build_task(cfg, state=state)
    old = {k: v for k, v in state.items() if k != "normalisation"}
    with pytest.raises(StateMismatch, match=r"trained on channels \['MRI'\], but the decathlon data at .*\['CT'\];"):
        build_task(cfg, state=old)
    lacking = {**state, "eval_ids": ["task_000", "gone_1"]}
    with pytest.raises(StateMismatch, match="split names 1 case.s. that the decathlon data at .* lacks .gone_1."):
        build_task(setup(), state=lacking)
    assert not (tmp_path / "cache").exists()


def test_ensemble_members_are_checked_against_the_test_set_read():
    from types import SimpleNamespace

    from poolskip.engine import ConfigError
    from poolskip.tasks.segmentation3d import check_ensemble_test_set

    found = _state(-1, ["c", "d", "e"], ["x", "y"], cases=["c", "d", "e", "x", "y"])
    task = SimpleNamespace(state=lambda: found, ds=SimpleNamespace(layout="btcv", root="/d"), eval_ids=["x", "y"])
    a = _state(0, ["c", "d"], ["e"], cases=["c", "d", "e", "x", "y"])
    check_ensemble_test_set(task, [("a", a)])
    message = r"member a: its data has 4 cases where the test set's data \(btcv at /d\) has 5, 1 only in the test"
    with pytest.raises(ConfigError, match=message + r" set's data \(btcv at /d\) \(y\); was the data changed"):
        check_ensemble_test_set(task, [("a", {**a, "cases": ["c", "d", "e", "x"]})])
    with pytest.raises(
        ConfigError, match=r"member a was trained or validated on 1 of the 2 cases of the test set \(y\)"
    ):
        check_ensemble_test_set(task, [("a", {**a, "eval_ids": ["y"]})])
