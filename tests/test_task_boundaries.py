"""What keeps task knowledge inside the tasks: a task never sees the engine's config, and the commands and
experiments ask a task's capabilities (``isinstance`` on the protocols of :mod:`poolskip.tasks.base`) instead
of comparing task names or probing task options with ``hasattr``."""

import ast
import inspect
from pathlib import Path

import pytest

import poolskip
from poolskip.config import DataConfig
from poolskip.tasks import (
    CrossValidated,
    HasNominalGeometry,
    ModelSpec,
    NominalGeometry,
    PicturesPredictions,
    TaskContext,
    get_task,
    list_tasks,
)

SRC = Path(poolskip.__file__).parent


def _modules(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (SRC / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("tasks"), ids=lambda p: p.name)
def test_no_task_module_names_the_engine_config(path):
    assert "TrainConfig" not in path.read_text(), f"{path.name} names TrainConfig: a task gets a TaskContext"


def _violations(tree: ast.AST, names: set[str]) -> list[str]:
    """Comparisons with a task name (``== "segmentation"``, ``in ("segmentation", ...)``),
    ``hasattr(<...options...>, ...)`` calls and assignments to a task option (``cfg.options.fold = k``)."""

    def is_name(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return node.value in names
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return any(is_name(e) for e in node.elts)
        return False

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(is_name(n) for n in [node.left, *node.comparators]):
            found.append(f"line {node.lineno}: compares a task name")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "hasattr":
            if node.args and "options" in ast.unparse(node.args[0]):
                found.append(f"line {node.lineno}: hasattr on task options")
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Attribute) and ast.unparse(t.value).endswith("options") for t in targets):
                found.append(f"line {node.lineno}: sets a task option")
    return found


@pytest.mark.parametrize("path", _modules("commands", "experiments"), ids=lambda p: p.name)
def test_commands_and_experiments_ask_capabilities_not_names(path):
    found = _violations(ast.parse(path.read_text()), set(list_tasks()))
    assert found == [], f"{path.relative_to(SRC)}: {found}"


def test_the_guard_sees_what_it_guards():
    names = {"segmentation3d"}
    bad = 'if cfg.task == "segmentation3d" or kind in ("x", "segmentation3d") or hasattr(cfg.options, "fold"): pass'
    assert len(_violations(ast.parse(bad), names)) == 3
    assert len(_violations(ast.parse("c.options.fold = k"), names)) == 1
    assert _violations(ast.parse('task = config.get("task", "segmentation3d")'), names) == []


@pytest.mark.parametrize("name", list_tasks())
def test_a_task_is_built_from_a_context_and_its_state(name):
    assert list(inspect.signature(get_task(name)).parameters) == ["ctx", "state"]


def test_capabilities():
    assert [t for t in list_tasks() if isinstance(get_task(t), CrossValidated)] == ["segmentation3d"]
    assert [t for t in list_tasks() if issubclass(get_task(t), PicturesPredictions)] == [
        "segmentation",
        "segmentation3d",
    ]
    cls = get_task("segmentation3d")
    options = cls.Options(num_folds=3, split_file=None)
    assert cls.num_folds(options) == 3
    fold2 = cls.fold_options(options, 2, "shared.json")
    assert (fold2.fold, fold2.split_file, options.fold) == (2, "shared.json", 0)
    test = cls.fold_options(cls.Options(split_file="mine.json", eval_subset=2), None, "shared.json")
    assert (test.fold, test.split_file, test.eval_subset) == (-1, "mine.json", None)  # the whole test set
    assert cls.fold_options(cls.Options(eval_subset=2), 1).eval_subset == 2  # a fold evaluates as it was told
    with pytest.raises(ValueError, match="folds 0..2"):
        cls.fold_options(options, 3)


def _geometry(name: str, data: DataConfig, batch_size: int = 8, eval_batch_size: int = 4, **options):
    cls = get_task(name)
    ctx = TaskContext(cls.Options(**options), data, batch_size=batch_size, eval_batch_size=eval_batch_size)
    return cls.nominal_geometry(ctx)


def test_every_task_tells_its_nominal_geometry():
    assert [t for t in list_tasks() if isinstance(get_task(t), HasNominalGeometry)] == list_tasks()


def test_nominal_geometry_of_classification(tmp_path):
    g = _geometry("classification", DataConfig("cifar100"), batch_size=128, eval_batch_size=1000)
    assert g == NominalGeometry(100, 50000, 10000, (3, 32, 32), (3, 32, 32), 391, 1000)  # the last batch counts
    assert g.model_spec == ModelSpec(3, 100, 2)
    g = _geometry("classification", DataConfig("digits", train_subset=100), batch_size=64, eval_batch_size=1000)
    assert (g.n_train, g.n_eval, g.steps_per_epoch, g.eval_batch, g.train_shape) == (100, 450, 2, 450, (1, 8, 8))
    assert _geometry("classification", DataConfig("imagefolder")) is None  # no folder: only the data can tell
    assert _geometry("classification", DataConfig("imagefolder", data_dir=str(tmp_path))) is None
    for split, counts in (("train", {"cat": 3, "dog": 2, "owl": 1}), ("val", {"cat": 1, "dog": 1, "owl": 1})):
        for cls_, n in counts.items():
            (tmp_path / split / cls_).mkdir(parents=True)
            for i in range(n):
                (tmp_path / split / cls_ / f"{i}.png").write_bytes(b"")
    g = _geometry("classification", DataConfig("imagefolder", data_dir=str(tmp_path), train_subset=4), image_size=16)
    assert (g.classes, g.n_train, g.n_eval, g.train_shape, g.steps_per_epoch) == (3, 4, 3, (3, 16, 16), 1)


def test_nominal_geometry_of_segmentation():
    g = _geometry("segmentation", DataConfig("camvid"), batch_size=8, crop_size=[64, 96], eval_subset=5)
    assert g == NominalGeometry(11, 367, 5, (3, 64, 96), (3, 360, 480), 45, 4)  # the last incomplete batch dropped
    assert g.model_spec == ModelSpec(3, 11, 2)
    g = _geometry("segmentation", DataConfig("voc", train_subset=20), batch_size=16)
    assert (g.classes, g.n_train, g.n_eval, g.steps_per_epoch, g.eval_shape) == (21, 20, 1449, 1, (3, 500, 500))
    assert _geometry("segmentation", DataConfig("segfolder"), segfolder_classes=4) is None  # its folders tell


def test_nominal_geometry_of_segmentation3d():
    from poolskip.tasks.segmentation3d import sliding_windows

    g = _geometry("segmentation3d", DataConfig("btcv"), batch_size=2, eval_batch_size=20, iterations=7)
    assert (g.classes, g.n_train, g.n_eval, g.steps_per_epoch) == (14, 14, 4, 7)
    assert g.train_shape == g.eval_window == (1, 128, 128, 128) and g.eval_shape == (1, 512, 512, 200)
    assert g.eval_batch == 8 and g.eval_windows == 7 * 7 * 3 == sliding_windows((512, 512, 200), (128,) * 3, 0.5)
    assert g.model_spec == ModelSpec(1, 14, 3)
    # the planned patch: capped, then rounded up (V-Net); an explicit one is taken as it is, as the task does
    g = _geometry("segmentation3d", DataConfig("amos"), patch_max=100, patch_multiple=16, eval_subset=3)
    assert (g.train_shape, g.n_eval, g.eval_batch) == ((1, 112, 112, 112), 3, 4)
    g = _geometry("segmentation3d", DataConfig("decathlon"), patch_size=[24, 30, 40], patch_multiple=16)
    assert (g.train_shape, g.eval_windows) == ((1, 24, 30, 40), 3 * 3 * 1)
    assert _geometry("segmentation3d", DataConfig("nnunet")) is None  # any dataset: only its files can tell


def test_nominal_geometry_of_segmentation3d_reads_the_data_folder(tmp_path):
    """Where the data is there, its dataset.json and NIfTI headers tell the geometry: not Hippocampus' numbers
    for any Decathlon task, and the windows of volumes of different sizes (their mean), not of one assumed."""
    np = pytest.importorskip("numpy")
    pytest.importorskip("nibabel")
    import json

    import volumetric_data as vd
    from poolskip.data.seg3d import default_splits_name, load_volumes, make_splits
    from poolskip.tasks.segmentation3d import _planned_patch, sliding_windows

    shapes = [(30, 40, 20), (34, 40, 20), (30, 52, 24), (38, 44, 28), (30, 40, 20)]  # 2 mm along x
    training = []
    for i, shape in enumerate(shapes):
        name = f"case_{i}.nii.gz"
        vd.save(tmp_path / "imagesTr" / name, np.zeros((*shape, 2), np.float32), spacing=(2.0, 1.0, 1.0))
        vd.save(tmp_path / "labelsTr" / name, np.zeros(shape, np.uint8), spacing=(2.0, 1.0, 1.0))
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    desc = {"name": "Two", "modality": {"0": "T1", "1": "T2"}, "labels": {str(c): f"c{c}" for c in range(4)},
            "numTraining": 5, "training": training, "test": []}  # fmt: skip
    (tmp_path / "dataset.json").write_text(json.dumps(desc))

    data = DataConfig("decathlon", data_dir=str(tmp_path))
    g = _geometry("segmentation3d", data, eval_batch_size=8, patch_size=[32, 40, 20], target_spacing=[1.0, 1, 1],
                  num_folds=2)  # fmt: skip
    val = make_splits(load_volumes("decathlon", str(tmp_path)), 2, 0)["folds"][0]["val"]  # the run's fold 0
    at_1mm = {f"case_{i}": (2 * x, y, z) for i, (x, y, z) in enumerate(shapes)}
    windows = dict(zip(at_1mm, (3, 4, 12, 16, 3)))  # of the 32x40x20 patch at overlap 0.5, counted by hand
    assert (g.classes, g.n_train, g.n_eval, g.model_spec) == (4, 2, 3, ModelSpec(2, 4, 3)) and len(val) == 3
    assert g.train_shape == g.eval_window == (2, 32, 40, 20)
    assert g.eval_shape == (2, *np.max([at_1mm[i] for i in val], 0))  # the largest evaluated volume
    assert g.eval_windows == pytest.approx(sum(windows[i] for i in val) / 3)
    assert [sliding_windows(at_1mm[i], (32, 40, 20), 0.5) for i in at_1mm] == list(windows.values())
    g = _geometry("segmentation3d", data)  # 5 folds; the median spacing (2 mm along x) and shape plan the patch
    assert (g.n_train, g.n_eval) == (4, 1)  # the median 30x40x20 voxels, padded by nnU-Net's planner as the task pads
    assert g.train_shape == (2, *_planned_patch(get_task("segmentation3d").Options(), [30, 40, 20], (2.0, 1, 1)))
    assert g.train_shape == (2, 32, 40, 20)
    # the run's fold is its splits file's where one is there (folds edited by hand are used as written)
    splits = make_splits(load_volumes("decathlon", str(tmp_path)), 2, 0)
    splits["folds"] = [{"train": ["case_0", "case_1", "case_4"], "val": ["case_2", "case_3"]},
                       {"train": ["case_2", "case_3"], "val": ["case_0", "case_1", "case_4"]}]  # fmt: skip
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps(splits))
    kw = dict(patch_size=[32, 40, 20], target_spacing=[1.0, 1, 1], num_folds=2)
    g = _geometry("segmentation3d", data, split_file=str(mine), **kw)
    assert (g.n_train, g.n_eval, g.eval_shape) == (3, 2, (2, 76, 52, 28))  # case_2 and case_3, not the seeded fold
    assert g.eval_windows == pytest.approx((12 + 16) / 2)
    cached = DataConfig("decathlon", data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    assert _geometry("segmentation3d", cached, **kw).n_eval == 3  # no file yet: the seeded split, none written
    assert not (tmp_path / "cache").exists()
    beside = tmp_path / "cache" / "volumetric" / default_splits_name(load_volumes("decathlon", str(tmp_path)), 2, 0)
    beside.parent.mkdir(parents=True)
    beside.write_text(json.dumps(splits))  # the file a run writes beside the cache, edited: read as the run reads it
    assert (
        _geometry("segmentation3d", cached, **kw).n_eval,
        _geometry("segmentation3d", cached, fold=1, **kw).n_eval,
    ) == (2, 3)
    missing = DataConfig("decathlon", data_dir=str(tmp_path / "absent"))  # no folder: NOMINAL's Hippocampus
    assert _geometry("segmentation3d", missing).model_spec == ModelSpec(1, 3, 3)


def test_sliding_windows_counts_the_windows_monai_evaluates():
    inferers = pytest.importorskip("monai.inferers")
    import torch

    for volume, patch, overlap in (((20, 24, 16), (8, 8, 8), 0.5), ((40, 56, 40), (40, 56, 40), 0.5),
                                   ((33, 17, 9), (16, 16, 16), 0.25), ((50, 20, 30), (12, 20, 7), 0.6)):  # fmt: skip
        calls = []

        def predictor(x, calls=calls):
            calls.append(len(x))
            return torch.zeros(len(x), 2, *x.shape[2:])

        inferers.sliding_window_inference(torch.zeros(1, 1, *volume), patch, 1, predictor, overlap=overlap)
        from poolskip.tasks.segmentation3d import sliding_windows

        assert sliding_windows(volume, patch, overlap) == len(calls), (volume, patch, overlap)


@pytest.mark.parametrize("path", _modules("tasks"), ids=lambda p: p.name)
def test_no_task_module_imports_a_model_module(path):
    """A task reaches models through the registry (``poolskip.models``: build, get_planner), never a model
    family's module (``poolskip.models.volumetric...``)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level:
            assert not node.module.startswith("models."), f"{path.name} imports {node.module}"


def test_the_3d_planner_is_reached_through_the_registry():
    from poolskip.models import get_planner
    from poolskip.models.volumetric.planning import plan_3d_fullres

    assert get_planner("nnunet_3d_fullres") is plan_3d_fullres
    with pytest.raises(ValueError, match="known planners: nnunet_3d_fullres"):
        get_planner("nnunet_2d")
