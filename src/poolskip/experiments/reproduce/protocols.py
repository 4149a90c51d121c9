"""Each table and figure of the paper as protocols: a row is a recipe plus a declared scale overlay.

- ``paper``: the recipe exactly (``recipes/*.yaml``, resolved by :func:`resolve` through the same
  ``load_recipe`` + :func:`~poolskip.engine.config.make_config` path as ``poolskip train --recipe``); a run
  adds only what names its cell: the model, its Pool Skip, the dataset of the column, the seed (the fold).
- ``quick``/``tiny``: the paper's rows with the overrides declared in :data:`QUICK` and :data:`TINY`, one
  mapping per table (networks, seeds, a stand-in dataset or recipe, engine config keys). Nothing else.

The paper's own statement of each protocol is ``paper_protocols.yaml`` beside ``paper_numbers.yaml``; the
tests check every recipe against it and every paper-scale run against its recipe.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..recipes import load_recipe

__all__ = [
    "COMMANDS",
    "PAPER",
    "PAPER_PROTOCOLS",
    "QUICK",
    "ROW_KEYS",
    "SCALES",
    "TINY",
    "QUICK_CIFAR",
    "QUICK_MOBILENET",
    "QUICK_DEEP",
    "QUICK_CAMVID",
    "QUICK_HIPPOCAMPUS",
    "QUICK_HIPPOCAMPUS_VNET",
    "Net",
    "Overlay",
    "Table",
    "dataset_overrides",
    "one_cycle",
    "overlay",
    "paper_protocols",
    "resolve",
    "squeeze_milestones",
]

COMMANDS = ("table1", "table2", "table3", "table4", "table5", "fig3", "fig4")
SCALES = ("paper", "quick", "tiny")

#: The paper's stated protocol per table and column (package data beside ``paper_numbers.yaml``).
PAPER_PROTOCOLS = Path(__file__).resolve().parents[1] / "paper_protocols.yaml"

#: The config keys a run's own layer may set at paper scale: what names its cell, never a protocol value.
ROW_KEYS = frozenset({"model", "model_kwargs", "pool_skip", "dataset", "seed", "segmentation3d.fold"})


@dataclass(frozen=True)
class Net:
    """A network of a table: registry name, row label, factory options, the paper's network it stands for."""

    model: str
    label: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    paper_model: str | None = None  # a tiny run's small CNN stands for the paper's network
    depth: int | None = None  # fig3/fig4


@dataclass(frozen=True)
class Table:
    """A table of the paper at its own scale: networks, rows (variants), columns and their recipes."""

    nets: tuple[Net, ...]
    variants: tuple[tuple[str, str, object], ...]  # (row suffix, key, pool_skip)
    recipes: Mapping[str, str]  # paper column -> recipe; "column/model" when the recipe depends on the model
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    folds: tuple[int, ...] | None = None  # table3: 5-fold cross-validation
    pool_skip_for: Mapping[str, object] = field(default_factory=dict)  # "column" or "column/model" -> "+ours"
    #: a ``--dataset`` is compared with the column of its name or else the closest one (True: any image
    #: classification set fills any column), or, unless it is one of the table's columns, with the scale's
    #: first column (False: it stands in for them)
    column_by_name: bool = True

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k.split("/")[0] for k in self.recipes))

    def recipe(self, column: str, model: str) -> str:
        return self.recipes.get(f"{column}/{model}") or self.recipes[column]


@dataclass(frozen=True)
class Overlay:
    """A scale's declared changes to a table: each field ``None``/empty keeps the paper's."""

    seeds: tuple[int, ...] | None = None
    folds: tuple[int, ...] | None = None
    nets: tuple[Net, ...] | None = None
    columns: tuple[tuple[str, str], ...] | None = None  # (dataset trained on, paper column compared with)
    recipe: str | None = None  # a stand-in recipe for every column (CamVid, Hippocampus)
    config: Mapping[str, Any] = field(default_factory=dict)  # engine config keys over the recipe
    per_model: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # model -> more config keys


PLAIN_AND_OURS = (("", "plain", None), ("+ours", "pool_skip", True))

# Table 4's rows: the paper's column head, its entry name, and the pool_skip config value.
TABLE4_ROWS = (
    ("VGG16", "plain", None),
    ("+{Pool,Skip}", "pool_skip_only", {"variant": "pool_skip"}),
    ("+{Conv,Skip}", "conv_skip", {"variant": "conv_skip"}),
    ("+{Pool,Conv}", "pool_conv", {"variant": "pool_conv"}),
    ("+{Ours}", "pool_skip", True),
)

_CIFAR = {"cifar100": "devries_taylor", "cifar10": "devries_taylor"}  # the paper: "followed DeVries and Taylor"

#: The paper's tables at paper scale.
PAPER: dict[str, Table] = {
    "table1": Table(
        tuple(
            Net(m, label)
            for m, label in (
                ("mobilenet", "MobileNet"),
                ("googlenet", "GoogLeNet"),
                ("vgg16", "VGG16"),
                ("resnet18", "ResNet18"),
                ("resnet34", "ResNet34"),
            )
        ),
        PLAIN_AND_OURS,
        _CIFAR,
    ),
    "table2": Table(
        (Net("deeplabv3plus_mobilenet", "DLP_MobileNet"), Net("deeplabv3plus_resnet101", "DLP_ResNet101")),
        PLAIN_AND_OURS,
        {"cityscapes": "deeplab_cityscapes", "voc": "deeplab_voc"},
        column_by_name=False,
    ),
    "table3": Table(
        (Net("vnet", "V-Net"), Net("nnunet", "nnUNet")),
        PLAIN_AND_OURS,
        {f"{d}/{m}": f"{m}_{d}" for d in ("btcv", "amos") for m in ("vnet", "nnunet")},
        seeds=(0,),
        folds=(0, 1, 2, 3, 4),
        pool_skip_for={"amos/nnunet": "nnunet_amos"},  # the paper: every encoder stage but the last on AMOS
        column_by_name=False,
    ),
    "table4": Table(
        (Net("vgg16", "VGG16"),),
        tuple(("" if k == "plain" else s, k, ps) for s, k, ps in TABLE4_ROWS),
        {"cifar100": "devries_taylor"},
    ),
    "table5": Table(
        (Net("vit_7_4_32", "ViT"), Net("cct_7_3x1_32", "CCT"), Net("cvt_7_4_32", "CVT")),
        PLAIN_AND_OURS,
        {"cifar100": "cct_cifar100", "cifar10": "cct_cifar10"},
    ),
    "fig3": Table(
        tuple(Net(f"resnet{d}", f"ResNet{d}", depth=d) for d in (50, 101, 152, 200, 350, 420)),
        PLAIN_AND_OURS,
        _CIFAR,
        pool_skip_for={"cifar10": {"pool_size": 2}, "cifar100": True},  # Fig. 3: pool 2 on C10, 4 on C100
    ),
    "fig4": Table(
        tuple(Net(f"resnet{d}", f"ResNet{d}", depth=d) for d in (350, 420)),
        (
            ("", "plain", None),
            ("Pool Skip S2", "pool_skip_s2", {"pool_size": 2}),
            ("Pool Skip S4", "pool_skip_s4", {"pool_size": 4}),
        ),
        _CIFAR,
        seeds=(0,),
    ),
}


def squeeze_milestones(epochs: int) -> list[int]:
    """DeVries & Taylor's step schedule squeezed into ``epochs`` (milestones at 30/60/80 % of training)."""
    return [max(1, round(epochs * f)) for f in (0.3, 0.6, 0.8)]


def one_cycle(epochs: int, warmup_fraction: float = 0.2) -> dict[str, Any]:
    """A one-cycle shape (linear warm-up over the first ``warmup_fraction`` of training, then cosine to 0):
    unlike squeezed milestones it keeps its shape when a run is shortened (``--epochs`` scales the warm-up)."""
    return {"epochs": epochs, "schedule": "cosine", "warmup_epochs": warmup_fraction * epochs, "min_lr": 0.0}


#: The quick CIFAR regime of Tables 1 and 4, calibrated on real CIFAR-10 (results/calib-quick-cifar10/): width-8
#: networks, 4 epochs of all 50,000 training images, one-cycle at peak lr 0.02, channels_last. Plain VGG16
#: reached 33.17 % (33.07 ± 0.09 over 3 seeds in the Table 4 re-run) and ResNet18 31.21 % test error there.
QUICK_CIFAR = {**one_cycle(4), "lr": 0.02, "channels_last": True, "train_subset": 50000, "eval_every": 4}

#: MobileNet at width 8 stays at 50.21 % in that regime (37.44 % at lr 0.1): its rows (plain, Pool Skip and its
#: controls alike) train 6 epochs at peak lr 0.1, where the plain network reached 29.83 % (one seed).
QUICK_MOBILENET = {**one_cycle(6), "lr": 0.1, "eval_every": 6}


#: The quick regime of the deep ResNets of Figs. 3 and 4 (width 4): all 50,000 training images, 6 epochs
#: one-cycle at peak lr 0.1, channels_last (MobileNet's regime), calibrated on real CIFAR-10
#: (results/calib-quick-cifar10/): plain ResNet50 / 101 / 152 / 350 width 4 reached 30.37 / 30.36 / 31.20 /
#: 32.18 % test error there (ResNet152: 38.48 % and ResNet350: 42.65 % in 4 epochs); in 4 epochs at lr 0.1 plain
#: ResNet50 reached 34.14 % (37.52 at lr 0.05, 43.15 at 0.02, 70.70 on the 5,000 images this regime used
#: before). Pool Skip multiplies a width-4 ResNet's MACs by about 10: ``--dry-run`` estimates each run's hours.
QUICK_DEEP = {**QUICK_CIFAR, **one_cycle(6), "lr": 0.1, "eval_every": 6}


#: Table 2's quick regime on real CamVid (SegNet's 11 classes), from random initialisation: the ``deeplab_camvid``
#: recipe (SGD lr 0.02, batch 8, poly) cut to 12 epochs x 45 steps = 540 steps at crop 120x160, evaluated after
#: epochs 6 and 12 on the 233 test images at full resolution. Calibrated by the runs of
#: results/seg2d-camvid-cpu-12ep/ (the same resolved config): plain mIoU 17.76 +- 3.25 % over 2 seeds (sky,
#: building and road segmented, the six small classes below 2 % IoU), about 17 min per plain run and 27 min per
#: Pool Skip run on one CPU thread. Far from a converged network, and plain's seed spread (std 3.25) is 6-20x the
#: paper's Table 2 effects (0.16-0.53 mIoU): it can resolve only larger differences.
QUICK_CAMVID = {"epochs": 12, "crop_size": [120, 160], "eval_every": 6}

#: Table 3's quick regime on the Decathlon's Hippocampus (T2 MRI): the ``hippocampus`` recipe (nnU-Net's SGD,
#: poly, grad clip 12) at 20 epochs x 25 steps of batch 2 = 500 steps, every validation volume of the fold
#: scored by sliding window every 5 epochs. Calibrated by the runs of results/med3d-hippocampus-cpu-500steps/
#: (the same resolved config, fold 0): plain nnU-Net Dice 82.68 % (seed 0; 2 seeds there), plain V-Net 57.80 %
#: (one seed; not converged, but past the predict-background phase in which 100 steps left nnU-Net, plain and
#: Pool Skip alike, in results/med3d-hippocampus-cpu/), 43-62 min per run on one CPU thread.
QUICK_HIPPOCAMPUS = {"epochs": 20, "iterations": 25, "eval_every": 5}

#: V-Net's rows of :data:`QUICK_HIPPOCAMPUS`: a 32x48x32 patch (a multiple of 16 that V-Net's four
#: downsamplings need; the planned 40x56x40 rounded up would cost 2.1x) and evaluation every 10 epochs (about
#: 8 windows per volume where nnU-Net needs one).
QUICK_HIPPOCAMPUS_VNET = {"patch_size": [32, 48, 32], "eval_every": 10}


#: Compact Transformers' smallest CIFAR size, "2" (2 layers of dim 128, 2 heads, MLP ratio 1; 0.21M parameters
#: against size 7's 3.7M; the paper's Table 5 uses size 7): Table 5's quick networks, with their own tokenizers.
SIZE_2 = {"dim": 128, "num_layers": 2, "num_heads": 2, "mlp_ratio": 1}

#: Table 5's quick regime, calibrated on real CIFAR-10 (results/calib-quick-cifar10/): the size-2 networks, the
#: ``cct_cifar10`` recipe (AdamW, weight decay 0.06, label smoothing 0.1, crop + flip) for 20 epochs of all
#: 50,000 images, one-cycle at peak lr 0.001, evaluated every 4 epochs. Plain CVT reached 31.27 % test error
#: there (ViT 35.24 %: its rows train longer, :data:`QUICK_VIT`; CCT's shorter, :data:`QUICK_CCT`), 56 min on
#: one CPU thread beside two other runs.
QUICK_TRANSFORMER = {**one_cycle(20), "lr": 0.001, "train_subset": 50000, "eval_every": 4}

#: ViT's rows of :data:`QUICK_TRANSFORMER`: 30 epochs, where plain ViT reached 33.27 % (35.24 % in 20; 44 min).
QUICK_VIT = one_cycle(30)

#: CCT's rows of :data:`QUICK_TRANSFORMER`: 10 epochs, where plain CCT reached 32.14 % (32.80 % after 8). Its
#: tokenizer leaves 256 tokens (ViT's and CVT's: 64), so a step costs 8.3-11.5x theirs: the 10 epochs took 89 min on
#: two CPU threads of an idle machine (about 100 images a second), where 20 would have taken some 3 hours.
QUICK_CCT = one_cycle(10)


def _resnets(depths: Sequence[int], width: int) -> tuple[Net, ...]:
    return tuple(Net(f"resnet{d}", f"ResNet{d} (width {width})", {"width": width}, depth=d) for d in depths)


def _tiny_cnn(label: str, model: str) -> Net:
    return Net("small_cnn", f"{label} (tiny: small CNN)", {"width": 8}, paper_model=model)


#: The quick scale of every table: a clearly labelled shortened version sized for a few hours to about a day per
#: table (Table 5 about 27 hours, one run at a time, most of it CCT's rows) on a 2-core CPU (fewer epochs, 3 seeds,
#: narrower networks, one column, stand-ins for the datasets that need a licence or a GPU; ``--dry-run`` estimates
#: each run), in a regime where the plain network trains (each calibration named above). Never the paper's
#: protocol. One mapping per table, to be replaced as a whole when the quick scale is recalibrated.
QUICK: dict[str, Overlay] = {
    "table1": Overlay(
        seeds=(0, 1, 2),
        nets=(
            Net("resnet18", "ResNet18 (width 8)", {"width": 8}),
            Net("mobilenet", "MobileNet (width 8)", {"width": 8}),
        ),
        columns=(("cifar10", "cifar10"),),
        config=QUICK_CIFAR,
        per_model={"mobilenet": QUICK_MOBILENET},
    ),
    "table4": Overlay(  # one plain run ~50 min at one thread on a busy 2-core CPU (results/calib-quick-cifar10)
        seeds=(0, 1, 2),
        nets=(Net("vgg16", "VGG16 (width 8)", {"width": 8}),),
        config=QUICK_CIFAR,
    ),
    "table5": Overlay(
        seeds=(0, 1, 2),
        nets=tuple(Net(n.model, f"{n.label} (size 2)", SIZE_2) for n in PAPER["table5"].nets),
        columns=(("cifar10", "cifar10"),),
        config=QUICK_TRANSFORMER,
        per_model={"vit_7_4_32": QUICK_VIT, "cct_7_3x1_32": QUICK_CCT},
    ),
    "fig3": Overlay(
        seeds=(0, 1, 2),
        nets=_resnets((50, 101, 152), 4),
        columns=(("cifar10", "cifar10"),),
        config=QUICK_DEEP,
    ),
    "fig4": Overlay(
        nets=_resnets((350,), 4),
        columns=(("cifar10", "cifar10"),),
        config=QUICK_DEEP,
    ),
    "table2": Overlay(  # SegNet's CamVid stands in for both columns; compared with Cityscapes (street scenes)
        seeds=(0, 1, 2),
        nets=(Net("deeplabv3plus_mobilenet", "DLP_MobileNet"),),
        columns=(("camvid", "cityscapes"),),
        recipe="deeplab_camvid",
        config=QUICK_CAMVID,
    ),
    "table3": Overlay(  # the Decathlon's Hippocampus stands in for both columns; compared with BTCV
        folds=(0, 1, 2),
        columns=(("decathlon", "btcv"),),
        recipe="hippocampus",
        config=QUICK_HIPPOCAMPUS,
        per_model={"vnet": QUICK_HIPPOCAMPUS_VNET},
    ),
}

#: The tiny scale: a smoke test for CI (scikit-learn's digits and a small CNN, 1 epoch, 1 seed).
TINY: dict[str, Overlay] = {
    "table1": Overlay(
        seeds=(0,),
        nets=(_tiny_cnn("ResNet18", "resnet18"),),
        columns=(("digits", "cifar10"),),
        config={"epochs": 1, "milestones": squeeze_milestones(1), "train_subset": 256},
    ),
    "table4": Overlay(
        seeds=(0,),
        nets=(_tiny_cnn("VGG16", "vgg16"),),
        columns=(("digits", "cifar100"),),
        config={"epochs": 1, "milestones": squeeze_milestones(1), "train_subset": 256},
    ),
    "table5": Overlay(
        seeds=(0,),
        nets=tuple(_tiny_cnn(n.label, n.model) for n in PAPER["table5"].nets),
        columns=(("digits", "cifar10"),),
        config={"epochs": 1, "train_subset": 256, "warmup_epochs": 0},
    ),
    "fig3": Overlay(
        seeds=(0,),
        nets=_resnets((50,), 4),
        columns=(("cifar10", "cifar10"),),
        config={"epochs": 1, "milestones": squeeze_milestones(1), "train_subset": 64},
    ),
    "fig4": Overlay(
        nets=_resnets((50,), 4),
        columns=(("cifar10", "cifar10"),),
        config={"epochs": 1, "milestones": squeeze_milestones(1), "train_subset": 64},
    ),
    "table2": Overlay(
        seeds=(0,),
        nets=(Net("deeplabv3plus_mobilenet", "DLP_MobileNet"),),
        columns=(("camvid", "cityscapes"),),
        recipe="deeplab_camvid",
        config={"epochs": 1, "lr": 0.01, "crop_size": [32, 32], "batch_size": 2},
    ),
    "table3": Overlay(
        folds=(0,),
        columns=(("decathlon", "btcv"),),
        recipe="hippocampus",
        config={"epochs": 1, "iterations": 2, "eval_subset": 1},
        per_model={"vnet": {"patch_multiple": 16}},
    ),
}


def overlay(command: str, scale: str) -> Overlay:
    """The declared overlay of ``command`` at ``scale`` (the paper's: none)."""
    return {"paper": {}, "quick": QUICK, "tiny": TINY}[scale].get(command, Overlay())


def dataset_overrides(dataset: str) -> dict[str, Any]:
    """Config keys a stand-in dataset needs whatever the scale: 8x8 grey digits get the ``digits`` recipe's
    augmentation and normalisation (no flips, one-pixel shifts, measured mean/std)."""
    if dataset == "digits":
        digits = load_recipe("digits")
        return {k: digits[k] for k in ("crop_padding", "flip", "mean", "std")}
    return {}


def resolve(recipe: str, *layers: Mapping[str, Any]) -> dict[str, Any]:
    """The engine config of ``recipe`` under ``layers`` (later wins), as ``poolskip train --recipe`` resolves
    it: the nested mapping a run's ``config.yaml`` holds."""
    from ...engine.config import make_config

    return make_config(load_recipe(recipe), *(dict(layer) for layer in layers)).to_dict()


@functools.cache
def _protocols_text() -> str:
    return json.dumps(yaml.safe_load(PAPER_PROTOCOLS.read_text()))


def paper_protocols() -> dict[str, Any]:
    """``{table: {paper, upstream, seeds, [folds], columns: {column: {recipe, protocol, evaluation,
    [iterations]}}}}`` from ``paper_protocols.yaml``; a fresh copy each call."""
    return json.loads(_protocols_text())
