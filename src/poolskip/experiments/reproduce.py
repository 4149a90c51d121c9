"""``poolskip reproduce {table1..table5, fig3, fig4}``: one command per table and figure of the paper.

Each command is a plan (a list of runs: a row of the table, a config mapping in engine config keys, a
seed), then the runs (finished ones skipped, half-done ones resumed), then the table in the paper's
layout: our mean ± std over seeds beside the paper's number, their difference, our difference to our
own plain network, and the parameters and multiply-adds of every row. Figures are PNGs.

Scales:

- ``paper``: the paper's protocol (facts.md sections 3-8): every model of the table, both variants,
  5 seeds, full schedules. Days of GPU time; ``--dry-run`` says how long on this machine.
- ``quick``: a clearly labelled shortened version (fewer epochs, 3 seeds, smaller widths, a data subset
  or, for table1/table4, all images with a one-cycle schedule calibrated so the plain network learns on
  real CIFAR-10: :data:`QUICK_CLASSIFICATION`) sized for a CPU. Never the paper's protocol.
- ``tiny``: a smoke test (scikit-learn's digits, a small CNN, 1 epoch, 1 seed) for CI.

``--controls`` adds the cost-matched controls of :mod:`poolskip.experiments.controls` to every row
with Pool Skip: the {Conv, Skip} ablation (same cost, no pooling), a plain network widened to Pool
Skip's MACs, and a depthwise Pool Skip. The question each table lets a reader answer: does Pool Skip
beat a plain network that costs the same?
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import re
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .controls import CONTROLS, control_spec, cost, has_width, models_with_width
from .figures import save_figure
from .paper import paper_entry, paper_numbers
from .stats import format_mean_std, mean_std

__all__ = [
    "COMMANDS",
    "SCALES",
    "Run",
    "add_arguments",
    "collect",
    "estimate",
    "plan",
    "read_summary",
    "render_table",
    "run",
    "run_status",
]

COMMANDS = ("table1", "table2", "table3", "table4", "table5", "fig3", "fig4")
SCALES = ("paper", "quick", "tiny")

# ------------------------------------------------------------------------------------------ recipes

#: DeVries & Taylor 2017, which the paper says it follows (facts.md section 3), in engine config keys.
DEVRIES_TAYLOR = {
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
    "batch_size": 128,
    "epochs": 200,
    "schedule": "multistep",
    "milestones": [60, 120, 160],
    "gamma": 0.2,
    "warmup_epochs": 0,
    "crop_padding": 4,
    "flip": True,
    "mean": [125.3 / 255, 123.0 / 255, 113.9 / 255],
    "std": [63.0 / 255, 62.1 / 255, 66.7 / 255],
}

#: Compact Transformers' CIFAR recipe (facts.md section 4); mixup/cutmix/RandAugment are not in the engine.
CCT_RECIPE = {
    "optimizer": "adamw",
    "lr": 5.5e-4,
    "weight_decay": 0.06,
    "batch_size": 128,
    "epochs": 300,
    "schedule": "cosine",
    "warmup_epochs": 10,
    "label_smoothing": 0.1,
    "crop_padding": 4,
    "flip": True,
}

#: DeepLabv3+ (VainF's reference, facts.md section 5): 30k iterations of batch 16 ~ epochs below.
DEEPLAB_RECIPE = {
    "task": "segmentation",
    "optimizer": "sgd",
    "momentum": 0.9,
    "nesterov": False,
    "weight_decay": 1e-4,
    "batch_size": 16,
    "schedule": "poly",
    "power": 0.9,
    "lr_mult": {"backbone": 0.1},
}

#: nnU-Net-like 3D training (facts.md section 6), the segmentation3d task's own defaults otherwise.
MED3D_RECIPE = {
    "task": "segmentation3d",
    "optimizer": "sgd",
    "lr": 0.01,
    "momentum": 0.99,
    "weight_decay": 3e-5,
    "nesterov": True,
    "schedule": "poly",
    "batch_size": 2,
}

#: Images per split of the datasets we know (for wall-time estimates), and their input shape.
DATASET_SIZES = {
    "cifar10": (50000, 10000, 10, (3, 32, 32)),
    "cifar100": (50000, 10000, 100, (3, 32, 32)),
    "digits": (1347, 450, 10, (1, 8, 8)),
    "voc": (10582, 1449, 21, (3, 513, 513)),
    "cityscapes": (2975, 500, 19, (3, 768, 768)),
    "camvid": (367, 101, 11, (3, 360, 480)),
    "btcv": (18, 12, 14, (1, 96, 96, 96)),
    "amos": (240, 120, 16, (1, 96, 96, 96)),
    "decathlon": (208, 52, 3, (1, 40, 56, 40)),  # Hippocampus: nnU-Net's planned patch (V-Net: padded to 16s)
}

PAPER_DATASET_LABELS = {
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "voc": "Pascal VOC",
    "cityscapes": "Cityscapes",
    "btcv": "BTCV",
    "amos": "AMOS",
}

# Table 4's rows: our label, the paper's entry name, and the pool_skip config value.
TABLE4_ROWS = [
    ("VGG16", "plain", None),
    ("+{Pool,Skip}", "pool_skip_only", {"variant": "pool_skip"}),
    ("+{Conv,Skip}", "conv_skip", {"variant": "conv_skip"}),
    ("+{Pool,Conv}", "pool_conv", {"variant": "pool_conv"}),
    ("+{Ours}", "pool_skip", True),
]

CONTROL_LABELS = {
    "conv_skip": "+{Conv,Skip} (same cost, no pool)",
    "wide": "plain, widened to Pool Skip's MACs",
    "depthwise": "+ours, depthwise inner conv",
}


@dataclass
class Run:
    """One training run of a reproduction: which cell of the table it fills, and its config."""

    command: str
    row: str  # the row label in the table, e.g. "ResNet18 +ours"
    key: str  # plain | pool_skip | pool_skip_only | conv_skip | pool_conv | wide | depthwise | pool_skip_s2 ...
    model: str
    dataset: str  # what the run trains on (the engine's dataset name)
    column: str  # the paper column it is compared with (cifar10, cifar100, voc, ...)
    seed: int
    config: dict[str, Any]
    group: str = ""  # the model block of the table the row belongs to ("ResNet18"), for "vs plain"
    note: str = ""  # why a run cannot start yet (unregistered task/model), filled by check()
    depth: int | None = None  # fig3/fig4: the ResNet depth
    paper_model: str = ""  # the paper's network the row stands for (a tiny run trains a small CNN instead)

    @property
    def name(self) -> str:
        """The run's directory, relative to the reproduction's ``runs/``."""
        where = self.dataset if self.dataset == self.column else f"{self.dataset}-as-{self.column}"
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{where}_{self.group}_{self.key}").strip("-")
        return f"{slug}/seed{self.seed}"


# ------------------------------------------------------------------------------------------ planning


def _small_model() -> str:
    """The tiny scale's model: the registered small CNN (``poolskip.models.toy``)."""
    return "small_cnn"


def _data(dataset: str, data_dir: str | None, train_subset: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"dataset": dataset}
    if data_dir:
        out["data_dir"] = data_dir
    if train_subset:
        out["train_subset"] = train_subset
    return out


def _squeezed_milestones(epochs: int) -> dict[str, Any]:
    """DeVries & Taylor's step schedule squeezed into ``epochs`` (milestones at 30/60/80 % of training): what
    ``--epochs`` does to a paper-scale run."""
    return {"epochs": epochs, "milestones": [max(1, round(epochs * f)) for f in (0.3, 0.6, 0.8)]}


#: The quick scale's classification training (calibrated on real CIFAR-10, results/calib-quick-cifar10/):
#: DeVries & Taylor's optimiser (SGD, Nesterov, wd 5e-4, batch 128, crop + flip) at a lower peak rate, with
#: their step schedule replaced by a one-cycle shape, and channels_last (the same arithmetic, faster on CPU).
QUICK_CLASSIFICATION = {"lr": 0.02, "channels_last": True}
#: ... for this many epochs of this many training images (50,000: all of CIFAR-10/100's, in a fixed shuffle).
QUICK_EPOCHS, QUICK_TRAIN_SUBSET = 4, 50000
#: The one-cycle shape: linear warm-up over this fraction of training, then cosine to 0.
QUICK_WARMUP_FRACTION = 0.2


def _quick_schedule(epochs: int) -> dict[str, Any]:
    """A one-cycle schedule of ``epochs``: warm-up over the first fifth, cosine to 0. Unlike squeezed
    milestones, its shape is the same at any length."""
    return {
        "epochs": epochs,
        "schedule": "cosine",
        "warmup_epochs": round(epochs * QUICK_WARMUP_FRACTION, 3),
        "min_lr": 0.0,
    }


@dataclass
class _Scale:
    seeds: list[int]
    epochs: int | None = None
    train_subset: int | None = None
    widths: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def _scale(scale: str, default_seeds: int, epochs: int | None, subset: int | None, **kw) -> _Scale:
    seeds = {"paper": list(range(default_seeds)), "quick": [0, 1, 2], "tiny": [0]}[scale]
    return _Scale(seeds, epochs, subset, **kw)


def _quick_classification_scale() -> _Scale:
    """Table 1's and Table 4's quick scale: the calibrated overlay, 3 seeds, evaluated after the last epoch."""
    extra = {**QUICK_CLASSIFICATION, "eval_every": QUICK_EPOCHS}
    return _scale("quick", 5, QUICK_EPOCHS, QUICK_TRAIN_SUBSET, extra=extra)


def _cls_columns(scale: str, dataset: str | None, paper: Sequence[str]) -> list[tuple[str, str]]:
    """(dataset to train on, paper column to compare with) pairs for a classification table."""
    if scale == "tiny":
        return [(dataset or "digits", paper[-1])]
    if dataset is None:
        return [(d, d) for d in (paper if scale == "paper" else paper[-1:])]
    return [(dataset, _paper_column(dataset, paper))]


def _paper_column(dataset: str, paper: Sequence[str]) -> str:
    if dataset in paper:
        return dataset
    return "cifar100" if "cifar100" in paper and "100" in dataset else paper[-1]


def _classification(
    command: str,
    scale: str,
    models: Sequence[tuple[str, str, dict[str, Any]]],  # (model, label, model_kwargs)
    variants: Sequence[tuple[str, str, object]],  # (row suffix, key, pool_skip)
    recipe: Mapping[str, Any],
    sc: _Scale,
    columns: Sequence[tuple[str, str]],
    data_dir: str | None,
    controls: bool,
    pool_skip_for: Mapping[str, object] | None = None,  # column -> the pool_skip of "+ours" there
) -> list[Run]:
    runs = []
    for dataset, column in columns:
        for model, label, kwargs in models:
            paper_model = model
            if scale == "tiny":
                model, kwargs, label = _small_model(), {"width": 8}, f"{label} (tiny: small CNN)"
            rows = list(variants)
            ours = (pool_skip_for or {}).get(column, True)
            rows = [(s, k, ours if k == "pool_skip" else ps) for s, k, ps in rows]
            if controls:
                rows += _control_rows(model, ours, kwargs, dataset, skip={k for _, k, _ in rows})
            for suffix, key, pool_skip in rows:
                mk = kwargs
                if isinstance(pool_skip, tuple):  # a control that changes the model's kwargs too
                    pool_skip, mk = pool_skip
                cfg = {
                    **recipe,
                    **_data(dataset, data_dir, sc.train_subset),
                    "model": model,
                    "model_kwargs": dict(mk),
                    "pool_skip": pool_skip,
                    **({"epochs": sc.epochs} if sc.epochs else {}),
                    **sc.extra,
                }
                if recipe.get("schedule") == "multistep" and sc.epochs:
                    cfg.update(_quick_schedule(sc.epochs))
                if dataset == "digits":  # 8x8 grey digits: no flips, one-pixel shifts, measured mean/std
                    cfg.update({"crop_padding": 1, "flip": False, "mean": None, "std": None})
                for seed in sc.seeds:
                    runs.append(
                        Run(
                            command,
                            f"{label} {suffix}".strip(),
                            key,
                            model,
                            dataset,
                            column,
                            seed,
                            {**cfg, "seed": seed},
                            group=label,
                            paper_model=paper_model,
                        )
                    )
    return runs


def _control_rows(model: str, ours: object, kwargs: Mapping[str, Any], dataset: str, skip: set[str]) -> list:
    """The controls' rows (suffix, key, (pool_skip, model_kwargs)) for one model, costs counted at the
    dataset's input shape (nnU-Net planned for that patch; the run itself keeps the task's plan)."""
    rows = []
    n_classes, shape = DATASET_SIZES.get(dataset, (0, 0, 10, (3, 32, 32)))[2:]
    costed = _cost_kwargs(model, kwargs, shape)
    for name in CONTROLS:
        if name in skip:
            continue
        if name == "wide" and not has_width(model):
            continue  # no width knob: run() says so, nothing to run
        ps, mk = control_spec(name, model, ours, costed, n_classes, shape)
        rows.append((CONTROL_LABELS[name], name, (ps, {**kwargs, **{k: v for k, v in mk.items() if k == "width"}})))
    return rows


def plan(
    command: str,
    scale: str = "quick",
    dataset: str | None = None,
    data_dir: str | None = None,
    seeds: Sequence[int] | None = None,
    controls: bool = False,
    epochs: int | None = None,
) -> list[Run]:
    """The runs of ``command`` at ``scale``; ``dataset``/``data_dir``/``seeds``/``epochs`` override the scale's."""
    if command not in COMMANDS:
        raise ValueError(f"unknown reproduction {command!r}; choose one of {', '.join(COMMANDS)}")
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    runs = _PLANNERS[command](scale, dataset, data_dir, controls)
    if seeds is not None:
        seeds = list(seeds)
        by_cell: dict[str, Run] = {}
        for r in runs:
            by_cell.setdefault(r.name.rsplit("/", 1)[0], r)
        runs = [
            Run(**{**asdict(r), "seed": s, "config": {**r.config, "seed": s}}) for r in by_cell.values() for s in seeds
        ]
    if epochs is not None:
        for r in runs:
            one_cycle = all(r.config.get(k) == v for k, v in _quick_schedule(r.config["epochs"]).items())
            r.config["epochs"] = epochs
            if r.config.get("schedule") == "multistep":
                r.config.update(_squeezed_milestones(epochs))
            elif one_cycle:  # the quick scale's one-cycle keeps its shape: the warm-up scales with the epochs
                r.config.update(_quick_schedule(epochs))
    return runs


def _plan_table1(scale, dataset, data_dir, controls):
    paper_models = [
        ("mobilenet", "MobileNet"),
        ("googlenet", "GoogLeNet"),
        ("vgg16", "VGG16"),
        ("resnet18", "ResNet18"),
        ("resnet34", "ResNet34"),
    ]
    if scale == "paper":
        models = [(m, label, {}) for m, label in paper_models]
        sc = _scale(scale, 5, None, None)
    elif scale == "quick":  # a ResNet18-class network and the MobileNet, narrow
        models = [("resnet18", "ResNet18 (width 8)", {"width": 8}), ("mobilenet", "MobileNet (width 8)", {"width": 8})]
        sc = _quick_classification_scale()
    else:
        models = [("resnet18", "ResNet18", {})]
        sc = _scale(scale, 5, 1, 256)
    recipe = {**DEVRIES_TAYLOR, "cutout": 0}
    columns = _cls_columns(scale, dataset, ("cifar100", "cifar10"))
    variants = [("", "plain", None), ("+ours", "pool_skip", True)]
    return _classification("table1", scale, models, variants, recipe, sc, columns, data_dir, controls)


def _plan_table4(scale, dataset, data_dir, controls):
    if scale == "paper":
        models, sc = [("vgg16", "VGG16", {})], _scale(scale, 5, None, None)
        columns = [(dataset or "cifar100", "cifar100")]
    else:
        width = 8
        models = [("vgg16", f"VGG16 (width {width})", {"width": width})]
        if scale == "quick":
            sc = _quick_classification_scale()
        else:
            sc = _scale(scale, 5, 1, 256)
        columns = _cls_columns(scale, dataset, ("cifar100",))
        if scale == "quick" and dataset is None:
            columns = [("cifar100", "cifar100")]
    variants = [(("" if k == "plain" else s), k, ps) for s, k, ps in TABLE4_ROWS]
    runs = _classification("table4", scale, models, variants, DEVRIES_TAYLOR, sc, columns, data_dir, controls)
    for r in runs:  # Table 4's labels are the paper's column heads
        r.row = dict((k, s) for s, k, _ in TABLE4_ROWS).get(r.key, r.row)
        if r.key in CONTROLS and r.key not in {k for _, k, _ in TABLE4_ROWS}:  # conv_skip is a paper row here
            r.row = CONTROL_LABELS[r.key]
    return runs


def _plan_table5(scale, dataset, data_dir, controls):
    models = [("vit_7_4_32", "ViT", {}), ("cct_7_3x1_32", "CCT", {}), ("cvt_7_4_32", "CVT", {})]
    if scale == "paper":
        sc = _scale(scale, 5, None, None)
    elif scale == "quick":
        sc = _scale(scale, 5, 5, 2000, extra={"eval_every": 5, "warmup_epochs": 1})
    else:
        sc = _scale(scale, 5, 1, 256, extra={"warmup_epochs": 0})
    columns = _cls_columns(scale, dataset, ("cifar100", "cifar10"))
    variants = [("", "plain", None), ("+ours", "pool_skip", True)]
    runs = _classification("table5", scale, models, variants, CCT_RECIPE, sc, columns, data_dir, controls)
    for r in runs:
        if r.column == "cifar100" and scale == "paper":
            r.config["lr"] = 6e-4
    return runs


def _deep_depths(scale: str) -> list[int]:
    return {"paper": [50, 101, 152, 200, 350, 420], "quick": [50, 101, 152], "tiny": [50]}[scale]


def _plan_fig3(scale, dataset, data_dir, controls):
    width = {"paper": 64, "quick": 4, "tiny": 4}[scale]
    if scale == "paper":
        sc = _scale(scale, 5, None, None)
    elif scale == "quick":
        sc = _scale(scale, 5, 4, 5000, extra={"eval_every": 4})
    else:
        sc = _scale(scale, 5, 1, 64)
    columns = _cls_columns(scale if scale != "tiny" else "quick", dataset, ("cifar100", "cifar10"))
    if scale == "tiny":
        columns = [(dataset or "cifar10", "cifar10")]
    runs = []
    for depth in _deep_depths(scale):
        model = f"resnet{depth}"
        label = f"ResNet{depth}" + ("" if width == 64 else f" (width {width})")
        sub = _classification(
            "fig3",
            "quick" if scale == "tiny" else scale,
            [(model, label, {"width": width})],
            [("", "plain", None), ("+ours", "pool_skip", True)],
            DEVRIES_TAYLOR,
            sc,
            columns,
            data_dir,
            controls,
            pool_skip_for={"cifar10": {"pool_size": 2}, "cifar100": True},  # Fig. 3: pool 2 on C10, 4 on C100
        )
        for r in sub:
            r.command, r.depth = "fig3", depth
        runs += sub
    return runs


def _plan_fig4(scale, dataset, data_dir, controls):
    width = {"paper": 64, "quick": 4, "tiny": 4}[scale]
    depths = {"paper": [350, 420], "quick": [350], "tiny": [50]}[scale]
    if scale == "paper":
        sc = _scale(scale, 1, None, None)
        sc.seeds = [0]
    elif scale == "quick":
        sc = _scale(scale, 1, 4, 5000, extra={"eval_every": 4})
        sc.seeds = [0]
    else:
        sc = _scale(scale, 1, 1, 64)
    columns = [(d, c) for d, c in _cls_columns("quick" if scale == "tiny" else scale, dataset, ("cifar100", "cifar10"))]
    runs = []
    for depth in depths:
        model = f"resnet{depth}"
        label = f"ResNet{depth}" + ("" if width == 64 else f" (width {width})")
        variants = [
            ("", "plain", None),
            ("Pool Skip S2", "pool_skip_s2", {"pool_size": 2}),
            ("Pool Skip S4", "pool_skip_s4", {"pool_size": 4}),
        ]
        sub = _classification(
            "fig4",
            "quick" if scale == "tiny" else scale,
            [(model, label, {"width": width})],
            variants,
            DEVRIES_TAYLOR,
            sc,
            columns,
            data_dir,
            False,
        )
        for r in sub:
            r.depth = depth
        runs += sub
    return runs


def _seg_scale(scale: str) -> _Scale:
    if scale == "paper":
        return _scale(scale, 5, None, None)
    if scale == "quick":
        return _scale(scale, 5, 3, None)
    return _scale(scale, 5, 1, None)


def _plan_table2(scale, dataset, data_dir, controls):
    models = [("deeplabv3plus_mobilenet", "DLP_MobileNet"), ("deeplabv3plus_resnet101", "DLP_ResNet101")]
    sc = _seg_scale(scale)
    if scale == "paper":
        # 30k iterations of batch 16: VOC trainaug (10,582 images) ~ 45 epochs, Cityscapes (2,975) ~ 161
        columns = [
            ("cityscapes", "cityscapes", {"lr": 0.1, "epochs": 161, "segmentation.crop_size": [768, 768]}),
            ("voc", "voc", {"lr": 0.01, "epochs": 45, "segmentation.crop_size": [513, 513]}),
        ]
    else:  # CamVid stands in for both (the shared copy); compared with Cityscapes (street scenes)
        models = models[:1]
        columns = [
            (
                dataset or "camvid",
                "cityscapes",
                {
                    "lr": 0.01,
                    "epochs": sc.epochs,
                    "segmentation.crop_size": [128, 128] if scale == "quick" else [32, 32],
                    "batch_size": 8 if scale == "quick" else 2,
                    # CamVid is scored on its test split, as the deeplab_camvid recipe does
                    **({"segmentation.eval_split": "test"} if (dataset or "camvid") == "camvid" else {}),
                },
            )
        ]
    runs = []
    for ds, column, extra in columns:
        for model, label in models:
            rows = [("", "plain", None), ("+ours", "pool_skip", True)]
            if controls:
                rows += _control_rows(model, True, {}, ds, skip=set())
            for suffix, key, ps in rows:
                ps, mk = ps if isinstance(ps, tuple) else (ps, {})
                cfg = {
                    **DEEPLAB_RECIPE,
                    **_data(ds, data_dir),
                    "model": model,
                    "model_kwargs": mk,
                    "pool_skip": ps,
                    **extra,
                }
                for seed in sc.seeds:
                    runs.append(
                        Run(
                            "table2",
                            f"{label} {suffix}".strip(),
                            key,
                            model,
                            ds,
                            column,
                            seed,
                            {**cfg, "seed": seed},
                            group=label,
                        )
                    )
    return runs


def _plan_table3(scale, dataset, data_dir, controls):
    models = [("vnet", "V-Net"), ("nnunet", "nnUNet")]
    if scale == "paper":  # 5-fold cross-validation; the folds stand where seeds stand in the other tables
        columns = [("btcv", "btcv", {}), ("amos", "amos", {})]
        folds, epochs = list(range(5)), 1000
    else:  # the shared Decathlon hippocampus copy stands in for both; compared with BTCV
        columns = [
            (
                dataset or "decathlon",
                "btcv",
                {
                    "segmentation3d.iterations": 20 if scale == "quick" else 2,
                    "segmentation3d.eval_subset": 8 if scale == "quick" else 1,
                },
            )
        ]
        folds, epochs = ([0, 1, 2] if scale == "quick" else [0]), (4 if scale == "quick" else 1)
    runs = []
    for ds, column, extra in columns:
        for model, label in models:
            rows = [("", "plain", None), ("+ours", "pool_skip", True)]
            if controls:
                rows += _control_rows(model, True, {}, ds, skip=set())
            for suffix, key, ps in rows:
                ps, mk = ps if isinstance(ps, tuple) else (ps, {})
                mult = {"segmentation3d.patch_multiple": 16} if model == "vnet" else {}
                cfg = {
                    **MED3D_RECIPE,
                    **_data(ds, data_dir),
                    "model": model,
                    "model_kwargs": mk,
                    "pool_skip": ps,
                    "epochs": epochs,
                    **mult,
                    **extra,
                }
                for fold in folds:
                    runs.append(
                        Run(
                            "table3",
                            f"{label} {suffix}".strip(),
                            key,
                            model,
                            ds,
                            column,
                            fold,
                            {**cfg, "seed": 0, "segmentation3d.fold": fold},
                            group=label,
                        )
                    )
    return runs


_PLANNERS = {
    "table1": _plan_table1,
    "table2": _plan_table2,
    "table3": _plan_table3,
    "table4": _plan_table4,
    "table5": _plan_table5,
    "fig3": _plan_fig3,
    "fig4": _plan_fig4,
}

# ------------------------------------------------------------------------------------------ checks, costs


def check(run_: Run) -> str:
    """Why ``run_`` cannot start here yet ('' if it can): an unregistered task or model, a bad config."""
    from ..engine.config import make_config
    from ..models import list_models
    from ..tasks import list_tasks

    task = run_.config.get("task", "classification")
    if task not in list_tasks():
        return f"task {task!r} is not registered yet (known: {', '.join(list_tasks())})"
    if ":" not in run_.model and run_.model not in list_models():
        return f"model {run_.model!r} is not registered yet"
    if ":" in run_.model:
        from ..models._registry import get_factory

        try:
            get_factory(run_.model)
        except ValueError as e:
            return str(e)
    try:
        make_config(run_.config)
    except Exception as e:  # a config the engine rejects: say which and why, do not crash the plan
        return f"config rejected: {e}"
    return ""


def _num_classes_and_shape(run_: Run) -> tuple[int, tuple[int, ...]]:
    info = DATASET_SIZES.get(run_.dataset)
    if run_.dataset == "imagefolder" and run_.config.get("data_dir"):
        train = Path(run_.config["data_dir"]) / "train"
        n = sum(1 for p in train.iterdir() if p.is_dir()) if train.is_dir() else 10
        return n, (3, 32, 32)
    if info is None:
        return 10, (3, 32, 32)
    shape = info[3]
    crop = run_.config.get("segmentation.crop_size")
    if crop:
        shape = (3, *crop)
    multiple = int(run_.config.get("segmentation3d.patch_multiple") or 1)  # V-Net: padded to multiples of 16
    if len(shape) == 4 and multiple > 1:
        shape = (shape[0], *(-(-s // multiple) * multiple for s in shape[1:]))
    return info[2], shape


def _cost_kwargs(model: str, kwargs: Mapping[str, Any] | None, shape: Sequence[int]) -> dict[str, Any]:
    """The factory options a cost is counted with: a model planned for its patch (nnU-Net) is planned for
    the input it is counted at, as the task plans it for the patches it trains on."""
    from ..models._registry import factory_parameters

    kwargs = dict(kwargs or {})
    try:
        takes = factory_parameters(model) or []
    except ValueError:
        takes = []
    if "patch_size" in takes and "patch_size" not in kwargs and len(shape) == 4:
        kwargs["patch_size"] = list(shape[1:])
    return kwargs


def _dataset_sizes(run_: Run) -> tuple[int, int]:
    """(training, evaluation) samples of the run's data, for the wall-time estimate."""
    if run_.dataset == "imagefolder" and run_.config.get("data_dir"):
        root = Path(run_.config["data_dir"])
        n = [sum(len(files) for _, _, files in os.walk(root / s)) for s in ("train", "test")]
    else:
        n = list(DATASET_SIZES.get(run_.dataset, (50000, 10000))[:2])
    if run_.config.get("train_subset"):
        n[0] = min(n[0], run_.config["train_subset"])
    return n[0], n[1]


@dataclass
class Estimate:
    """A run's cost: parameters, multiply-adds per sample, measured step time, estimated wall time."""

    params: int | None = None
    macs: int | None = None
    step_seconds: float | None = None  # one optimiser step of the run's batch, measured here
    wall_seconds: float | None = None
    note: str = ""


def _build_model(run_: Run, num_classes: int, in_channels: int):
    """The run's model on the CPU (registered or ``package.module:factory``), Pool Skip as configured."""
    from .controls import build

    return build(run_.model, run_.config.get("pool_skip"), run_.config["model_kwargs"], num_classes, in_channels, "cpu")


def _time_step(run_: Run, num_classes: int, shape: tuple[int, ...], steps: int) -> float:
    """Seconds of one training step at the run's batch size, measured on a few small synthetic batches."""
    import torch

    net = _build_model(run_, num_classes, shape[0]).train()
    batch = min(int(run_.config.get("batch_size", 128)), 16)
    x = torch.randn(batch, *shape)
    y = torch.randint(0, num_classes, (batch,))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        out = net(x)
        if out.dim() > 2:  # segmentation: per-pixel logits, any labels will do for timing
            loss = out.float().mean()
        else:
            loss = loss_fn(out, y)
        loss.backward()
        opt.step()

    step()  # warm-up
    times = []
    for _ in range(steps):  # the fastest step: the machine is shared, slower ones measure the neighbours
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    per_sample = min(times) / batch
    return per_sample * int(run_.config.get("batch_size", 128))


def estimate(run_: Run, time_steps: int = 2, _cache: dict | None = None) -> Estimate:
    """Params and MACs (meta device), a measured step time and the estimated wall time of ``run_``."""
    cache = _cache if _cache is not None else {}
    key = json.dumps(
        [
            run_.model,
            run_.config.get("model_kwargs"),
            run_.config.get("pool_skip"),
            run_.dataset,
            run_.config.get("batch_size"),
            run_.config.get("segmentation.crop_size"),
        ],
        sort_keys=True,
        default=str,
    )
    est = Estimate()
    if run_.note:
        est.note = run_.note
        return est
    num_classes, shape = _num_classes_and_shape(run_)
    if key not in cache:
        e = Estimate()
        try:
            kwargs = _cost_kwargs(run_.model, run_.config.get("model_kwargs"), shape)
            c = cost(run_.model, run_.config.get("pool_skip"), kwargs, num_classes, shape)
            e.params, e.macs = c.params, c.macs
        except Exception as err:  # a model that cannot be counted at this input: say so
            e.note = f"cost not counted: {err}"
        if time_steps > 0 and e.params is not None and e.params < 150_000_000 and len(shape) <= 3:
            try:
                e.step_seconds = _time_step(run_, num_classes, shape, time_steps)
            except Exception as err:
                e.note = (e.note + "; " if e.note else "") + f"step not timed: {err}"
        cache[key] = e
    e = cache[key]
    est = Estimate(e.params, e.macs, e.step_seconds, None, e.note)
    if est.step_seconds is not None:
        n_train, n_eval = _dataset_sizes(run_)
        batch = int(run_.config.get("batch_size", 128))
        epochs = int(run_.config.get("epochs", 200))
        evals = math.ceil(epochs / int(run_.config.get("eval_every", 1)))
        steps = math.ceil(n_train / batch) * epochs
        est.wall_seconds = est.step_seconds * steps + est.step_seconds / batch / 3 * n_eval * evals
    return est


# ------------------------------------------------------------------------------------------ execution


def run_status(run_dir: Path) -> str:
    """``finished`` (summary.json), ``partial`` (checkpoints/last.pt, resumable) or ``new``."""
    if (run_dir / "summary.json").is_file():
        return "finished"
    if (run_dir / "checkpoints" / "last.pt").is_file():
        return "partial"
    return "new"


def read_summary(run_dir: Path) -> tuple[str, str, float, dict[str, Any]]:
    """``(metric, mode, final value, summary)`` of a finished run, new (``monitor``/``final``) or old format."""
    s = json.loads((Path(run_dir) / "summary.json").read_text())
    if "monitor" in s and "final" in s:
        return s["monitor"]["metric"], s["monitor"]["mode"], float(s["final"]), s
    if "final_error" in s:
        return "test_error", "min", float(s["final_error"]), s
    raise ValueError(f"{run_dir}/summary.json has neither monitor/final nor final_error: keys {sorted(s)}")


def _train_run(config: dict[str, Any], run_dir: str, resume: bool) -> None:
    """One run, in this or a worker process (a top-level function, so a spawned process can call it)."""
    from ..engine.config import make_config
    from ..engine.trainer import train

    train(make_config(config), run_dir, resume=resume)


def _prepare(r: Run, root: Path, i: int, n: int, log) -> str | None:
    """The run's status, after moving aside a start that never checkpointed; None if it needs no training."""
    run_dir = root / "runs" / r.name
    status = run_status(run_dir)
    if r.note:
        log(f"[{i}/{n}] {r.name}: not run ({r.note})")
        return None
    if status == "finished":
        log(f"[{i}/{n}] {r.name}: finished before, skipped")
        return None
    if status == "new" and run_dir.exists() and any(run_dir.iterdir()):
        stale = run_dir.with_name(f"{run_dir.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
        run_dir.rename(stale)  # started but never checkpointed: keep it aside, never delete it
        log(f"[{i}/{n}] {r.name}: an unfinished start without checkpoint moved to {stale.name}")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    return status


def execute(runs: Sequence[Run], root: Path, log=print, jobs: int = 1) -> list[tuple[Run, str]]:
    """Train every run not finished yet under ``root/runs/``: finished ones skipped, half-done ones resumed.

    Seed-major order, so a stopped reproduction leaves whole seeds of the table. ``jobs > 1`` trains that
    many runs at once in separate processes (each with its own ``threads``): on a few busy CPU cores,
    several one-thread runs get more done than one multi-threaded run.
    """
    runs = sorted(runs, key=lambda r: r.seed)
    todo, done = [], []
    for i, r in enumerate(runs, 1):
        status = _prepare(r, root, i, len(runs), log)
        if status is None:
            done.append((r, "unavailable" if r.note else "skipped"))
        else:
            todo.append((i, r, status))
    if jobs <= 1:
        for i, r, status in todo:
            what = "resuming" if status == "partial" else "training"
            log(f"[{i}/{len(runs)}] {r.name}: {what} ({r.row}, seed {r.seed})")
            t = time.time()
            _train_run(r.config, str(root / "runs" / r.name), status == "partial")
            log(f"[{i}/{len(runs)}] {r.name}: done in {time.time() - t:.0f} s")
            done.append((r, "trained"))
        return done
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = []
        for i, r, status in todo:
            log(f"[{i}/{len(runs)}] {r.name}: queued ({r.row}, seed {r.seed})")
            futures.append((i, r, pool.submit(_train_run, r.config, str(root / "runs" / r.name), status == "partial")))
        for i, r, f in futures:
            f.result()  # a failed run raises here, after the others were given their chance
            log(f"[{i}/{len(runs)}] {r.name}: done")
            done.append((r, "trained"))
    return done


# ------------------------------------------------------------------------------------------ tables


def collect(runs: Sequence[Run], root: Path) -> list[dict[str, Any]]:
    """One record per (row, column): our values over seeds, the paper's entry, params and MACs.

    Fig. 4's value is the largest per-layer l2/l1 of the network's conv weights in the run's last checkpoint
    (:func:`layer_l2_l1`, the number the paper's text quotes); its runs' test errors go to ``test_error``.
    """
    records: dict[tuple[str, str], dict[str, Any]] = {}
    table = runs[0].command if runs else None
    for r in runs:
        rec = records.setdefault(
            (r.row, r.column),
            {
                "row": r.row,
                "group": r.group,
                "key": r.key,
                "model": r.model,
                "dataset": r.dataset,
                "column": r.column,
                "depth": r.depth,
                "values": [],
                "seeds": [],
                "metric": None,
                "mode": None,
                "run_dirs": [],
                "model_kwargs": r.config.get("model_kwargs"),
                "paper_model": r.paper_model or r.model,
                "pool_skip": r.config.get("pool_skip"),
                "note": r.note,
            },
        )
        run_dir = root / "runs" / r.name
        if run_status(run_dir) == "finished":
            metric, mode, final, summary = read_summary(run_dir)
            if table == "fig4":
                rec.setdefault("test_error", []).append(final)
                metric, mode, final = "max_l2_l1", "min", max(layer_l2_l1(run_dir))
            rec["values"].append(final)
            rec["seeds"].append(r.seed)
            rec["metric"], rec["mode"] = metric, mode
            rec["run_dirs"].append(str(run_dir))
            rec.setdefault("params", summary.get("params"))
    out = []
    for rec in records.values():
        entry = None
        if table in paper_numbers() and rec["key"] in (
            "plain",
            "pool_skip",
            "pool_skip_only",
            "conv_skip",
            "pool_conv",
        ):
            paper_model = f"resnet{rec['depth']}" if rec["depth"] is not None else rec["paper_model"]
            entry = paper_entry(table, paper_model, rec["column"], rec["key"])
        elif table == "fig4" and rec["key"].startswith("pool_skip"):  # the text's "Pool Skip": S2 or S4, unsaid
            entry = paper_entry(table, f"resnet{rec['depth']}", rec["column"], "pool_skip")
        rec["paper"] = entry
        out.append(rec)
    return out


def _fmt(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _costs(rec: Mapping[str, Any], cache: dict) -> tuple[str, str]:
    r = Run(
        "",
        rec["row"],
        rec["key"],
        rec["model"],
        rec["dataset"],
        rec["column"],
        0,
        {"model_kwargs": rec["model_kwargs"] or {}, "pool_skip": rec["pool_skip"]},
        note=rec.get("note", ""),
    )
    e = estimate(r, time_steps=0, _cache=cache)
    params = f"{e.params / 1e6:.2f} M" if e.params is not None else "—"
    macs = f"{e.macs / 1e6:.1f} M" if e.macs is not None else "—"
    return params, macs


def render_table(command: str, records: Sequence[Mapping[str, Any]], scale: str) -> str:
    """The table in the paper's layout (Markdown): ours, the paper's, their difference, vs our plain, cost."""
    data = paper_numbers()[command]
    cache: dict = {}
    columns = list(dict.fromkeys(r["column"] for r in records))
    datasets = {r["column"]: r["dataset"] for r in records}
    head = ["row", "params", "MACs/sample"]
    for c in columns:
        label = PAPER_DATASET_LABELS.get(c, c)
        ours = f"ours on {datasets[c]}" if datasets[c] != c else "ours"
        head += [f"{label}: {ours}", "paper", "ours − paper", "ours − our plain"]
    lines = [
        f"## {data['title']}",
        "",
        f"Scale: **{scale}**"
        + (
            ""
            if scale == "paper"
            else " — a shortened run, NOT the paper's protocol; "
            "compare directions and differences, not absolute numbers."
        ),
        "",
    ]
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    by_key = {(r["row"], r["column"]): r for r in records}
    plain_of = {(r["group"], r["column"]): r for r in records if r["key"] == "plain"}
    for row in dict.fromkeys(r["row"] for r in records):
        first = next(r for r in records if r["row"] == row)
        params, macs = _costs(first, cache)
        cells = [row, params, macs]
        for c in columns:
            rec = by_key.get((row, c))
            if rec is None:
                cells += ["", "", "", ""]
                continue
            vals = rec["values"]
            mean, std = mean_std(vals)
            ours = format_mean_std(mean, std, len(vals), missing="not run")
            if rec.get("note"):
                ours = f"n/a: {rec['note']}"
            p = rec.get("paper")
            paper = "—" if p is None else format_mean_std(p["mean"], p.get("std"))
            # a stand-in dataset (CamVid for Cityscapes, Hippocampus for BTCV) has no paper number to subtract
            same_data = datasets[c] == c
            diff = "—" if p is None or mean is None or not same_data else f"{mean - p['mean']:+.2f}"
            base = plain_of.get((rec["group"], c))
            vs_plain = "—"
            if base is not None and base is not rec and base["values"] and mean is not None:
                vs_plain = f"{mean - statistics.fmean(base['values']):+.2f}"
            cells += [ours, paper, diff, vs_plain]
        lines.append("| " + " | ".join(cells) + " |")
    metric = next((r["metric"] for r in records if r["metric"]), data["metric"])
    mode = next((r["mode"] for r in records if r["mode"]), data["mode"])
    lines += [
        "",
        f"Metric: {metric} ({'lower' if mode == 'min' else 'higher'} is better), final evaluation of each "
        "run, mean ± sample std over seeds (n = seeds finished). Paper: its reported number for the model and "
        "dataset the row stands for (paper_numbers.yaml, with sources). MACs: multiply-adds of one forward pass "
        "per sample (convolutions and matrix products, meta-device count).",
    ]
    stand_ins = [c for c in columns if datasets[c] != c]
    if stand_ins:
        lines += [
            "",
            "Ours on a stand-in dataset ("
            + ", ".join(f"{datasets[c]} for {PAPER_DATASET_LABELS.get(c, c)}" for c in stand_ins)
            + "): the paper's number is shown for reference only, ours − paper is left out (—); "
            "compare ours − our plain with the paper's Pool Skip − plain.",
        ]
    errors = [(r["row"], r["column"], r["test_error"]) for r in records if r.get("test_error")]
    if errors:
        lines += [
            "",
            "max_l2_l1: the largest per-layer l2/l1 of the network's conv weights (Pool Skip's own convs left "
            "out) in each run's last checkpoint. Test error (%) of the same runs: "
            + "; ".join(f"{row} ({PAPER_DATASET_LABELS.get(c, c)}): {statistics.fmean(v):.2f}" for row, c, v in errors)
            + ".",
        ]
    return "\n".join(lines) + "\n"


def _write_outputs(command: str, scale: str, records: Sequence[Mapping[str, Any]], root: Path) -> list[Path]:
    written = []
    md = render_table(command, records, scale)
    (root / f"{command}.md").write_text(md)
    written.append(root / f"{command}.md")
    with open(root / f"{command}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "row",
                "column",
                "dataset",
                "metric",
                "n",
                "mean",
                "std",
                "values",
                "paper_mean",
                "paper_std",
                "paper_source",
            ]
        )
        for r in records:
            v = r["values"]
            p = r.get("paper") or {}
            w.writerow(
                [
                    r["row"],
                    r["column"],
                    r["dataset"],
                    r["metric"],
                    len(v),
                    *("" if x is None else x for x in mean_std(v)),
                    " ".join(f"{x:.4f}" for x in v),
                    p.get("mean", ""),
                    p.get("std", ""),
                    p.get("source", ""),
                ]
            )
    written.append(root / f"{command}.csv")
    (root / f"{command}.json").write_text(json.dumps(list(records), indent=1, default=str))
    written.append(root / f"{command}.json")
    if command == "fig3":
        written.append(_plot_fig3(records, root))
    if command == "fig4":
        written.append(_plot_fig4(records, root))
    return written


def _plot_fig3(records: Sequence[Mapping[str, Any]], root: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = list(dict.fromkeys(r["column"] for r in records))
    fig, axes = plt.subplots(1, len(columns), figsize=(5 * len(columns), 3.6), squeeze=False)
    for ax, c in zip(axes[0], columns):
        for key, label, style in (("plain", "ResNet", "o-"), ("pool_skip", "ResNet + Pool Skip", "s-")):
            pts = sorted((r["depth"], r["values"]) for r in records if r["column"] == c and r["key"] == key)
            pts = [(d, v) for d, v in pts if v]
            if pts:
                xs = [d for d, _ in pts]
                ys, es = zip(*(mean_std(v) for _, v in pts))
                es = [0 if e is None else e for e in es]  # one seed: no error bar
                ax.errorbar(xs, ys, yerr=es, fmt=style, capsize=3, label=label)
        for e in paper_numbers()["fig3"]["entries"]:
            if e["dataset"] == c:
                ax.plot(int(e["model"][6:]), e["mean"], "k*", ms=9)
        ax.set_xlabel("depth")
        ax.set_ylabel("top-1 error (%)")
        ax.set_title(f"{PAPER_DATASET_LABELS.get(c, c)} (stars: paper's stated best)")
        ax.legend(fontsize=8)
    return save_figure(fig, root / "fig3.png")


def layer_l2_l1(run_dir: Path) -> list[float]:
    """Per-layer l2/l1 of the conv weights of a run's last checkpoint, layers in output order (Fig. 4)."""
    import torch

    from ..diagnostics.measures import l2_l1

    ckpt = Path(run_dir) / "checkpoints" / "last.pt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    sd = state.get("model", state) if isinstance(state, Mapping) else state
    return [l2_l1(w) for k, w in sd.items() if k.endswith(".weight") and w.dim() >= 3 and ".pool_skip." not in k]


def _plot_fig4(records: Sequence[Mapping[str, Any]], root: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((r["group"], r["column"]) for r in records))
    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 3.6), squeeze=False)
    for ax, (group, c) in zip(axes[0], groups):
        for r in records:
            if (r["group"], r["column"]) != (group, c) or not r["run_dirs"]:
                continue
            try:
                ratios = layer_l2_l1(Path(r["run_dirs"][0]))
            except (OSError, KeyError, RuntimeError) as e:
                ax.text(0.5, 0.5, f"no checkpoint: {e}", transform=ax.transAxes, ha="center", fontsize=7)
                continue
            label = {"plain": "plain", "pool_skip_s2": "Pool Skip S2", "pool_skip_s4": "Pool Skip S4"}.get(r["key"])
            ax.plot(range(len(ratios)), ratios, lw=0.8, label=label)
        ax.set_xlabel("layer (output order)")
        ax.set_ylabel("l2 / l1 of the weights")
        ax.set_title(f"{group}, {PAPER_DATASET_LABELS.get(c, c)}")
        ax.legend(fontsize=8)
    return save_figure(fig, root / "fig4.png")


# ------------------------------------------------------------------------------------------ command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``poolskip reproduce``."""
    parser.add_argument("command", choices=COMMANDS, help="the table or figure of the paper to reproduce")
    parser.add_argument(
        "--scale",
        choices=SCALES,
        default="quick",
        help="paper: the paper's protocol; quick: a labelled CPU-sized version; tiny: a smoke test",
    )
    parser.add_argument("--dataset", help="train on this dataset instead of the table's (e.g. imagefolder)")
    parser.add_argument("--data-dir", help="the dataset's directory")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default: 5 at paper scale, 3 quick, 1 tiny)")
    parser.add_argument(
        "--epochs",
        type=int,
        help="override the scale's epochs (quick: the one-cycle keeps its shape; paper: the milestones are squeezed)",
    )
    parser.add_argument("--train-subset", type=int, help="override the scale's training subset (images)")
    parser.add_argument("--out", default="reproduce", help="output folder (runs, table, figure); default ./reproduce")
    parser.add_argument(
        "--controls",
        action="store_true",
        help="add cost-matched controls: {Conv,Skip}, a plain net widened to Pool Skip's MACs, a depthwise Pool Skip",
    )
    parser.add_argument("--dry-run", action="store_true", help="list the runs with their cost; train nothing")
    parser.add_argument(
        "--time-steps",
        type=int,
        default=2,
        help="--dry-run: training steps timed per distinct network (0 = do not time)",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads for every run")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once, in separate processes")


def _human(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def dry_run_report(runs: Sequence[Run], root: Path, time_steps: int) -> str:
    """The plan as text: every run with its status, params, MACs, step time and estimated wall time."""
    cache: dict = {}
    lines = [f"{'run':60s} {'status':9s} {'params':>9s} {'MACs':>9s} {'step':>8s} {'est. wall':>9s}  note"]
    total = 0.0
    unavailable = 0
    for r in runs:
        e = estimate(r, time_steps, cache)
        status = "n/a" if r.note else run_status(root / "runs" / r.name)
        unavailable += bool(r.note)
        if e.wall_seconds and status != "finished":
            total += e.wall_seconds
        lines.append(
            f"{r.name:60s} {status:9s} "
            f"{(f'{e.params / 1e6:.2f}M' if e.params is not None else '—'):>9s} "
            f"{(f'{e.macs / 1e6:.1f}M' if e.macs is not None else '—'):>9s} "
            f"{(f'{e.step_seconds:.3f}s' if e.step_seconds is not None else '—'):>8s} "
            f"{_human(e.wall_seconds):>9s}  {e.note}"
        )
    lines.append(
        f"{len(runs)} runs; {unavailable} not runnable here yet; estimated {_human(total)} of training "
        f"left on this machine ({platform.machine()}, {os.cpu_count()} CPUs), step times measured on "
        "synthetic batches, one process at a time"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """``poolskip reproduce``: plan, (dry-run or) train what is left, write the table/figure."""
    runs = plan(args.command, args.scale, args.dataset, args.data_dir, args.seeds, args.controls, args.epochs)
    if getattr(args, "threads", None):
        for r in runs:
            r.config["threads"] = args.threads
    if getattr(args, "train_subset", None):
        for r in runs:
            r.config["train_subset"] = args.train_subset
    for r in runs:
        r.note = check(r)
    root = Path(args.out) / f"{args.command}-{args.scale}"
    if args.controls:
        narrow = sorted({r.model for r in runs if not has_width(r.model)})
        if narrow:
            print(
                f"note: the widened-plain control needs a width knob, which {', '.join(narrow)} lack(s); only its "
                f"{{Conv,Skip}} and depthwise controls are planned (models with one: {', '.join(models_with_width())})"
            )
    if args.dry_run:
        print(dry_run_report(runs, root, args.time_steps))
        return 0
    root.mkdir(parents=True, exist_ok=True)
    (root / "plan.json").write_text(json.dumps([{**asdict(r), "name": r.name} for r in runs], indent=1, default=str))
    t = time.time()
    done = execute(runs, root, jobs=max(1, getattr(args, "jobs", 1)))
    records = collect(runs, root)
    written = _write_outputs(args.command, args.scale, records, root)
    print(render_table(args.command, records, args.scale))
    trained = sum(s == "trained" for _, s in done)
    print(f"{trained} run(s) trained in {time.time() - t:.0f} s; wrote {', '.join(str(p) for p in written)}")
    return 1 if any(s == "unavailable" for _, s in done) and not trained else 0
