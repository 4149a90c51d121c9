"""The segmentation task against the Task protocol, its metric against hand-computed numbers, a tiny training."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from poolskip.data import DatasetError
from poolskip.data.seg2d import IGNORE
from poolskip.engine import build_task
from poolskip.engine.config import ConfigError, make_config
from poolskip.models import create_model
from poolskip.tasks import ModelSpec, PicturesPredictions, Task, get_task, list_tasks
from poolskip.tasks.segmentation import SegmentationTask
from seg_layouts import make_camvid, make_cityscapes, make_voc

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(tmp_path, dataset="camvid", data_dir=None, **extra):
    layer = {
        "task": "segmentation", "model": "deeplabv3plus_mobilenet", "dataset": dataset, "data_dir": str(data_dir),
        "cache_dir": str(tmp_path / "cache"), "batch_size": 2, "eval_batch_size": 2, "seed": 3,
        "segmentation": {"crop_size": [17, 21], "scale_range": [0.75, 1.25], "color_jitter": 0.3}, **extra,
    }  # fmt: skip
    return make_config(layer)


@pytest.fixture(scope="module")
def camvid(tmp_path_factory):
    return make_camvid(tmp_path_factory.mktemp("camvid"), size=(25, 33))


def test_segmentation_is_registered_with_its_options_and_monitor():
    assert "segmentation" in list_tasks() and get_task("segmentation") is SegmentationTask
    assert SegmentationTask.monitor.metric == "miou" and SegmentationTask.monitor.mode == "max"
    cfg = make_config({"task": "segmentation", "crop_size": [360], "hflip": False, "lr_mult": {"backbone": 0.1}})
    assert cfg.options.crop_size == [360, 360] and cfg.options.hflip is False
    assert cfg.optim.lr_mult == {"backbone": 0.1}
    with pytest.raises(ConfigError, match="scale_range"):
        make_config({"task": "segmentation", "scale_range": [2.0, 1.0]})
    with pytest.raises(ConfigError, match="color_jitter"):
        make_config({"task": "segmentation", "segmentation.color_jitter": 2})


def test_task_conformance(tmp_path, camvid):
    """Every method of the protocol on tiny CamVid: shapes, determinism in (seed, epoch, step), state."""
    cfg = _cfg(tmp_path, data_dir=camvid, segmentation={"crop_size": [17, 21], "eval_split": "test"})
    task = build_task(cfg)
    assert isinstance(task, Task)
    assert task.model_spec() == ModelSpec(in_channels=3, num_classes=11, spatial_dims=2)
    assert "camvid: 6 train / 3 test images, 11 classes" in task.describe()
    assert task.steps_per_epoch() == 3
    batches = list(task.train_batches(2))
    assert len(batches) == 3
    x, y, n = batches[1]
    assert x.shape == (2, 3, 17, 21) and x.dtype == torch.float32 and y.shape == (2, 17, 21) and y.dtype == torch.long
    assert n == 2 and set(y.unique().tolist()) <= set(range(11)) | {IGNORE}
    again = next(iter(task.train_batches(2, start=1)))
    assert torch.equal(again.inputs, x) and torch.equal(again.targets, y)
    rebuilt = build_task(cfg, state=task.state())
    assert torch.equal(next(iter(rebuilt.train_batches(2, start=1))).inputs, x)
    state = task.state()
    assert state["classes"][0] == "sky" and state["pixel_mean"] == [0.485, 0.456, 0.406]
    torch.save(state, tmp_path / "state.pt")
    assert torch.load(tmp_path / "state.pt", weights_only=True) == state  # plain data only

    logits = torch.randn(2, 11, 17, 21, requires_grad=True)
    losses = task.loss(logits, y)
    assert losses.shape == (2,)
    for i in range(2):  # each image's mean over its valid pixels
        expect = F.cross_entropy(logits[i : i + 1], y[i : i + 1], ignore_index=IGNORE)
        torch.testing.assert_close(losses[i], expect)
    losses.sum().backward()

    class Constant(nn.Module):  # predicts class 3 (road) everywhere
        def forward(self, x):
            out = torch.zeros(x.shape[0], 11, *x.shape[-2:])
            out[:, 3] = 1
            return out

    metrics = task.evaluate(Constant(), lambda: torch.autocast("cpu", enabled=False))
    masks = torch.stack(list(task.data.eval.masks)).long()
    valid = masks != IGNORE
    road = ((masks == 3) & valid).sum().item()
    assert metrics["pixel_acc"] == pytest.approx(100 * road / valid.sum().item())
    present = [c for c in range(11) if (masks == c).any()] or [3]
    assert metrics["miou"] == pytest.approx(100 * road / valid.sum().item() / len(set(present) | {3}))
    assert len(metrics["class_iou"]) == 11 and metrics["eval_loss"] > 0

    px, py = task.probe_batch(5, seed=1)
    assert px.shape == (5, 3, 17, 21) and py.shape == (5, 17, 21)
    px2, _ = task.probe_batch(5, seed=1)
    assert torch.equal(px, px2)
    assert task.probe_loss(torch.zeros(5, 11, 17, 21), py).shape == ()
    assert task.probe_loss_weight(py) == int((py != IGNORE).sum())


def test_diagnostics_probe_loss_does_not_depend_on_the_batch_size(tmp_path, camvid):
    """The probe loss is a mean over pixels not ignored (padding of a crop larger than the image is ignored),
    so the diagnostics weigh each batch by its count of them: any --batch-size gives the same loss and
    gradient norms, and a batch of only ignored pixels is no NaN."""
    from poolskip.diagnostics import diagnose

    task = build_task(_cfg(tmp_path, data_dir=camvid, segmentation={"crop_size": [31, 41]}))
    x, y = task.probe_batch(4, seed=0)
    y[2] = IGNORE
    assert (y == IGNORE).any() and len({int((t != IGNORE).sum()) for t in y}) > 2
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 11, 1))
    kw = {"loss_fn": task.probe_loss, "loss_weight": task.probe_loss_weight}
    whole = diagnose(model, x, y, **kw)
    for batch_size in (1, 3):
        split = diagnose(model, x, y, batch_size=batch_size, **kw)
        assert math.isfinite(split.loss) and split.loss == pytest.approx(whole.loss, rel=1e-5)
        assert [s.grad_norm for s in split.layers] == pytest.approx([s.grad_norm for s in whole.layers], rel=1e-4)


@pytest.mark.parametrize(("key", "stored"), [("dataset", "voc"), ("classes", ["a", "b"]), ("ignore_index", 11)])
def test_a_state_of_other_data_is_refused_naming_stored_and_found(tmp_path, camvid, key, stored):
    import re

    from poolskip.tasks import StateMismatch

    cfg = _cfg(tmp_path, data_dir=camvid, segmentation={"crop_size": [17, 21], "eval_split": "test"})
    found = build_task(cfg).state()
    message = f"the checkpoint was trained on {key} {stored!r}, but camvid at {camvid} has {key} {found[key]!r}"
    with pytest.raises(StateMismatch, match=re.escape(message)):
        build_task(cfg, state={**found, key: stored})


def test_other_datasets_build_and_bad_config_is_clear(tmp_path):
    cs = build_task(_cfg(tmp_path, "cityscapes", make_cityscapes(tmp_path / "cs")))
    assert cs.model_spec().num_classes == 19
    voc = build_task(_cfg(tmp_path, "voc", make_voc(tmp_path / "voc")))
    assert voc.model_spec().num_classes == 21 and voc.steps_per_epoch() == 2
    with pytest.raises(DatasetError, match="reads datasets voc, cityscapes, camvid, segfolder"):
        build_task(_cfg(tmp_path, "cifar10", tmp_path))
    with pytest.raises(DatasetError, match="fewer than one batch of 64"):
        build_task(_cfg(tmp_path, "voc", tmp_path / "voc", batch_size=64))


def test_a_few_steps_of_deeplab_with_pool_skip_on_odd_sized_camvid(tmp_path, camvid):
    """Train the real model for a few steps (25x33 images: odd maps everywhere) and evaluate at full size."""
    cfg = _cfg(tmp_path, data_dir=camvid, batch_size=3, segmentation={"crop_size": [25, 33], "eval_split": "test"})
    task = build_task(cfg)
    torch.manual_seed(0)
    spec = task.model_spec()
    model = create_model("deeplabv3plus_mobilenet", num_classes=spec.num_classes, in_channels=spec.in_channels,
                         pool_skip=True)  # fmt: skip
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    first = None
    for epoch in range(1):
        for batch in task.train_batches(epoch):
            loss = task.loss(model(batch.inputs), batch.targets).sum() / batch.global_size
            opt.zero_grad()
            loss.backward()
            opt.step()
            first = first if first is not None else loss.item()
    model.eval()
    with torch.no_grad():
        metrics = task.evaluate(model, lambda: torch.autocast("cpu", enabled=False))
    assert math.isfinite(first) and 0 <= metrics["miou"] <= 100 and 0 <= metrics["pixel_acc"] <= 100


def test_deeplab_recipes_follow_the_reference():
    from poolskip.experiments.recipes import list_recipes, load_recipe

    assert {"deeplab_voc", "deeplab_cityscapes", "deeplab_camvid"} <= set(list_recipes())
    voc, cs, cam = (make_config(load_recipe(f"deeplab_{n}")) for n in ("voc", "cityscapes", "camvid"))
    for cfg in (voc, cs):  # VainF's DeepLabV3Plus-Pytorch reference training settings
        o = cfg.optim
        assert (cfg.task, o.optimizer, o.momentum, o.nesterov, o.weight_decay) == (
            "segmentation",
            "sgd",
            0.9,
            False,
            1e-4,
        )
        assert (o.schedule, o.power, o.batch_size, o.lr_mult) == ("poly", 0.9, 16, {"backbone": 0.1})
        assert cfg.model_kwargs == {"output_stride": 16}
    assert (voc.optim.lr, voc.options.crop_size, voc.options.scale_range, voc.data.dataset) == (
        0.01, [513, 513], [0.5, 2.0], "voc")  # fmt: skip
    assert 10582 // 16 * voc.optim.epochs >= 30_000  # trainaug: at least the reference's 30k iterations
    assert (cs.optim.lr, cs.options.crop_size, cs.options.color_jitter, cs.data.dataset) == (
        0.1, [768, 768], 0.5, "cityscapes")  # fmt: skip
    assert 2975 // 16 * cs.optim.epochs == pytest.approx(30_000, rel=0.01)
    assert (cam.model, cam.optim.batch_size, cam.optim.schedule, cam.options.eval_split) == (
        "deeplabv3plus_mobilenet", 8, "poly", "test")  # fmt: skip


def test_prediction_figure_in_the_palette(tmp_path, camvid):
    from poolskip.experiments.seg_figure import colorize, save_prediction_figure

    rgb = colorize(torch.tensor([[0, 3], [IGNORE, 10]]), [(1, 2, 3)] * 3 + [(9, 9, 9)] + [(0, 0, 0)] * 6 + [(7, 7, 7)])
    assert rgb.tolist() == [[[1, 2, 3], [9, 9, 9]], [[0, 0, 0], [7, 7, 7]]]
    task = build_task(_cfg(tmp_path, data_dir=camvid, segmentation={"eval_split": "test"}))
    models = {"plain": nn.Conv2d(3, 11, 1), "Pool Skip": nn.Conv2d(3, 11, 1)}
    assert isinstance(task, PicturesPredictions)
    examples = task.prediction_examples(models, count=2)
    assert examples.spatial_dims == 2 and examples.palette == [list(c) for c in task.data.palette]
    assert examples.classes == list(task.data.classes)
    assert len(examples.samples) == 2 and examples.samples[0]["preds"]["plain"].shape == (25, 33)
    path = save_prediction_figure(examples.samples, examples.palette, tmp_path / "pred.png", classes=examples.classes)
    assert path.stat().st_size > 1000


def test_prediction_pictures_have_a_legend_of_the_classes_shown():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from poolskip.experiments.figures import add_class_legend

    fig = plt.figure()
    maps = [torch.tensor([[0, 2], [IGNORE, 2]]), torch.tensor([[5, 0]])]
    labels = add_class_legend(fig, maps, ["sky", "road", "car"], lambda k: (k / 255, 0, 0), extra={IGNORE: "ignored"})
    assert labels == ["sky", "car", "class 5", "ignored"]  # the classes that occur, in order, named
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == labels
    assert [tuple(p.get_facecolor()[:3]) for p in legend.get_patches()] == [(0, 0, 0), (2 / 255, 0, 0),
                                                                            (5 / 255, 0, 0), (1.0, 0, 0)]  # fmt: skip
    assert add_class_legend(plt.figure(), maps, None, lambda k: (0, 0, 0), skip=(0, 2, 5, IGNORE)) == []
    plt.close("all")


def test_sliding_window_covers_odd_sizes_and_matches_whole_images_where_it_must():
    from poolskip.tasks.segmentation import sliding_window_logits

    torch.manual_seed(0)
    x = torch.randn(2, 3, 37, 53)
    pointwise = nn.Conv2d(3, 5, 1)  # no context: every window gives the same logits at a pixel
    torch.testing.assert_close(sliding_window_logits(pointwise, x, (16, 20), 0.5), pointwise(x))
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 5, 3, padding=1))
    torch.testing.assert_close(sliding_window_logits(conv, x, (64, 64)), conv(x))  # one window = the image
    seen = []

    class Recorder(nn.Module):
        def forward(self, t):
            seen.append(tuple(t.shape[-2:]))
            return torch.ones(t.shape[0], 2, *t.shape[-2:])

    out = sliding_window_logits(Recorder(), x, (16, 20), overlap=0.0)
    assert out.shape == (2, 2, 37, 53) and torch.equal(out, torch.ones_like(out))  # every pixel covered once+
    assert set(seen) == {(16, 20)} and len(seen) == 3 * 3  # rows 0, 16, 21; columns 0, 20, 33


def test_sliding_window_evaluation_through_the_task(tmp_path, camvid):
    whole = build_task(_cfg(tmp_path, data_dir=camvid))
    slide = build_task(_cfg(tmp_path, data_dir=camvid, segmentation={"crop_size": [17, 21], "eval_window": [16, 16]}))
    model = nn.Conv2d(3, 11, 1)
    off = lambda: torch.autocast("cpu", enabled=False)  # noqa: E731
    a, b = whole.evaluate(model, off), slide.evaluate(model, off)
    assert a["miou"] == pytest.approx(b["miou"]) and a["eval_loss"] == pytest.approx(b["eval_loss"], rel=1e-5)
    with pytest.raises(ConfigError, match="eval_window"):
        _cfg(tmp_path, data_dir=camvid, segmentation={"eval_window": [0, 4]})


def test_eval_subset_is_a_fixed_seeded_choice_of_the_evaluation_split(tmp_path, camvid):
    def build(n):
        seg = {"crop_size": [17, 21], "eval_split": "test", "eval_subset": n}
        return build_task(_cfg(tmp_path, data_dir=camvid, segmentation=seg))

    full, sub, again = build(None), build(2), build(2)
    assert len(full.data.eval) == 3 and len(sub.data.eval) == 2
    assert sub.data.eval.names == again.data.eval.names  # the same images in every run
    assert set(sub.data.eval.names) < set(full.data.eval.names)
    assert sub.data.eval.names == sorted(sub.data.eval.names, key=full.data.eval.names.index)  # dataset order
    assert "evaluating 2 of 3 test images (eval_subset)" in sub.describe()
    assert len(build(5).data.eval) == 3 and "eval_subset" not in build(5).describe()
    off = lambda: torch.autocast("cpu", enabled=False)  # noqa: E731
    model = nn.Conv2d(3, 11, 1)
    keep = [full.data.eval.names.index(n) for n in sub.data.eval.names]
    full.data.eval = full.data.eval.subset(keep)  # the full task restricted by hand scores the same
    full.eval = type(full.eval)(full.data.eval, 2, mean=full.mean, std=full.std)
    assert sub.evaluate(model, off)["miou"] == pytest.approx(full.evaluate(model, off)["miou"])
    with pytest.raises(ConfigError, match="eval_subset"):
        build(0)


def test_sliding_window_evaluation_shows_its_windows_on_a_terminal(tmp_path, camvid, monkeypatch):
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    monkeypatch.setattr("sys.stderr", tty)
    seg = {"crop_size": [17, 21], "eval_window": [16, 16]}
    task = build_task(_cfg(tmp_path, data_dir=camvid, segmentation=seg))
    task.evaluate(nn.Conv2d(3, 11, 1), lambda: torch.autocast("cpu", enabled=False))
    assert "\reval [" in tty.getvalue() and "window 1/" in tty.getvalue()


def test_deeplab_camvid_cpu_is_deeplab_camvid_at_a_cpus_size():
    """The CPU recipe differs from the GPU one only in the declared size: epochs, crop, eval cadence, CPU."""
    from poolskip.experiments.recipes import load_recipe

    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) and k != "model_kwargs" else {prefix + k: v})
        return out

    gpu, cpu = flat(load_recipe("deeplab_camvid")), flat(load_recipe("deeplab_camvid_cpu"))
    size = {
        "optim.epochs": 12,
        "segmentation.crop_size": [120, 160],
        "run.eval_every": 6,
        "run.device": "cpu",
        "run.threads": 1,
    }
    assert {k: v for k, v in cpu.items() if k not in size} == {k: v for k, v in gpu.items() if k not in size}
    assert {k: cpu[k] for k in size} == size
    make_config(load_recipe("deeplab_camvid_cpu"))  # a valid config
