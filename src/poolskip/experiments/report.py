"""``poolskip report RUN_DIR...``: the paper's Table 1 layout from run directories, plus error curves.

Reads only the files runs wrote (``summary.json``, ``metrics.jsonl``), so reports can be rebuilt at any
time. Runs are grouped by (model, variant, dataset); a cell is the mean ± sample std of the final-epoch
top-1 error over seeds (the paper's protocol), and each row gets the Pool Skip minus plain difference.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path


def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories (holding summary.json) at or below each path, sorted."""
    found = set()
    for p in map(Path, paths):
        if (p / "summary.json").is_file():
            found.add(p)
        elif p.is_dir():
            found.update(s.parent for s in p.rglob("summary.json"))
        else:
            raise FileNotFoundError(f"{p} is not a run directory or a directory of runs")
    if not found:
        raise FileNotFoundError(f"no summary.json under {', '.join(map(str, paths))}: is a run still going?")
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
    if dataset == "imagefolder" and cfg.get("data_dir"):
        dataset += ":" + Path(cfg["data_dir"]).name
    return model, dataset


def collect(run_dirs: list[Path]) -> dict[tuple[str, str, str], list[dict]]:
    """(model label, variant, dataset) -> [{seed, final_error, curve}, ...]."""
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for d in run_dirs:
        s = json.loads((d / "summary.json").read_text())
        curve = [json.loads(line)["test_error"] for line in (d / "metrics.jsonl").read_text().splitlines() if line]
        model, dataset = labels(d, s)
        groups[(model, s["variant"], dataset)].append(
            {"seed": s["seed"], "final_error": s["final_error"], "curve": curve, "dir": str(d)}
        )
    return groups


def table_rows(groups) -> list[dict]:
    """One row per (model, dataset): plain and Pool Skip statistics and their difference."""
    rows = []
    for model, dataset in sorted({(m, ds) for m, _, ds in groups}):
        row = {"model": model, "dataset": dataset}
        for variant in ("plain", "pool_skip"):
            errs = [r["final_error"] for r in groups.get((model, variant, dataset), [])]
            row[f"{variant}_n"] = len(errs)
            row[f"{variant}_mean"] = statistics.fmean(errs) if errs else None
            row[f"{variant}_std"] = statistics.stdev(errs) if len(errs) > 1 else (0.0 if errs else None)
            row[f"{variant}_seeds"] = " ".join(str(r["seed"]) for r in groups.get((model, variant, dataset), []))
        both = row["plain_mean"] is not None and row["pool_skip_mean"] is not None
        row["difference"] = row["pool_skip_mean"] - row["plain_mean"] if both else None
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    def cell(r, v):
        if r[f"{v}_mean"] is None:
            return "-"
        return f"{r[f'{v}_mean']:.2f} ± {r[f'{v}_std']:.2f} (n={r[f'{v}_n']})"

    lines = [
        "| model | dataset | plain | +Pool Skip | Pool Skip − plain |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        diff = "-" if r["difference"] is None else f"{r['difference']:+.2f}"
        lines.append(f"| {r['model']} | {r['dataset']} | {cell(r, 'plain')} | {cell(r, 'pool_skip')} | {diff} |")
    return "\n".join(lines) + "\n\nTop-1 test error (%) of the final epoch, mean ± sample std over seeds."


def plot(groups, path: Path) -> None:
    """Test error per epoch (mean over seeds), one panel per dataset, one line per model and variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    datasets = sorted({ds for _, _, ds in groups})
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for (model, variant, ds), runs in sorted(groups.items()):
            if ds != dataset:
                continue
            n = min(len(r["curve"]) for r in runs)
            mean = [statistics.fmean(r["curve"][i] for r in runs) for i in range(n)]
            ax.plot(
                range(1, n + 1), mean, marker="o", ls="-" if variant == "plain" else "--", label=f"{model} {variant}"
            )
        ax.set(title=dataset, xlabel="epoch", ylabel="top-1 test error (%)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories, or directories that hold runs")
    p.add_argument("--out", default="report", help="where report.md, report.csv and curves.png go (default: report)")


def run(args: argparse.Namespace) -> int:
    try:
        groups = collect(find_runs(args.runs))
    except FileNotFoundError as e:
        raise SystemExit(f"poolskip report: {e}") from None
    rows = table_rows(groups)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows)
    (out / "report.md").write_text(text + "\n")
    with open(out / "report.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(groups, out / "curves.png")
    print(text)
    runs = sum(map(len, groups.values()))
    print(f"\nwrote {out / 'report.md'}, {out / 'report.csv'}, {out / 'curves.png'} ({runs} runs)")
    return 0
