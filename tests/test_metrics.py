"""poolskip.metrics against torchmetrics and MONAI on seeded random inputs, against numbers worked out by hand,
and NSD against DeepMind's ``surface-distance`` (Nikolov et al.'s reference code); the empty-class conventions
of each side are spelled out where they differ."""

from __future__ import annotations

import math
import os
import socket
import warnings

import pytest
import surface_distance
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from monai.metrics import DiceMetric, MeanIoU, SurfaceDiceMetric
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_jaccard_index,
)

from poolskip.metrics import (
    IGNORE_INDEX,
    METRICS,
    VolumeScores,
    confusion_matrix,
    dice_iou,
    iou_from_confusion,
    normalised_surface_dice,
    score_volume,
    top1_error,
    top1_wrong,
)

pytestmark = pytest.mark.usefixtures("one_thread")
TOL = 1e-6  # the agreement the metrics promise, on values in [0, 1]


def _labels(shape, k, seed, absent=(), ignore=0.0):
    """Random labels in [0, k) without the classes ``absent``; a fraction ``ignore`` set to IGNORE_INDEX."""
    g = torch.Generator().manual_seed(seed)
    keep = torch.tensor([c for c in range(k) if c not in absent])
    y = keep[torch.randint(0, len(keep), shape, generator=g)]
    if ignore:
        y[torch.rand(shape, generator=g) < ignore] = IGNORE_INDEX
    return y


def _close(ours, ref, tol=TOL):
    """Element-wise |ours - ref| <= tol, NaN only where the other is NaN too."""
    ours, ref = torch.as_tensor(ours, dtype=torch.float64), torch.as_tensor(ref, dtype=torch.float64)
    assert torch.equal(ours.isnan(), ref.isnan()), (ours, ref)
    ok = ~ours.isnan()
    assert torch.allclose(ours[ok], ref[ok], rtol=0, atol=tol), (ours, ref)


# ------------------------------------------------------------------------------------------ top-1 error


@pytest.mark.parametrize("shape", [(500,), (6, 9, 7)])  # classification; dense (N, H, W) targets
def test_top1_error_is_one_minus_torchmetrics_micro_accuracy(shape):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(shape[0], 10, *shape[1:], generator=g)
    target = torch.randint(0, 10, shape, generator=g)
    wrong = top1_wrong(logits, target)
    assert wrong.dtype == torch.int64 and wrong.ndim == 0
    ref = 100 * (1 - multiclass_accuracy(logits, target, 10, average="micro", multidim_average="global"))
    assert top1_error(wrong, target.numel()) == pytest.approx(float(ref), abs=100 * TOL)
    # the counts of two halves add up to the whole (what an all-reduce relies on)
    a, b = top1_wrong(logits[:3], target[:3]), top1_wrong(logits[3:], target[3:])
    assert int(a + b) == int(wrong)


def test_top1_error_of_nothing_is_nan():
    assert math.isnan(top1_error(0, 0)) and top1_error(torch.tensor(1), torch.tensor(4)) == 25.0


# ------------------------------------------------------------------------------------------ confusion matrix, IoU


def test_miou_from_a_hand_computed_confusion_matrix():
    # 4 classes; class 3 is neither predicted nor present -> NaN, left out of the mean; 255 is ignored
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 0]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 3, 0]])
    cm = confusion_matrix(pred, target, 4)
    assert cm.tolist() == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    m = iou_from_confusion(cm)
    # IoU: class 0: 2 / (3 + 3 - 2) = 0.5; class 1: 2 / (2 + 3 - 2) = 2/3; class 2: 1 / (2 + 1 - 1) = 0.5
    assert m["class_iou"][:3] == pytest.approx([50.0, 200 / 3, 50.0]) and math.isnan(m["class_iou"][3])
    assert m["miou"] == pytest.approx((50 + 200 / 3 + 50) / 3)
    assert m["pixel_acc"] == pytest.approx(100 * 5 / 7)
    assert m["mean_acc"] == pytest.approx(100 * (2 / 3 + 1 + 1 / 2) / 3)
    # a class predicted but never present has IoU 0 (it counts), not NaN
    cm2 = confusion_matrix(torch.tensor([3, 0]), torch.tensor([0, 0]), 4)
    assert iou_from_confusion(cm2)["class_iou"][3] == 0.0 and iou_from_confusion(cm2)["miou"] == pytest.approx(25.0)
    # ignore=None keeps every pixel (an index out of the class range would then be an error)
    assert confusion_matrix(pred, target.clamp(max=3), 4, ignore=None).sum() == 8


@pytest.mark.parametrize("shape", [(3, 20, 20), (2, 6, 7, 5)], ids=["2d", "3d"])
@pytest.mark.parametrize("ignore", [IGNORE_INDEX, None])
def test_confusion_matrix_and_iou_agree_with_torchmetrics(shape, ignore):
    k = 6
    # class 5 is in neither; class 4 only in the prediction; class 3 only in the target
    target = _labels(shape, k, seed=2, absent=(4, 5), ignore=0.2 if ignore is not None else 0.0)
    pred = _labels(shape, k, seed=3, absent=(3, 5))
    cm = confusion_matrix(pred, target, k, ignore=ignore)
    ref_cm = multiclass_confusion_matrix(pred, target, k, ignore_index=ignore)
    assert torch.equal(cm, ref_cm)
    ours = iou_from_confusion(cm)
    kw = dict(num_classes=k, ignore_index=ignore)
    # per class: equal wherever the class occurs; for class 5 ours is NaN, torchmetrics' default says 0
    _close([v / 100 for v in ours["class_iou"]], multiclass_jaccard_index(pred, target, average="none", **kw,
                                                                          zero_division=float("nan")))  # fmt: skip
    assert multiclass_jaccard_index(pred, target, average="none", **kw)[5] == 0.0
    assert math.isnan(ours["class_iou"][5]) and ours["class_iou"][3] == ours["class_iou"][4] == 0.0
    # mIoU: both leave class 5 out and count classes 3 and 4 as 0
    assert ours["miou"] / 100 == pytest.approx(float(multiclass_jaccard_index(pred, target, average="macro", **kw)),
                                               abs=TOL)  # fmt: skip
    assert ours["pixel_acc"] / 100 == pytest.approx(float(multiclass_accuracy(pred, target, average="micro", **kw)),
                                                    abs=TOL)  # fmt: skip
    # mean class accuracy: ours averages the recall of the classes in the target (0, 1, 2, 3); torchmetrics also
    # counts class 4, predicted but never present, as recall 0
    recall = cm.diag().double() / cm.sum(1).double()
    assert ours["mean_acc"] / 100 == pytest.approx(float(recall[:4].mean()), abs=TOL)
    tm_macro = float(multiclass_accuracy(pred, target, average="macro", **kw))
    assert tm_macro == pytest.approx(float(recall[:4].sum() / 5), abs=TOL)


def test_mean_accuracy_agrees_with_torchmetrics_when_every_predicted_class_is_present():
    target = _labels((4, 16, 16), 5, seed=4, ignore=0.1)
    pred = _labels((4, 16, 16), 5, seed=5)
    ours = iou_from_confusion(confusion_matrix(pred, target, 5))
    ref = multiclass_accuracy(pred, target, 5, average="macro", ignore_index=IGNORE_INDEX)
    assert ours["mean_acc"] / 100 == pytest.approx(float(ref), abs=TOL)


def test_confusion_matrices_of_parts_add_up_to_the_whole():
    target, pred = _labels((4, 9, 9), 5, seed=6, ignore=0.3), _labels((4, 9, 9), 5, seed=7)
    parts = confusion_matrix(pred[:1], target[:1], 5) + confusion_matrix(pred[1:], target[1:], 5)
    assert torch.equal(parts, confusion_matrix(pred, target, 5))


def test_an_empty_confusion_matrix_scores_nan():
    m = iou_from_confusion(torch.zeros(3, 3, dtype=torch.int64))
    assert all(math.isnan(m[key]) for key in ("miou", "pixel_acc", "mean_acc"))


# ------------------------------------------------------------------------------------------ Dice, IoU, NSD


def _one_hot(label, k):
    return F.one_hot(label.long()[None], k).movedim(-1, 1).float()


def _monai(metric, pred, label, k, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return metric(include_background=False, reduction="none", **kw)(_one_hot(pred, k), _one_hot(label, k))[0]


@pytest.mark.parametrize("shape", [(14, 12, 9), (30, 26)], ids=["3d", "2d"])
def test_dice_and_iou_agree_with_monai(shape):
    k = 6  # class 5 in neither, class 4 only in the prediction, class 3 only in the label
    label, pred = _labels(shape, k, seed=8, absent=(4, 5)), _labels(shape, k, seed=9, absent=(3, 5))
    dice, iou = dice_iou(pred, label, k)
    assert dice.shape == iou.shape == (k - 1,)
    monai_dice = _monai(DiceMetric, pred, label, k, ignore_empty=False)
    monai_iou = _monai(MeanIoU, pred, label, k, ignore_empty=False)
    _close(dice[:4], monai_dice[:4])
    _close(iou[:4], monai_iou[:4])
    assert dice[2].item() == iou[2].item() == dice[3].item() == iou[3].item() == 0.0  # classes 3, 4: in one only
    # a class in neither: NaN here; MONAI says 1 with ignore_empty=False ...
    assert math.isnan(dice[4]) and math.isnan(iou[4]) and monai_dice[4] == monai_iou[4] == 1.0
    # ... and NaN with ignore_empty=True, which also makes class 4 (predicted, absent from the label) NaN
    monai_ignoring = _monai(DiceMetric, pred, label, k, ignore_empty=True)
    assert monai_ignoring[3:].isnan().all() and not monai_ignoring[:3].isnan().any()


def _deepmind_nsd(pred, label, c, spacing, tolerance):
    """NSD of class ``c`` by DeepMind's ``surface-distance`` (only for a class in both: with one mask empty it
    fails under NumPy 2)."""
    with warnings.catch_warnings():  # it imports from SciPy's deprecated ndimage namespaces
        warnings.simplefilter("ignore", DeprecationWarning)
        distances = surface_distance.compute_surface_distances(label.numpy() == c, pred.numpy() == c, spacing)
        return float(surface_distance.compute_surface_dice_at_tolerance(distances, tolerance))


def _blobs(shape, k, seed):
    """Smooth regions (arg-max of box-filtered noise): surfaces with flat parts, corners and distances > 1."""
    g = torch.Generator().manual_seed(seed)
    pool = F.avg_pool3d if len(shape) == 3 else F.avg_pool2d
    return pool(torch.rand((1, k, *shape), generator=g), 5, stride=1, padding=2).argmax(1)[0]


@pytest.mark.parametrize(
    "shape, spacing, tolerance",
    [((16, 14, 10), (0.8, 0.8, 2.5), 1.0), ((16, 14, 10), (1.0, 1.0, 1.0), 1.5), ((28, 24), (0.5, 1.5), 1.0)],
    ids=["3d-anisotropic", "3d-isotropic", "2d-anisotropic"],
)
def test_nsd_is_deepminds_surface_dice_by_area(shape, spacing, tolerance):
    k = 6
    label = _blobs(shape, k, seed=10)
    label[label == 5] = 0  # class 5 in neither
    pred = torch.roll(label, shifts=[1] * len(shape), dims=list(range(len(shape))))
    pred[(pred == 4) & (torch.rand(shape, generator=torch.Generator().manual_seed(11)) < 0.5)] = 1
    label[label == 4] = 0  # class 4 only in the prediction
    ours = normalised_surface_dice(pred, label, k, spacing, tolerance)
    _close(ours[:3], [_deepmind_nsd(pred, label, c, spacing, tolerance) for c in range(1, 4)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_voxels = SurfaceDiceMetric([tolerance] * (k - 1), include_background=False, reduction="none")(
            _one_hot(pred, k), _one_hot(label, k), spacing=list(spacing)
        )[0]
    # MONAI's default counts boundary voxels: another number on these surfaces (the old definition here)
    assert (ours[:3] - by_voxels[:3]).abs().max() > 0.01
    # a class in neither: NaN; in one only: 0 (MONAI's conventions, either way of weighing)
    assert ours[3] == 0.0 and math.isnan(ours[4]) and 0 < ours[0] < 1


def test_score_volume_stacks_dice_nsd_iou_and_checks_the_spacing():
    label = _blobs((12, 10, 8), 4, seed=12)
    pred = torch.roll(label, 1, 0)
    s = score_volume(pred, label, 4, (1.0, 1.0, 2.0))
    dice, iou = dice_iou(pred, label, 4)
    assert s.shape == (len(METRICS), 3) and METRICS == ("dice", "nsd", "iou")
    _close(s[0], dice)
    _close(s[1], normalised_surface_dice(pred, label, 4, (1.0, 1.0, 2.0)))
    _close(s[2], iou)
    with pytest.raises(ValueError, match="spacing"):
        score_volume(pred, label, 4, (1.0, 1.0))


def _plate(x: slice, z: int, shape=(10, 8, 6)) -> torch.Tensor:
    """A one-voxel-thick plate of class 1: every voxel of it is a surface voxel."""
    t = torch.zeros(shape, dtype=torch.long)
    t[x, 2:6, z] = 1
    return t


def test_dice_iou_nsd_by_hand():
    gt = _plate(slice(2, 6), 2)  # 4 x 4 = 16 voxels
    pred = _plate(slice(2, 8), 2)  # 6 x 4 = 24 voxels, the 16 of gt among them
    dice, nsd, iou = score_volume(pred, gt, 2, spacing=(1.0, 1.0, 1.0), tolerance=1.0)[:, 0].tolist()
    assert dice == pytest.approx(2 * 16 / (16 + 24))
    assert iou == pytest.approx(16 / 24)
    # by area (DeepMind's number); counting boundary voxels would give (16 + 20) / (16 + 24) = 0.90: gt's 16 lie
    # on pred's, of pred's 24 the column x=6 is 1 mm away (within), x=7 is 2 mm (not)
    assert nsd == pytest.approx(_deepmind_nsd(pred, gt, 1, (1.0, 1.0, 1.0), 1.0), abs=TOL)
    assert nsd == pytest.approx(0.9439, abs=1e-4)


def test_nsd_tolerance_is_in_millimetres():
    gt, pred = _plate(slice(2, 6), 2), _plate(slice(2, 6), 3)  # pred is gt moved one voxel along z
    nsd = lambda spacing, tol: score_volume(pred, gt, 2, spacing, tol)[1, 0].item()  # noqa: E731
    # the move is 2 mm: only the face the two plates share (half of the surfaces' area) is within 1 mm ...
    assert nsd((0.5, 0.5, 2.0), 1.0) == pytest.approx(0.5, abs=TOL)
    assert nsd((0.5, 0.5, 2.0), 1.0) == pytest.approx(_deepmind_nsd(pred, gt, 1, (0.5, 0.5, 2.0), 1.0), abs=TOL)
    assert nsd((0.5, 0.5, 2.0), 2.0) == 1.0  # ... and all of it within 2 mm
    assert nsd((2.0, 2.0, 0.8), 1.0) == 1.0  # 0.8 mm along z
    assert score_volume(pred, gt, 2, (0.5, 0.5, 2.0), 1.0)[0, 0].item() == 0.0  # no overlap: Dice 0


def test_nan_when_a_class_is_absent_from_both_and_left_out_of_the_means():
    gt = _plate(slice(2, 6), 2)
    s = score_volume(gt, gt, 3, (1.0, 1.0, 1.0))
    assert s[:, 0].tolist() == [1.0, 1.0, 1.0] and all(math.isnan(v) for v in s[:, 1].tolist())
    wrong = gt * 2  # class 2 predicted where class 1 is: both classes 0, none NaN
    assert score_volume(wrong, gt, 3, (1.0, 1.0, 1.0)).tolist() == [[0.0, 0.0]] * 3
    scores = VolumeScores(3, ["bg", "a", "b"])
    scores.add(s)
    scores.add(score_volume(wrong, gt, 3, (1.0, 1.0, 1.0)))
    r = scores.result()
    assert r["dice_per_class"] == [50.0, 0.0]  # class b: NaN in volume 1 left out, 0 in volume 2
    assert r["dice"] == 25.0 and r["eval_volumes"] == 2 and scores.volumes == 2


def _same_result(got: dict, expect: dict) -> None:
    """Equal keys, values equal up to the rounding of a different summation order."""
    assert got.keys() == expect.keys()
    for key, value in expect.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key


def test_volume_scores_summed_over_processes_equal_one_process():
    vols = [(_blobs((10, 9, 8), 4, seed=s), _blobs((10, 9, 8), 4, seed=s + 50)) for s in range(4)]
    vols[1][0][vols[1][0] == 3] = 0  # class 3 absent from one volume's prediction ...
    vols[1][1][vols[1][1] == 3] = 0  # ... and label: NaN there
    one, ranks = VolumeScores(4), [VolumeScores(4), VolumeScores(4)]
    for i, (p, y) in enumerate(vols):
        s = score_volume(p, y, 4, (1.0, 1.0, 1.5))
        one.add(s)
        ranks[i % 2].add(s)
    ranks[0].totals += ranks[1].totals  # what torch.distributed.all_reduce(totals) does
    _same_result(ranks[0].result(), one.result())
    assert one.volumes == 4
    nan_free = [score_volume(p, y, 4, (1.0, 1.0, 1.5)) for p, y in vols]
    expected_dice_3 = 100 * sum(float(s[0, 2]) for s in nan_free if not math.isnan(s[0, 2])) / 3
    assert one.result()["dice_per_class"][2] == pytest.approx(expected_dice_3)


def _volumes():
    return [(_blobs((10, 9, 8), 4, seed=s), _blobs((10, 9, 8), 4, seed=s + 50)) for s in range(3)]


def _reduce_worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        scores = VolumeScores(4)
        for p, y in _volumes()[rank::world]:
            scores.add(score_volume(p, y, 4, (1.0, 1.0, 1.5)))
        dist.all_reduce(scores.totals)
        torch.save(scores.result(), f"{out}/{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_volume_scores_all_reduced_by_two_gloo_processes(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_reduce_worker, args=(2, port, tmp_path), nprocs=2, start_method="fork")
    one = VolumeScores(4)
    for p, y in _volumes():
        one.add(score_volume(p, y, 4, (1.0, 1.0, 1.5)))
    for rank in range(2):  # 3 volumes split 2/1, yet every rank reports all 3
        _same_result(torch.load(tmp_path / f"{rank}.pt", weights_only=True), one.result())
