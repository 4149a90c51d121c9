"""Reports from run directories: the paper's table layout (plain vs Pool Skip over seeds) and curves.

Reads only the files runs wrote (``summary.json``, ``metrics.jsonl``), so reports can be rebuilt at any
time. Runs are grouped by (model, dataset, monitored metric) and variant; a cell is the mean ± sample
std over seeds of the metric the run's task monitors (top-1 error for classification, mIoU or Dice for
segmentation) at the final evaluation (the paper's protocol), and each row gets the Pool Skip minus
plain difference. Summaries written before tasks had monitors (``final_error``) read as top-1 error.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

from ..errors import PoolskipError
from .figures import save_figure
from .stats import format_mean_std, mean_std


class ReportError(PoolskipError):
    """No runs to report, or a run's files are unreadable; the message names the file."""


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories (holding summary.json) at or below each path, sorted."""
    found = set()
    for p in map(Path, paths):
        if (p / "summary.json").is_file():
            found.add(p)
        elif p.is_dir():
            found.update(s.parent for s in p.rglob("summary.json"))
        else:
            raise ReportError(f"{p} is not a run directory or a directory of runs")
    if not found:
        raise ReportError(f"no summary.json under {', '.join(map(str, paths))}: is a run still going?")
    return sorted(found)


def labels(run_dir: Path, summary: dict) -> tuple[str, str]:
    """(model, dataset) labels: the model with its factory arguments from the run's config (e.g.
    ``resnet18 (width=16)``), an ImageFolder dataset with its directory name (``imagefolder:cifar10-jpg``)."""
    import yaml

    config = run_dir / "config.yaml"
    cfg = (yaml.safe_load(config.read_text()) or {}) if config.is_file() else {}
    kwargs = cfg.get("model_kwargs") or {}
    model = summary["model"] + (f" ({', '.join(f'{k}={v}' for k, v in sorted(kwargs.items()))})" if kwargs else "")
    dataset = summary["dataset"]
    data_dir = (cfg.get("data") or {}).get("data_dir") or cfg.get("data_dir")  # grouped, or a flat older config
    if dataset in ("imagefolder", "segfolder") and data_dir:
        dataset += ":" + Path(data_dir).name
    return model, dataset


def monitored(summary: dict) -> tuple[str, str, float]:
    """``(metric, mode, final value)`` of a summary; older summaries (``final_error``) are top-1 error."""
    if "monitor" in summary:
        return summary["monitor"]["metric"], summary["monitor"]["mode"], summary["final"]
    return "test_error", "min", summary["final_error"]


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ReportError(f"{path} is unreadable or not JSON ({e}); rerun or remove that run") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path} must hold a JSON object")
    return data


def _curve(path: Path, metric: str) -> list[tuple[int, float]]:
    """(epoch, value) of ``metric`` for each evaluated epoch in metrics.jsonl."""
    out = []
    for n, line in enumerate(path.read_text().splitlines() if path.is_file() else [], 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise ReportError(f"{path}, line {n}, is not JSON: {line[:60]!r}") from None
        if metric in record:
            out.append((record["epoch"], record[metric]))
    return out


def collect(run_dirs: list[Path]) -> dict[tuple[str, str, str, str], list[dict]]:
    """(model label, variant, dataset, metric) -> [{seed, final, curve, mode}, ...]."""
    groups: dict[tuple[str, str, str, str], list[dict]] = defaultdict(list)
    for d in run_dirs:
        s = _read_json(d / "summary.json")
        try:
            metric, mode, final = monitored(s)
            model, dataset = labels(d, s)
            key = (model, s["variant"], dataset, metric)
            seed = s["seed"]
        except KeyError as e:
            raise ReportError(f"{d / 'summary.json'} lacks {e}; is it a poolskip run summary?") from None
        groups[key].append({
            "seed": seed, "final": final, "mode": mode, "curve": _curve(d / "metrics.jsonl", metric), "dir": str(d),
            "task": s.get("task", "classification"), "name": s["model"], "metrics": s.get("final_metrics") or {},
        })  # fmt: skip
    return groups


def table_rows(groups) -> list[dict]:
    """One row per (model, dataset, metric): plain and Pool Skip statistics and their difference."""
    rows = []
    for model, dataset, metric in sorted({(m, ds, mt) for m, _, ds, mt in groups}):
        row = {"model": model, "dataset": dataset, "metric": metric}
        for variant in ("plain", "pool_skip"):
            runs = groups.get((model, variant, dataset, metric), [])
            values = [r["final"] for r in runs]
            row[f"{variant}_n"] = len(values)
            row[f"{variant}_mean"], row[f"{variant}_std"] = mean_std(values)  # one run: std None, no spread
            row[f"{variant}_seeds"] = " ".join(str(r["seed"]) for r in runs)
            if runs:
                row["mode"] = runs[0]["mode"]
        both = row["plain_mean"] is not None and row["pool_skip_mean"] is not None
        row["difference"] = row["pool_skip_mean"] - row["plain_mean"] if both else None
        for variant in ("plain", "pool_skip"):
            row[f"paper_{variant}"] = paper_value(model, dataset, variant, metric)
        rows.append(row)
    return rows


def table3_rows(groups) -> list[dict]:
    """Rows for :func:`~poolskip.experiments.table3.format_table3` from the runs of ``groups`` that measure
    Dice, NSD and IoU (3D segmentation): each run's final values (``summary.json``'s ``final_metrics``)."""
    rows = []
    for (_, variant, dataset, _), runs in sorted(groups.items()):
        for r in runs:
            m = r["metrics"]
            if all(k in m for k in ("dice", "nsd", "iou")):
                values = {k: float("nan") if m[k] is None else m[k] for k in ("dice", "nsd", "iou")}
                rows.append({"dataset": dataset, "model": r["name"], "variant": variant, **values})
    return rows


def paper_value(model: str, dataset: str, variant: str, metric: str) -> float | None:
    """The paper's mean for this cell (any of its tables), or None where it reports none: same model (the
    label's name before any factory arguments), dataset and variant; top-1 error, mIoU or Dice."""
    from .paper import paper_numbers

    name = model.split(" (")[0]
    aliases = {"miou": ("miou",), "dice": ("dice",), "test_error": ("test_error", None)}
    for table in paper_numbers().values():
        if not isinstance(table, dict) or "entries" not in table:
            continue
        for e in table["entries"]:
            metric_of = e.get("metric", table.get("metric"))
            if (e["model"], e["dataset"], e["variant"]) == (name, dataset, variant) and metric_of in aliases.get(
                metric, (metric,)
            ):
                return e["mean"]
    return None


def markdown(rows: list[dict]) -> str:
    def cell(r, v):
        return format_mean_std(r[f"{v}_mean"], r[f"{v}_std"], r[f"{v}_n"])

    def paper(r):
        p, q = r["paper_plain"], r["paper_pool_skip"]
        if p is None and q is None:
            return "-"
        return " / ".join("-" if v is None else f"{v:.2f}" for v in (p, q))

    lines = [
        "| model | dataset | metric | plain | +Pool Skip | Pool Skip − plain | paper (plain / +Pool Skip) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        diff = "-" if r["difference"] is None else f"{r['difference']:+.2f}"
        metric = f"{r['metric']} ({'lower' if r.get('mode') == 'min' else 'higher'} is better)"
        ours = f"{cell(r, 'plain')} | {cell(r, 'pool_skip')} | {diff}"
        lines.append(f"| {r['model']} | {r['dataset']} | {metric} | {ours} | {paper(r)} |")
    return (
        "\n".join(lines)
        + "\n\nThe metric each run's task monitors, at the final evaluation; mean ± sample std over seeds "
        "(no ± for one run)."
    )


def plot(groups, path: Path) -> None:
    """The monitored metric per evaluated epoch (mean over seeds): one panel per (dataset, metric), one line
    per model and variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = sorted({(ds, metric) for _, _, ds, metric in groups})
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (dataset, metric) in zip(axes[0], panels):
        for (model, variant, ds, mt), runs in sorted(groups.items()):
            if (ds, mt) != (dataset, metric):
                continue
            n = min(len(r["curve"]) for r in runs)
            epochs = [e for e, _ in runs[0]["curve"][:n]]
            mean = [statistics.fmean(r["curve"][i][1] for r in runs) for i in range(n)]
            ax.plot(epochs, mean, marker="o", ls="-" if variant == "plain" else "--", label=f"{model} {variant}")
        ax.set(title=dataset, xlabel="epoch", ylabel=metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path)


def write_report(groups, out: str | Path) -> str:
    """report.md, report.csv and curves.png of ``groups`` (:func:`collect`) in ``out``; returns the Markdown
    table."""
    import csv

    rows = table_rows(groups)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows)
    table3 = table3_rows(groups)
    if table3:
        from .table3 import format_table3

        text += (
            "\n\n### Table 3 layout (3D segmentation, %)\n\n" + format_table3(table3)
            + "\nDice, NSD and mIoU at each run's final evaluation, mean ± sample std over its seeds (and folds, "
            "each its own run); the paper's numbers are 5-fold ensembles on BTCV / AMOS."
        )  # fmt: skip
    (out / "report.md").write_text(text + "\n")
    with open(out / "report.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)
    plot(groups, out / "curves.png")
    return text


def prediction_pictures(groups, out: str | Path, count: int = 3) -> list[Path]:
    """For every segmentation (model, dataset) with both variants, a PNG of ``count`` evaluation samples: image,
    ground truth, the plain and the Pool Skip prediction of each variant's first run (its last checkpoint), in
    the dataset's palette (2D) or as slices (3D), for tasks that can picture their predictions
    (:class:`~poolskip.tasks.PicturesPredictions`). Runs without a checkpoint are skipped."""
    import torch
    import yaml

    from ..engine.checkpoint import load_checkpoint
    from ..engine.trainer import restore
    from ..tasks import PicturesPredictions, get_task

    written = []
    pairs = sorted({(m, ds, mt) for m, _, ds, mt in groups})
    for model, dataset, metric in pairs:
        runs = {v: groups.get((model, v, dataset, metric), []) for v in ("plain", "pool_skip")}
        if not all(runs.values()):
            continue
        dirs = {v: Path(sorted(rs, key=lambda r: r["seed"])[0]["dir"]) for v, rs in runs.items()}
        config = yaml.safe_load((dirs["plain"] / "config.yaml").read_text()) or {}
        task_cls = get_task(config.get("task", "classification"))
        if not issubclass(task_cls, PicturesPredictions):
            continue
        if not all((d / "checkpoints" / "last.pt").is_file() for d in dirs.values()):
            continue
        plain_model, task, _ = restore(dirs["plain"])
        models = {"plain": plain_model, "Pool Skip": load_checkpoint(dirs["pool_skip"], device=task.device)[0]}
        slug = re.sub(r"[^A-Za-z0-9]+", "_", f"{model}_{dataset}").strip("_")
        path = Path(out) / f"predictions_{slug}.png"
        with torch.no_grad():
            examples = task.prediction_examples(models, count)
        if examples.spatial_dims == 2:
            from .seg_figure import save_prediction_figure

            save_prediction_figure(examples.samples, examples.palette, path)
        else:
            from .table3 import save_slices

            vol = examples.samples[0]
            save_slices(path, vol["image"], vol["target"], vol["preds"], vol["slices"], title=f"{model}, {dataset}")
        written.append(path)
    return written
