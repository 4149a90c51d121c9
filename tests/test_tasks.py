"""Every registered task through the whole Task contract on tiny data, and through the loop with an exact resume.

A new task must add a tiny config to ``TINY`` (the first test fails until it does): the config of a run
that takes seconds on a CPU, with data the test writes itself or that ships with a package.
"""

import contextlib
import dataclasses
import io
import math

import pytest
import torch

from interrupt import Interrupt, StopAfter
from poolskip.engine import build_task, evaluate, make_config, model_from_config, task_context, train
from poolskip.engine.config import SECTIONS
from poolskip.tasks import HasNominalGeometry, ModelSpec, Monitor, Task, get_task, list_tasks

CPU = torch.device("cpu")


def tiny_classification(tmp_path):
    return {"task": "classification", "dataset": "digits", "model": "small_cnn", "model_kwargs": {"width": 4},
            "train_subset": 96, "batch_size": 32, "eval_batch_size": 200, "threads": 1, "cutout": 2}  # fmt: skip


def tiny_segmentation(tmp_path):
    from seg_layouts import make_segfolder

    root = make_segfolder(tmp_path / "segfolder", n_train=8, n_val=3, size=(20, 28))
    return {"task": "segmentation", "dataset": "segfolder", "data_dir": str(root), "cache_dir": str(tmp_path / "c"),
            "model": "deeplabv3plus_mobilenet", "pool_skip": True, "batch_size": 4, "eval_batch_size": 4,
            "threads": 1, "segmentation": {"crop_size": [17, 21], "color_jitter": 0.2}}  # fmt: skip


def tiny_segmentation3d(tmp_path):
    pytest.importorskip("monai")
    from volumetric_data import tiny_segmentation3d

    return tiny_segmentation3d(tmp_path)


#: task name -> a function of a temporary directory returning a tiny run config
TINY = {"classification": tiny_classification, "segmentation": tiny_segmentation, "segmentation3d": tiny_segmentation3d}


def test_every_registered_task_has_a_tiny_config():
    assert set(TINY) == set(list_tasks()), "add a tiny config for the new task to TINY"


def same(a, b) -> bool:
    """Equal tensors or nested lists/tuples/dicts of them."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def finite_metrics(metrics: dict) -> None:
    for key, value in metrics.items():
        assert isinstance(key, str)
        assert isinstance(value, float) or (isinstance(value, list) and all(isinstance(v, float) for v in value)), key


@pytest.mark.parametrize("name", sorted(TINY))
def test_task_follows_the_contract(name, tmp_path):
    cls = get_task(name)
    assert cls.name == name and isinstance(cls.monitor, Monitor) and dataclasses.is_dataclass(cls.Options)
    bare = {f.name for section in SECTIONS.values() for f in dataclasses.fields(section)}
    for f in dataclasses.fields(cls.Options):  # its keys say what they mean, and bare names stay unambiguous
        assert f.metadata.get("help"), f"{name}.{f.name} has no help text"
        assert f.name not in bare, f"{name}.{f.name} shadows a data/optim/run key"

    cfg = make_config(TINY[name](tmp_path))
    task = build_task(cfg, CPU)
    assert isinstance(task, Task) and isinstance(task.describe(), str)
    spec = task.model_spec()
    assert isinstance(spec, ModelSpec) and spec.in_channels >= 1 and spec.num_classes >= 1
    # what the task tells without the data (a dry run's costs) is what the data gives: the tiny configs' data
    # has its dataset's nominal classes, channels and inputs (digits; a 3-class one-channel Decathlon task like
    # Hippocampus); sample counts are the standard copies' and not compared
    nominal = cls.nominal_geometry(task_context(cfg)) if isinstance(cls, HasNominalGeometry) else None
    if nominal is not None:
        assert nominal.model_spec == ModelSpec(spec.in_channels, spec.num_classes, spec.spatial_dims)
        assert nominal.steps_per_epoch == task.steps_per_epoch()
        assert len(nominal.eval_shape) == len(nominal.train_shape) == 1 + spec.spatial_dims
    torch.manual_seed(0)
    model = model_from_config(cfg, spec)

    # batches: `steps_per_epoch` of them, each a function of (seed, epoch, step) only
    steps = task.steps_per_epoch()
    batches = list(task.train_batches(1))
    assert len(batches) == steps >= 1
    assert same(list(task.train_batches(1, start=steps - 1))[0], batches[-1])
    again = build_task(cfg, CPU)
    assert same(list(again.train_batches(1))[0], batches[0])
    assert not same(list(task.train_batches(2))[0].inputs, batches[0].inputs)  # another epoch, other batches
    first = batches[0]
    assert first.global_size == len(first.inputs) and first.inputs.shape[1] == spec.in_channels
    assert nominal is None or tuple(first.inputs.shape[1:]) == nominal.train_shape
    assert first.inputs.dim() == 2 + spec.spatial_dims

    # the loss: one finite value per sample, with gradients
    model.train()
    losses = task.loss(model(first.inputs), first.targets)
    assert losses.shape == (len(first.inputs),) and torch.isfinite(losses).all()
    losses.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())

    # evaluation holds the monitored metric; state round-trips through a weights_only checkpoint
    metrics = evaluate(model, task, contextlib.nullcontext)
    assert cls.monitor.metric in metrics and not math.isnan(metrics[cls.monitor.metric])
    finite_metrics(metrics)
    buffer = io.BytesIO()
    torch.save(task.state(), buffer)
    state = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    rebuilt = build_task(cfg, CPU, state=state)
    assert same(evaluate(model, rebuilt, contextlib.nullcontext), metrics)

    # the diagnostics probe: fixed by its seed, with a scalar loss that has gradients
    x, y = task.probe_batch(8, seed=3)
    x2, y2 = task.probe_batch(8, seed=3)
    assert len(x) == len(y) == 8 and same((x, y), (x2, y2))
    loss = task.probe_loss(model(x), y)
    assert loss.dim() == 0 and torch.isfinite(loss)


@pytest.mark.parametrize("name", sorted(TINY))
def test_task_trains_and_resumes_exactly(name, tmp_path):
    """Two epochs straight equal one epoch, an interruption, and a resume: batches, RNG and state all restored."""
    cfg = make_config(TINY[name](tmp_path), {"optim.epochs": 2, "run.deterministic": True})
    quiet = dict(log=lambda *a, **k: None)
    whole = train(cfg, tmp_path / "whole", **quiet)
    with pytest.raises(Interrupt):
        train(cfg, tmp_path / "cut", callbacks=[StopAfter(2)], **quiet)
    resumed = train(cfg, tmp_path / "cut", resume=True, **quiet)
    a = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert same(a, b)
    assert resumed["final"] == whole["final"] and resumed["monitor"] == whole["monitor"]
    assert resumed["monitor"]["metric"] == get_task(name).monitor.metric
