"""A reproduction's table in the paper's layout: our mean ± std over seeds beside the paper's number,
their difference, our difference to our own plain network, and the parameters and multiply-adds of every
row (:func:`~.estimate.run_cost`, the count the dry run prints). Fig. 3 and Fig. 4 are PNGs.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ...files import atomic_write_text
from ..figures import save_figure
from ..paper import paper_entry, paper_numbers
from ..results import ResultsError, code_note, commit_of, dataset_label, read_summary, run_status
from ..stats import format_mean_std, mean_std
from ..tables import Column, Stat, markdown, ours_minus_paper
from .plan import Run

__all__ = ["PAPER_DATASET_LABELS", "collect", "keep_l2_l1", "layer_l2_l1", "render_table", "write_outputs"]

PAPER_DATASET_LABELS = {
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "voc": "Pascal VOC",
    "cityscapes": "Cityscapes",
    "btcv": "BTCV",
    "amos": "AMOS",
}


def collect(runs: Sequence[Run], root: Path) -> list[dict[str, Any]]:
    """One record per (row, column): our values over seeds, the paper's entry, params and MACs.

    Fig. 4's value is the largest per-layer l2/l1 of the network's conv weights in the run's last checkpoint
    (:func:`layer_l2_l1`, the number the paper's text quotes); its runs' test errors go to ``test_error``.
    Table 3's row whose every seed has its folds' ensemble on the test set (:mod:`.ensembles`) has one value per
    seed, that ensemble's (``"scored": "ensemble"``, its scores in ``ensembles``); else each fold's own
    (``"scored": "folds"``).
    """
    records: dict[tuple[str, str], dict[str, Any]] = {}
    table = runs[0].command if runs else None
    from .ensembles import task_of

    ensembles = _ensembles(runs, root)
    for r in runs:
        if (r.row, r.column) not in records:
            records[(r.row, r.column)] = _record(r)
        rec = records[(r.row, r.column)]
        if (r.row, r.column) in ensembles:
            continue  # scored as its folds' ensembles below
        run_dir = root / "runs" / r.name
        if run_status(run_dir) == "finished":
            summary = read_summary(run_dir)
            metric, mode, final = summary.metric, summary.mode, summary.final
            if table == "fig4":
                rec.setdefault("test_error", []).append(final)
                metric, mode, final = "max_l2_l1", "min", max(layer_l2_l1(run_dir))
            rec["values"].append(final)
            rec["seeds"].append(r.seed)
            if r.fold is not None:
                rec["folds"].append(r.fold)
            rec["metric"], rec["mode"] = metric, mode
            rec["run_dirs"].append(str(run_dir))
            rec["commits"].append(commit_of(summary))
    for key, scored in ensembles.items():
        rec = records[key]
        rec["scored"] = "ensemble"
        for seed, members, record in scored:
            monitor = task_of(members)[1].monitor  # the metric the folds monitor, shown of their ensemble
            rec["values"].append(float(record["scores"][monitor.metric]))
            rec["seeds"].append(seed)
            rec["folds"] += sorted(r.fold for r in members)
            rec["metric"], rec["mode"] = monitor.metric, monitor.mode
            rec["run_dirs"] += [str(root / "runs" / r.name) for r in members]
            rec["commits"] += [commit_of(read_summary(root / "runs" / r.name)) for r in members]
            rec["ensembles"].append(record["scores"])
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


def _ensembles(runs: Sequence[Run], root: Path) -> dict[tuple[str, str], list[tuple[int, list[Run], dict]]]:
    """``(row, column) -> [(seed, its folds' runs, the ensemble's record)]`` for the rows whose every seed with a
    finished fold was scored as its folds' ensemble on the test set (:mod:`.ensembles`); a row with a seed
    scored only fold by fold is left out (its folds' scores stand for all its seeds: never a mix)."""
    from .ensembles import cells, read_ensemble

    by_row: dict[tuple[str, str], list] = {}
    for (_, seed), members in cells(runs).items():
        key = (members[0].row, members[0].column)
        by_row.setdefault(key, []).append((seed, members, read_ensemble(members, root)))
    out = {}
    for key, scored in by_row.items():
        started = [x for x in scored if x[2] is not None or any(run_status(root / "runs" / r.name) == "finished"
                                                                   for r in x[1])]  # fmt: skip
        if started and all(x[2] is not None for x in started):
            out[key] = started
    return out


def _record(r: Run) -> dict[str, Any]:
    """A row's record before its runs' values: what names it, and its network's params and MACs."""
    from .estimate import run_cost

    params = macs = None
    if not r.note:
        try:
            params, macs = run_cost(r)
        except Exception:  # a network that cannot be counted here: the table prints "—"
            pass
    return {
        "row": r.row,
        "group": r.group,
        "key": r.key,
        "model": r.model,
        "dataset": dataset_label(r.dataset, r.config),  # with its folder's name: what a stand-in column holds
        "column": r.column,
        "depth": r.depth,
        "values": [],
        "seeds": [],
        "metric": None,
        "mode": None,
        "run_dirs": [],
        "commits": [],  # each run's poolskip commit (None: not recorded)
        "model_kwargs": r.config.get("model_kwargs"),
        "paper_model": r.paper_model or r.model,
        "pool_skip": r.config.get("pool_skip"),
        "note": r.note,
        "recipe": r.recipe,
        "folds": [],
        "scored": "folds" if r.fold is not None else "runs",  # "ensemble": each seed's folds' ensemble, test set
        "ensembles": [],  # the ensembles' scores, one per seed (every metric, per class)
        "params": params,
        "macs": macs,
    }


def _costs(recs: Sequence[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """A row's params and MACs: one value where its columns' networks agree, else each column's, joined by
    " / " in the columns' order (Table 3's nnU-Net has AMOS' own placement, a CIFAR-100 head is not a
    CIFAR-10 one)."""

    def one(key: str, fmt: str) -> str | None:
        values = [fmt.format(r[key] / 1e6) if r.get(key) is not None else "—" for r in recs]
        if len(set(values)) == 1:
            return None if values[0] == "—" else values[0]
        return " / ".join(values)

    return one("params", "{:.2f} M"), one("macs", "{:.1f} M")


def render_table(command: str, records: Sequence[Mapping[str, Any]], scale: str) -> str:
    """The table in the paper's layout (Markdown, through the one renderer :mod:`..tables`).

    At ``scale == "paper"`` each dataset column shows ours, the paper's number, ours − paper and ours − our
    plain. At a shortened scale (or the paper's with ``--epochs`` / ``--train-subset``: ``scale`` then names
    them), or where the paper scored its numbers otherwise than ours (``scored_otherwise`` in
    ``paper_numbers.yaml``: Table 3's fold ensembles on the test set, unless every row with runs was scored so,
    ``"scored": "ensemble"`` in :func:`collect`'s records), our number is never set beside the paper's: the
    columns are ours, ours − our plain, and the paper's own difference of that row from its plain network, the
    direction to compare with. Ours − our plain is left out between rows scored differently (an ensemble on the
    test set against folds on their validation parts)."""
    data = paper_numbers()[command]
    columns = list(dict.fromkeys(r["column"] for r in records))
    datasets = {r["column"]: r["dataset"] for r in records}
    scored = {r.get("scored") for r in records if r["values"]}
    # ours is the paper's measurement where every cell was scored as the paper scored it (Table 3: ensembles)
    otherwise = None if scored == {"ensemble"} else data.get("scored_otherwise")
    at_paper_scale = scale == "paper" and not otherwise
    cols = [Column("row", "row", False), Column("params", "params"), Column("macs", "MACs/sample")]
    for c in columns:
        label = PAPER_DATASET_LABELS.get(c, c)
        ours = f"ours on {datasets[c]}" if datasets[c] != c else "ours"
        cols.append(Column(f"{c}:ours", f"{label}: {ours}"))
        if at_paper_scale:
            cols += [Column(f"{c}:paper", "paper"), Column(f"{c}:diff", "ours − paper", signed=True)]
        cols.append(Column(f"{c}:vs_plain", "ours − our plain", signed=True))
        if not at_paper_scale:
            cols.append(Column(f"{c}:paper_vs_plain", "paper: row − its plain", signed=True))
    by_key = {(r["row"], r["column"]): r for r in records}
    plain_of = {(r["group"], r["column"]): r for r in records if r["key"] == "plain"}
    rows = []
    for row in dict.fromkeys(r["row"] for r in records):
        params, macs = _costs([by_key[(row, c)] for c in columns if (row, c) in by_key])
        cells: dict[str, Any] = {"row": row, "params": params, "macs": macs}
        for c in columns:
            rec = by_key.get((row, c))
            if rec is None:
                continue
            ours = Stat(tuple(rec["values"]))
            cells[f"{c}:ours"] = f"n/a: {rec['note']}" if rec.get("note") else (ours if len(ours) else "not run")
            p = rec.get("paper")
            base = plain_of.get((rec["group"], c))
            same = base is not None and base.get("scored") == rec.get("scored")  # never an ensemble - one fold
            if same and base is not rec and base["values"] and ours.mean is not None:
                cells[f"{c}:vs_plain"] = ours.mean - statistics.fmean(base["values"])
            if at_paper_scale:
                cells[f"{c}:paper"] = None if p is None else format_mean_std(p["mean"], p.get("std"))
                cells[f"{c}:diff"] = ours_minus_paper(
                    ours.mean, None if p is None else p["mean"], dataset=datasets[c], paper_dataset=c, scale=scale
                )
            else:
                bp = None if base is None or base is rec else base.get("paper")
                if p is not None and bp is not None:
                    cells[f"{c}:paper_vs_plain"] = float(p["mean"] - bp["mean"])
        rows.append(cells)
    title = data["title"]  # the paper's caption (its seeds); ours below, at a shortened scale, has each cell's n
    lines = [
        f"## {title}" if at_paper_scale else f"## {title} (the paper's caption; ours: {scale} scale, n per cell)",
        "",
    ]
    if scale == "paper" and otherwise:
        lines += [
            f"Scale: **paper**, scored otherwise: {otherwise}. Our numbers are not the paper's measurement and "
            "are not shown beside them; compare directions (ours − our plain vs the paper's row − its plain).",
            "",
        ]
    elif not at_paper_scale:
        lines += [
            f"Scale: **{scale}** — a shortened run, NOT the paper's protocol: our numbers are not comparable with "
            "the paper's and are not shown beside them; compare directions (ours − our plain vs the paper's row − "
            "its plain).",
            "",
        ]
    else:
        lines += ["Scale: **paper**.", ""]
    lines.append(markdown(rows, cols, missing="—"))
    metric = next((r["metric"] for r in records if r["metric"]), data["metric"])
    mode = next((r["mode"] for r in records if r["mode"]), data["mode"])
    lines += [
        "",
        f"Metric: {metric} ({'lower' if mode == 'min' else 'higher'} is better), "
        + (
            "each seed's folds' ensemble (softmax averaged) on the test set, mean ± sample std over seeds (n). "
            if scored == {"ensemble"}
            else "final evaluation of each run, mean ± sample std over a cell's runs (n = runs finished: seeds, or "
            "Table 3's folds, each scored on its own validation part). "
        )
        + "Paper: its "
        "reported number for the model and dataset the row stands for (paper_numbers.yaml, with sources). MACs: "
        "multiply-adds of one forward pass per sample (convolutions and matrix products, meta-device count)"
        + (
            "; a / b: each column's network, in the columns' order."
            if any(" / " in str(r.get("params")) + str(r.get("macs")) for r in rows)
            else "."
        ),
    ]
    if len(scored) > 1:
        ens = [f"{r['row']} ({PAPER_DATASET_LABELS.get(r['column'], r['column'])})" for r in records
               if r.get("scored") == "ensemble"]  # fmt: skip
        lines += [
            "",
            f"Scored as each seed's folds' ensemble on the test set: {', '.join(ens)}; the other rows each fold on "
            "its own validation part (ours − our plain only between rows scored alike).",
        ]
    stand_ins = [c for c in columns if datasets[c] != c]
    if stand_ins:
        lines += [
            "",
            "Ours on a stand-in dataset ("
            + ", ".join(f"{datasets[c]} for {PAPER_DATASET_LABELS.get(c, c)}" for c in stand_ins)
            + "): ours − paper is left out (—); compare ours − our plain with the paper's row − its plain.",
        ]
    code = code_note([c for r in records for c in r.get("commits", [])])
    if code:
        lines += ["", code]
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


def write_outputs(command: str, scale: str, records: Sequence[Mapping[str, Any]], root: Path) -> list[Path]:
    """The table of ``records`` written under ``root`` as ``COMMAND.md`` (first in the list returned), ``.csv`` and
    ``.json``, each atomically (a stop mid-write leaves the previous file), then Fig. 3's or 4's plot; for Fig. 4
    each run's :data:`L2_L1_FILE` too (:func:`keep_l2_l1`)."""
    md = root / f"{command}.md"
    atomic_write_text(md, render_table(command, records, scale))
    rows = io.StringIO(newline="")
    w = csv.writer(rows)
    w.writerow(
        ["row", "column", "dataset", "metric", "n", "mean", "std", "values", "paper_mean", "paper_std", "paper_source"]
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
    atomic_write_text(root / f"{command}.csv", rows.getvalue())
    atomic_write_text(root / f"{command}.json", json.dumps(list(records), indent=1, default=str))
    written = [md, root / f"{command}.csv", root / f"{command}.json"]
    if command == "fig4":  # beside each run: its l2/l1, which results/ keeps instead of the checkpoint
        for r in records:
            for d in r["run_dirs"]:
                keep_l2_l1(Path(d))
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


#: Beside a finished run's files: its last checkpoint's per-layer l2/l1, so Fig. 4 is made again without the
#: checkpoint (results/ keeps this file with config.yaml, metrics.jsonl and summary.json, never checkpoints).
L2_L1_FILE = "weights_l2_l1.json"


def _checkpoint_l2_l1(ckpt: Path) -> tuple[Any, list[float]]:
    """``(epoch, per-layer l2/l1)`` of the conv weights in the checkpoint ``ckpt`` (Pool Skip's own convs left out),
    loaded once per process while the file stays as it is (the table, its l2/l1 file and its plot ask for it)."""
    st = ckpt.stat()
    epoch, ratios = _l2_l1_of(str(ckpt.resolve()), st.st_mtime_ns, st.st_size)
    return epoch, list(ratios)


@functools.lru_cache(maxsize=64)
def _l2_l1_of(ckpt: str, mtime_ns: int, size: int) -> tuple[Any, tuple[float, ...]]:
    import torch

    from ...diagnostics.measures import l2_l1

    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    sd = state.get("model", state) if isinstance(state, Mapping) else state
    ratios = tuple(l2_l1(w) for k, w in sd.items() if k.endswith(".weight") and w.dim() >= 3 and ".pool_skip." not in k)
    return (state.get("epoch") if isinstance(state, Mapping) else None), ratios


def layer_l2_l1(run_dir: Path) -> list[float]:
    """Per-layer l2/l1 of the conv weights of a run's last checkpoint, layers in output order (Fig. 4): from the
    checkpoint, else from :data:`L2_L1_FILE` (:func:`keep_l2_l1`), checked to be of the run's last epoch. Reads
    only."""
    kept, ckpt = Path(run_dir) / L2_L1_FILE, Path(run_dir) / "checkpoints" / "last.pt"
    if ckpt.is_file():
        return _checkpoint_l2_l1(ckpt)[1]
    if kept.is_file():
        try:
            data = json.loads(kept.read_text())
            ratios, epoch = [float(v) for v in data["l2_l1"]], data.get("epoch")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ResultsError(f"{kept} is unreadable or not a list of l2/l1 values ({e}); rerun that run") from None
        ran = read_summary(run_dir).raw.get("epochs")
        if epoch != ran:
            raise ResultsError(f"{kept} holds the weights of epoch {epoch}, the run's summary says it ran {ran} epochs")
        return ratios
    raise ResultsError(
        f"{ckpt} is missing, and so is {kept.name}: Fig. 4's l2/l1 is read from each finished run's last "
        "checkpoint (a copy of the runs without either cannot make the table again)"
    )


def keep_l2_l1(run_dir: Path) -> bool:
    """Write :data:`L2_L1_FILE` beside a run's files from its last checkpoint (atomically), so Fig. 4 is made
    again without the checkpoint; False where the run has no checkpoint or its folder cannot be written (a copy of
    someone's runs: the checkpoint, or the file already there, is the record)."""
    ckpt = Path(run_dir) / "checkpoints" / "last.pt"
    if not ckpt.is_file():
        return False
    epoch, ratios = _checkpoint_l2_l1(ckpt)
    try:
        atomic_write_text(Path(run_dir) / L2_L1_FILE, json.dumps({"epoch": epoch, "l2_l1": ratios}) + "\n")
    except OSError:
        return False
    return True


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
            except (OSError, KeyError, RuntimeError, ResultsError) as e:
                ax.text(0.5, 0.5, f"no checkpoint: {e}", transform=ax.transAxes, ha="center", fontsize=7)
                continue
            label = {"plain": "plain", "pool_skip_s2": "Pool Skip S2", "pool_skip_s4": "Pool Skip S4"}.get(r["key"])
            ax.plot(range(len(ratios)), ratios, lw=0.8, label=label)
        ax.set_xlabel("layer (output order)")
        ax.set_ylabel("l2 / l1 of the weights")
        ax.set_title(f"{group}, {PAPER_DATASET_LABELS.get(c, c)}")
        ax.legend(fontsize=8)
    return save_figure(fig, root / "fig4.png")
