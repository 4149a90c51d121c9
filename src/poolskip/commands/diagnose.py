"""``poolskip diagnose``: per-layer diagnostics of trained models, as CSVs and Fig. 4 style plots.

Each PATH is a run directory written by ``poolskip train`` (its ``checkpoints/last.pt``, or ``best.pt``
with ``--which best``) or a checkpoint file (``--which`` naming the other one of a ``last.pt``/``best.pt``
file is refused, as the file is what would be read). The model is rebuilt from the config stored in the
checkpoint and its weights loaded with ``torch.load(..., weights_only=True)``.

Each model is probed with ``--probe-size`` samples that its task draws with ``--probe-seed``, prepared as
the model was trained (its normalisation). What they are depends on the task: classification, a fixed
random subset of the dataset's test split (the same images for every model of one dataset); 2D
segmentation, images of the run's evaluation split (``segmentation.eval_split``), centre-cropped or padded
to its crop size; 3D segmentation, patches of the run's own evaluated volumes, i.e. its fold's validation
part (``fold: -1``: the test set), so runs of different folds are probed on different data (compare runs
of one fold).

The report (a CSV pair per model, ``summary.json``, PNGs) is written to ``--out``, each file atomically. An
``--out`` that already holds a diagnose report is refused before any model is probed (a second report
would leave the first one's CSVs beside the new summary); ``--overwrite`` removes that report's files
(only those) and writes the new one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import UsageError, checkpoint_choice

__all__ = ["add_arguments", "run"]


def _run_label(path: Path) -> str:
    return path.name if path.is_dir() else (path.parent.parent.name if path.parent.name == "checkpoints" else path.stem)


def probe_set(path: str, args: argparse.Namespace, which: str = "last"):
    """``(model, info, inputs, targets, loss_fn, loss_weight)``: the checkpoint's model and ``--probe-size``
    evaluation samples (a fixed random subset) prepared as the model was trained, with the loss, through its
    task's own code (``loss_weight``: the task's ``probe_loss_weight``, None for a mean per sample). ``which``:
    the checkpoint of a run directory."""
    from ..engine.trainer import restore

    overrides = {"data.train_subset": None}
    for key, name in (("dataset", "data.dataset"), ("data_dir", "data.data_dir")):
        if getattr(args, key) is not None:
            overrides[name] = getattr(args, key)
    model, task, info = restore(path, which, args.device, overrides, args.allow_external_model)
    inputs, targets = task.probe_batch(args.probe_size, args.probe_seed)
    return model, info, inputs, targets, task.probe_loss, getattr(task, "probe_loss_weight", None)


def _placement_words(info: dict, model) -> str:
    """The run's placement as ``train`` names it (:func:`~poolskip.engine.placement.placement_name`: ``plain``,
    ``pool_skip``, ``pool_skip-conv_skip``, ``pool_skip-depthwise``, ...), then the policy, sites and pool sizes
    the built model has (:func:`~poolskip.engine.placement.placement`)."""
    from ..engine.placement import placement, placement_name

    cfg = info["config"]
    name = placement_name(cfg["model"], cfg.get("pool_skip"))
    if name == "plain":
        return name
    placed = placement(cfg["model"], cfg.get("pool_skip"), model)
    if not placed["pool_skip"]:
        return f"{name}, no Pool Skip site built"
    policy = f"policy {placed['policy']}, " if placed["policy"] is not None else ""
    sizes = "/".join("x".join(map(str, p)) if len(set(p)) > 1 else str(p[0]) for p in placed["pool_size"])
    return f"{name}, {policy}{placed['sites']} site{'s' * (placed['sites'] != 1)}, pool {sizes}"


def _model_line(info: dict, model) -> str:
    return f"{info['config']['model']} ({_placement_words(info, model)}), epoch {info.get('epoch')}"


def _measures_line(d) -> str:
    """The summary's headline measures, with the layer of the highest l2/l1 by name (n/a: not measured)."""
    s = d.summary()
    called = [layer for layer in d.plain_layers() if layer.called]
    parts = []
    if called:
        top = max(called, key=lambda layer: layer.l2_l1)
        parts.append(
            f"l2/l1 highest {top.l2_l1:.3f} at '{top.name}' ({top.type}, layer {called.index(top) + 1} of "
            f"{len(called)}), mean {s['l2_l1_mean']:.4f}"
        )
    if "dead_units_mean" in s:
        parts.append(f"dead units {100 * s['dead_units_mean']:.1f}% (mean over activations)")
    if "probe_loss" in s:
        parts.append(f"probe loss {s['probe_loss']:.3f}")
    return "; ".join(parts) or "no conv/linear layer or activation was called"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="RUN_DIR_OR_CHECKPOINT", help="run directories or checkpoint files")
    p.add_argument(  # --dataset and --which as eval spells them; --data and --checkpoint as this command did
        "--dataset",
        "--data",
        dest="dataset",
        default=None,
        help="dataset to probe with (one the run's task reads); default: the one each model trained on",
    )
    p.add_argument("--data-dir", default=None, help="where that dataset lives (default: the run's data_dir)")
    p.add_argument("--probe-size", type=int, default=256, help="samples in the probe set (default: 256)")
    p.add_argument("--probe-seed", type=int, default=0, help="seed of the probe subset, same for all models")
    p.add_argument(
        "--batch-size",
        type=int,
        default=128,
        help="probe images per forward/backward pass (bounds memory; the measures do not depend on it)",
    )
    p.add_argument(
        "--which", "--checkpoint", dest="checkpoint", choices=("last", "best"), default=None,
        help="which checkpoint of a run directory (default: last); a checkpoint file named for the other one "
        "is refused",
    )  # fmt: skip
    p.add_argument("--labels", nargs="+", default=None, help="one legend label per path (default: run dir names)")
    p.add_argument("--out", default="diagnose", help="output directory for CSVs, summary.json, PNGs")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a diagnose report already in --out (its CSVs, summary.json and PNGs; only those)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--allow-external-model", action="store_true", help="import a package.module:factory model")


def run(args: argparse.Namespace) -> int:
    from ..diagnostics import diagnose, report_files, write_report

    if args.probe_size < 1 or args.batch_size < 1:
        raise UsageError(f"--probe-size and --batch-size must be >= 1, got {args.probe_size} and {args.batch_size}")
    if args.labels is not None and len(args.labels) != len(args.paths):
        raise UsageError(f"--labels needs one label per path: {len(args.paths)} paths, {len(args.labels)} labels")
    out = Path(args.out)
    blocker = next((p for p in (out, *out.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():  # found now, not after every model was probed
        where = "" if blocker == out else f" cannot be made: {blocker}"
        raise UsageError(f"--out {out}{where} is a file, not a folder; choose another --out")
    try:
        earlier = report_files(out)
    except FileExistsError as e:  # a folder holding another summary.json: never replaced, even with --overwrite
        raise UsageError(f"--out {out}: {e}") from None
    if earlier and not args.overwrite:  # found now, not after every model was probed
        raise UsageError(
            f"--out {out} already holds a diagnose report ({', '.join(p.name for p in earlier)}); pass --overwrite "
            "to replace it (its files only), or choose another --out"
        )
    which = [checkpoint_choice(p, args.checkpoint, "last") for p in args.paths]  # last.pt --which best: refused
    labels = args.labels or [_run_label(Path(p)) for p in args.paths]
    if len(set(labels)) != len(labels):
        raise UsageError(f"two paths get the same label {labels}; pass --labels")

    diagnoses = {}
    for label, path, pick in zip(labels, args.paths, which):
        model, info, x, y, loss_fn, loss_weight = probe_set(path, args, pick)
        d = diagnose(model, x, y, loss_fn=loss_fn, loss_weight=loss_weight, batch_size=args.batch_size)
        diagnoses[label] = d
        print(f"{label}: {_model_line(info, model)}, probe {len(x)}: {_measures_line(d)}")
    try:
        paths = write_report(diagnoses, out, overwrite=args.overwrite)
    except FileExistsError:  # a report written there while the models were probed
        raise UsageError(
            f"--out {out} got a diagnose report while the models were probed; pass --overwrite to replace it, "
            "or choose another --out"
        ) from None
    pngs = ", ".join(p.name for p in paths.values() if p.suffix == ".png")
    print(f"wrote one CSV per model, summary.json and {pngs} to {args.out}")
    return 0
