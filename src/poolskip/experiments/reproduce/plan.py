"""The runs of a reproduction: one :class:`Run` per cell, seed and fold, its config resolved from layers.

A run's config is ``resolve(recipe, row, scale, dataset, cli)``: the recipe of its column (or the scale's
stand-in recipe), then its own cell (:data:`~.protocols.ROW_KEYS` only), the scale's declared overlay,
what a stand-in dataset needs, and the command line's overrides. Every layer is kept on the run, so a
test (and a reader of ``plan.json``) can see where each value came from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..controls import CONTROLS, control_spec, has_width
from .protocols import (
    COMMANDS,
    PAPER,
    SCALES,
    TABLE4_ROWS,
    Net,
    dataset_overrides,
    overlay,
    resolve,
    squeeze_milestones,
)

__all__ = ["CONTROL_LABELS", "Run", "check", "plan"]

CONTROL_LABELS = {
    "conv_skip": "+{Conv,Skip} (same cost, no pool)",
    "wide": "plain, widened to Pool Skip's MACs",
    "depthwise": "+ours, depthwise inner conv",
}


@dataclass
class Run:
    """One training run of a reproduction: which cell of the table it fills, its recipe and config layers."""

    command: str
    row: str  # the row label in the table, e.g. "ResNet18 +ours"
    key: str  # plain | pool_skip | pool_skip_only | conv_skip | pool_conv | wide | depthwise | pool_skip_s2 ...
    model: str
    dataset: str  # what the run trains on (the engine's dataset name)
    column: str  # the paper column it is compared with (cifar10, cifar100, voc, ...)
    seed: int
    recipe: str = ""  # the recipe the config starts from (recipes/<name>.yaml)
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)  # row, scale, dataset, cli: in that order
    config: dict[str, Any] = field(default_factory=dict)  # the resolved engine config (config.yaml's mapping)
    group: str = ""  # the model block of the table the row belongs to ("ResNet18"), for "vs plain"
    note: str = ""  # why a run cannot start yet (unregistered task/model, a bad config), filled by check()
    depth: int | None = None  # fig3/fig4: the ResNet depth
    paper_model: str = ""  # the paper's network the row stands for (a tiny run trains a small CNN instead)
    fold: int | None = None  # table3: the cross-validation fold

    @property
    def name(self) -> str:
        """The run's directory, relative to the reproduction's ``runs/``."""
        where = self.dataset if self.dataset == self.column else f"{self.dataset}-as-{self.column}"
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{where}_{self.group}_{self.key}").strip("-")
        if self.fold is None:
            return f"{slug}/seed{self.seed}"
        return f"{slug}/fold{self.fold}" if self.seed == 0 else f"{slug}/seed{self.seed}-fold{self.fold}"

    def resolve(self) -> Run:
        """This run with its config resolved again from its recipe and layers (after a layer changed)."""
        self.config = resolve(self.recipe, *self.layers.values())
        return self


def _paper_column(dataset: str, paper: Sequence[str], data_dir: str | None = None) -> str:
    """The paper's column a stand-in dataset is compared with: CIFAR-100's where the dataset or its folder's
    name holds 100 as a number of its own (an ImageFolder copy of CIFAR-100, ``cifar100-jpg``; not
    ``cifar10-1000``), else the table's last column."""
    if dataset in paper:
        return dataset
    name = dataset + (" " + Path(str(data_dir)).expanduser().resolve().name if data_dir else "")
    return "cifar100" if "cifar100" in paper and re.search(r"(?<!\d)100(?!\d)", name) else paper[-1]


def _columns(command: str, scale: str, dataset: str | None, data_dir: str | None = None) -> list[tuple[str, str]]:
    """(dataset to train on, paper column compared with) of the table at ``scale``."""
    table, ov = PAPER[command], overlay(command, scale)
    columns = list(ov.columns or [(c, c) for c in table.columns])
    if dataset is None:
        return columns
    if table.column_by_name:
        return [(dataset, _paper_column(dataset, table.columns, data_dir))]
    if dataset in table.columns:  # one of the paper's own: its column, its recipe
        return [(dataset, dataset)]
    return [(dataset, column) for _, column in columns[:1]]


def _control_rows(
    net: Net, ours: object, config: dict[str, Any], skip: set[str]
) -> list[tuple[str, str, object, dict]]:
    """The controls' rows (suffix, key, pool_skip, model_kwargs) for one network, costs counted at the input
    the task of ``config`` (the network's resolved config) trains on (nnU-Net planned for that patch; the run
    itself keeps the task's plan)."""
    from .estimate import geometry

    g = geometry(config)
    rows = []
    for name in CONTROLS:
        if name in skip or (name == "wide" and not has_width(net.model)):
            continue  # no width knob: run() says so, nothing to run
        ps, mk = control_spec(name, net.model, ours, net.kwargs, g.classes, g.train_shape)
        rows.append((CONTROL_LABELS[name], name, ps, {**net.kwargs, **{k: v for k, v in mk.items() if k == "width"}}))
    return rows


def plan(
    command: str,
    scale: str = "quick",
    dataset: str | None = None,
    data_dir: str | None = None,
    seeds: Sequence[int] | None = None,
    controls: bool = False,
    epochs: int | None = None,
    train_subset: int | None = None,
    threads: int | None = None,
) -> list[Run]:
    """The runs of ``command`` at ``scale``; ``dataset``, ``seeds`` and the command line's ``data_dir``,
    ``epochs`` (a multistep schedule is squeezed to fit), ``train_subset`` and ``threads`` override the
    scale's, each as a layer of its own. A run on digits (scikit-learn's bundled copy) gets no ``data_dir``:
    it reads none, and its config does not say it read one."""
    if command not in COMMANDS:
        raise ValueError(f"unknown reproduction {command!r}; choose one of {', '.join(COMMANDS)}")
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    table, ov = PAPER[command], overlay(command, scale)
    seeds = list(seeds) if seeds is not None else list(ov.seeds or table.seeds)
    folds = list(ov.folds or table.folds or [None])
    cli: dict[str, Any] = {}
    if data_dir:
        cli["data_dir"] = data_dir
    if train_subset:
        cli["train_subset"] = train_subset
    if threads:
        cli["threads"] = threads
    if epochs is not None:
        cli["epochs"] = epochs
    runs = []
    for ds, column in _columns(command, scale, dataset, data_dir):
        for net in ov.nets or table.nets:
            model = net.model
            recipe = ov.recipe or table.recipe(column, net.paper_model or model)
            ours = table.pool_skip_for.get(f"{column}/{model}", table.pool_skip_for.get(column, True))
            rows = [(s, k, ours if k == "pool_skip" else ps, dict(net.kwargs)) for s, k, ps in table.variants]
            scale_layer = {**ov.config, **ov.per_model.get(model, {})}
            if controls:
                config = resolve(recipe, {"model": model, "dataset": ds}, scale_layer, dataset_overrides(ds), cli)
                rows += _control_rows(net, ours, config, skip={k for _, k, _, _ in rows})
            for suffix, key, pool_skip, kwargs in rows:
                if command == "table4":  # Table 4's labels are the paper's column heads
                    row = {k: s for s, k, _ in TABLE4_ROWS}.get(key) or CONTROL_LABELS[key]
                else:
                    row = f"{net.label} {suffix}".strip()
                recipe_kwargs = resolve(recipe, {"model": model})["model_kwargs"]  # the recipe's own, kept
                cell: dict[str, Any] = {"model": model, "dataset": ds, "pool_skip": pool_skip}
                if kwargs:
                    cell["model_kwargs"] = {**recipe_kwargs, **kwargs}
                for seed in seeds:
                    for fold in folds:
                        layer = {**cell, "seed": seed, **({"segmentation3d.fold": fold} if fold is not None else {})}
                        r = Run(
                            command,
                            row,
                            key,
                            model,
                            ds,
                            column,
                            seed,
                            recipe=recipe,
                            layers={
                                "row": layer,
                                "scale": dict(scale_layer),
                                "dataset": dataset_overrides(ds),
                                "cli": {k: v for k, v in cli.items() if not (k == "data_dir" and ds == "digits")},
                            },
                            group=net.label,
                            depth=net.depth,
                            paper_model=net.paper_model or model,
                            fold=fold,
                        )
                        runs.append(r)
    for r in runs:
        r.resolve()
        if epochs is not None and r.config["optim"]["schedule"] == "multistep":
            r.layers["cli"]["milestones"] = squeeze_milestones(epochs)
            r.resolve()
        elif epochs is not None and {"schedule", "warmup_epochs", "epochs"} <= set(ov.config):
            # a declared one-cycle keeps its shape: the warm-up stays the same fraction of training
            r.layers["cli"]["warmup_epochs"] = ov.config["warmup_epochs"] * epochs / ov.config["epochs"]
            r.resolve()
    return runs


def check(run_: Run) -> str:
    """Why ``run_`` cannot start here yet ('' if it can): an unregistered task or model, a bad config."""
    from ...engine.config import make_config
    from ...models import list_models
    from ...tasks import list_tasks

    task = run_.config.get("task", "classification")
    if task not in list_tasks():
        return f"task {task!r} is not registered yet (known: {', '.join(list_tasks())})"
    if ":" not in run_.model and run_.model not in list_models():
        return f"model {run_.model!r} is not registered yet"
    if ":" in run_.model:
        from ...models._registry import get_factory

        try:
            get_factory(run_.model)
        except ValueError as e:
            return str(e)
    try:
        make_config(run_.config)
    except Exception as e:  # a config the engine rejects: say which and why, do not crash the plan
        return f"config rejected: {e}"
    return ""


def dump(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """The plan as JSON-ready records (``plan.json``): each run with its name, recipe, layers and config."""
    from dataclasses import asdict

    return [{**asdict(r), "name": r.name} for r in runs]
