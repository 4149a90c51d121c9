"""Reports from run directories: one row per (model and its options, dataset, metric, protocol, placement).

Reads only the files runs wrote, through :mod:`.results`, so a report can be rebuilt at any time. The
placement is what ``summary.json`` records (plain, or Pool Skip with its policy, sites, pool sizes,
ablation variant, groups and kernel): a {Conv,Skip} control, a depthwise control or a Table 4 ablation is
its own row, never averaged with Pool Skip. The protocol is the rest of the run's ``config.yaml``
(:func:`~.results.protocol`: epochs, lr, schedule, data subset, ...): runs trained differently are separate rows,
labelled by the keys they differ in. A cell is the mean ± sample std over seeds (and folds) of the metric the
run's task monitors (top-1 error, mIoU, Dice) at the final evaluation; two runs of one row with the same seed
and fold are refused. Each Pool Skip row gets its difference from the plain row of the same model, dataset,
metric and protocol.

The paper's numbers are not set beside ours here: a report cannot tell whether its runs followed the
paper's protocol at the paper's scale. ``poolskip reproduce --scale paper`` does that comparison.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

from .figures import save_figure
from .results import (
    ResultsError,
    code_note,
    commit_of,
    curve,
    dataset_label,
    find_runs,
    model_key,
    model_label,
    placement_key,
    placement_label,
    protocol,
    read_config,
    read_history,
    read_summary,
)
from .tables import Column, Stat, markdown, to_csv

__all__ = ["collect", "find_runs", "plot", "prediction_pictures", "table_rows", "write_report"]

#: Extra metrics of 3D segmentation runs (the paper's Table 3 reports Dice, NSD and mIoU).
_EXTRA = {"nsd": "NSD", "iou": "IoU"}


def _same(a: dict, b: dict) -> bool:
    """Two protocols agree in every key both hold (a key one lacks: written by another poolskip version)."""
    return all(a[k] == b[k] for k in a.keys() & b.keys())


def _merged(members: list[dict]) -> dict:
    """One protocol group's keys: every member's (they agree wherever two hold the same key)."""
    return {k: v for p in members for k, v in p.items()}


def _labels(protocols: list[dict]) -> list[str]:
    """What tells each of one (model, dataset, metric)'s protocols from the others: ``key=value`` of every key
    whose value differs between them (empty when there is one)."""
    if len(protocols) < 2:
        return [""] * len(protocols)
    keys = sorted(
        {k for p in protocols for k in p if len({json.dumps(q.get(k), sort_keys=True) for q in protocols}) > 1}
    )
    return [", ".join(f"{k.split('.')[-1]}={p.get(k, '-')}" for k in keys) for p in protocols]


def collect(run_dirs: list[Path]) -> dict[tuple[str, str, str, str, str], list[dict]]:
    """(model label, dataset, metric, protocol label, placement key) -> [{summary, curve, dir, placement}, ...]."""
    family: dict[tuple[str, str, str], list[list[dict]]] = defaultdict(list)  # their protocol groups, in order found
    shown: dict[tuple[str, str, str], str] = {}  # the model as the first run of a family wrote it
    found = []
    for d in run_dirs:
        s, config = read_summary(d), read_config(d)
        key = (model_key(s.model, s.model_kwargs), dataset_label(s.dataset, config), s.metric)
        shown.setdefault(key, model_label(s.model, s.model_kwargs))
        how = protocol(config)
        known = family[key]  # each protocol group's members: a run joins one only if it agrees with all of them
        i = next((i for i, members in enumerate(known) if all(_same(p, how) for p in members)), None)
        if i is None:
            known.append([])
            i = len(known) - 1
        known[i].append(how)
        cell = (s.seed, (config.get("segmentation3d") or {}).get("fold"))  # a 3D run's fold is part of its cell
        run = {
            "summary": s,
            "curve": curve(read_history(d), s.metric),
            "dir": d,
            "placement": s.placement,
            "cell": cell,
        }
        found.append((key, i, placement_key(s.placement), cell, run))
    labels = {key: _labels([_merged(members) for members in known]) for key, known in family.items()}
    groups: dict[tuple[str, str, str, str, str], list[dict]] = defaultdict(list)
    cells: dict[tuple, Path] = {}
    for key, i, placed, cell, run in found:
        group = (shown[key], *key[1:], labels[key][i], placed)
        other = cells.setdefault((group, cell), run["dir"])
        if other != run["dir"]:
            what = f"seed {cell[0]}" + ("" if cell[1] is None else f", fold {cell[1]}")
            raise ResultsError(
                f"{other} and {run['dir']} are two finished runs of one row ({what}, the same config): a report "
                "would count that seed twice; report one of them, or move the other away"
            )
        groups[group].append(run)
    return groups


def _order(key: tuple[str, str, str, str, str]) -> tuple:
    """Model, dataset, metric, protocol; within them plain first, then the placements by label (the paper's
    module, ``Pool Skip (...)``, before its ablations and controls)."""
    *family, placed = key
    return *family, placed != placement_key({"pool_skip": False}), placement_label(json.loads(placed))


def table_rows(groups) -> list[dict]:
    """One row per group: our values over seeds and, for a Pool Skip row, its mean minus the plain one's."""
    rows = []
    plain = placement_key({"pool_skip": False})
    for key in sorted(groups, key=_order):
        *family, placed = key
        model, dataset, metric, how = family
        runs = sorted(groups[key], key=lambda r: (r["cell"][0], r["cell"][1] or 0))
        first, cells = runs[0]["summary"], [r["cell"] for r in runs]
        row = {
            "model": model, "dataset": dataset, "mode": first.mode, "placement": placement_label(first.placement),
            "metric": f"{metric} ({'lower' if first.mode == 'min' else 'higher'} is better)", "protocol": how,
            "ours": Stat(tuple(r["summary"].final for r in runs)),
            "seeds": " ".join(str(seed) if fold is None else f"{seed}/fold{fold}" for seed, fold in cells),
        }  # fmt: skip
        base = groups.get((*family, plain))
        if placed != plain and base:
            row["vs_plain"] = row["ours"].mean - statistics.fmean(r["summary"].final for r in base)
        for k in _EXTRA:
            values = [r["summary"].final_metrics.get(k) for r in runs]
            if any(v is not None for v in values):
                row[k] = Stat(tuple(v for v in values if v is not None))
        rows.append(row)
    return rows


def _columns(rows: list[dict]) -> list[Column]:
    columns = [
        Column("model", "model", False), Column("dataset", "dataset", False), Column("metric", "metric", False),
        Column("placement", "placement", False), Column("ours", "final (mean ± std)"),
        Column("vs_plain", "− plain", signed=True),
    ]  # fmt: skip
    if any(r["protocol"] for r in rows):  # runs trained differently: the keys that tell them apart
        columns.insert(3, Column("protocol", "protocol", False))
    columns += [Column(k, title) for k, title in _EXTRA.items() if any(k in r for r in rows)]
    return columns + [Column("seeds", "seeds", False)]


def plot(groups, path: Path) -> None:
    """The monitored metric per evaluated epoch (mean over seeds): one panel per (dataset, metric), one line
    per model and placement."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = sorted({(ds, metric) for _, ds, metric, _, _ in groups})
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (dataset, metric) in zip(axes[0], panels):
        for key in sorted(groups, key=_order):
            model, ds, mt, how, _ = key
            runs = groups[key]
            n = min(len(r["curve"]) for r in runs)
            if (ds, mt) != (dataset, metric) or n == 0:
                continue
            epochs = [e for e, _ in runs[0]["curve"][:n]]
            mean = [statistics.fmean(r["curve"][i][1] for r in runs) for i in range(n)]
            label = placement_label(runs[0]["placement"])
            name = f"{model} {label}" + (f" [{how}]" if how else "")
            ax.plot(epochs, mean, marker="o", ls="-" if label == "plain" else "--", label=name)
        ax.set(title=dataset, xlabel="epoch", ylabel=metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, path)


def write_report(groups, out: str | Path) -> str:
    """report.md, report.csv and curves.png of ``groups`` (:func:`collect`) in ``out``; returns the Markdown."""
    if not groups:
        raise ResultsError("no finished runs to report")
    rows = table_rows(groups)
    columns = _columns(rows)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = (
        markdown(rows, columns)
        + "\n\nThe metric each run's task monitors, at the final evaluation; mean ± sample std over seeds (no ± "
        "for one run). − plain: the row's mean minus the plain row's of the same model, dataset, metric and "
        "protocol. A placement is what each run's summary.json records, a protocol the rest of its config.yaml; "
        "runs of different placements or protocols are never averaged.\n\n"
        + code_note([commit_of(r["summary"]) for runs in groups.values() for r in runs])
    )
    (out / "report.md").write_text(text + "\n")
    (out / "report.csv").write_text(to_csv(rows, [Column("mode", "mode", False), *columns]))
    plot(groups, out / "curves.png")
    return text


def prediction_pictures(groups, out: str | Path, count: int = 3) -> list[Path]:
    """For every segmentation (model, dataset) with a plain row and Pool Skip rows, a PNG of ``count`` evaluation
    samples: image, ground truth, then the prediction of each row's first run (its last checkpoint), in the
    dataset's palette (2D) or as slices (3D), for tasks that can picture their predictions
    (:class:`~poolskip.tasks.PicturesPredictions`). Rows whose runs lack a checkpoint are left out."""
    import torch

    from ..engine.checkpoint import load_checkpoint
    from ..engine.trainer import restore
    from ..tasks import PicturesPredictions, get_task

    written = []
    for model, dataset, metric, how in sorted({k[:4] for k in groups}):
        rows = [groups[k] for k in sorted(groups, key=_order) if k[:4] == (model, dataset, metric, how)]
        if not issubclass(get_task(rows[0][0]["summary"].task), PicturesPredictions):
            continue
        firsts = {
            placement_label(runs[0]["placement"]): min(runs, key=lambda r: r["summary"].seed)["dir"] for runs in rows
        }
        dirs = {label: d for label, d in firsts.items() if (d / "checkpoints" / "last.pt").is_file()}
        if "plain" not in dirs or len(dirs) < 2:
            continue
        short = {label: label.split(" (")[0] for label in dirs}  # column titles: without the sites and pool
        if len(set(short.values())) < len(short):
            short = {label: label for label in dirs}
        plain_model, task, _ = restore(dirs.pop("plain"))
        models = {"plain": plain_model}
        models.update({short[label]: load_checkpoint(d, device=task.device)[0] for label, d in dirs.items()})
        slug = re.sub(r"[^A-Za-z0-9]+", "_", f"{model}_{dataset}_{how}").strip("_")
        path = Path(out) / f"predictions_{slug}.png"
        with torch.no_grad():
            examples = task.prediction_examples(models, count)
        if examples.spatial_dims == 2:
            from .seg_figure import save_prediction_figure

            save_prediction_figure(examples.samples, examples.palette, path, classes=examples.classes)
        else:
            from .table3 import save_slices

            vol = examples.samples[0]
            save_slices(
                path, vol["image"], vol["target"], vol["preds"], vol["slices"], title=f"{model}, {dataset}",
                classes=examples.classes,
            )  # fmt: skip
        written.append(path)
    return written
