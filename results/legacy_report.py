"""report.md and report.csv of a result folder whose run summaries predate today's `poolskip report`.

Today's `report` groups runs by the placement each summary records and refuses summaries without it, as those
of train-cifar10-resnet18w16-cpu, seg2d-camvid-cpu(-12ep) and med3d-hippocampus-cpu-500steps are (written
before summaries had `placement`; every run there is either plain or the default Pool Skip, which each
config.yaml says). Each of those folders' `tables.py` reads its own committed summaries into records and calls
:func:`write_report`, which writes the table `report` wrote on 2026-11-28, one layout for all four:

    model, dataset, metric, plain and +Pool Skip (mean ± sample std over seeds, no ± for one run), their
    difference, and an empty paper column (none of these runs is the paper's protocol).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import yaml

VARIANTS = ("plain", "pool_skip")
#: Each variant's name in the tables, by the ``{v}`` of :func:`read_pair`'s pattern.
NAMES = {"false": "plain", "true": "Pool Skip"}


def read_pair(folder: Path, pattern: str) -> tuple[dict[str, list[Path]], dict[str, list[dict]], dict, str]:
    """The plain and Pool Skip run directories of a two-variant folder (``pattern`` with ``{v}``: ``false`` for
    plain, ``true`` for Pool Skip; one ``seed*`` directory per run), their summaries, the config of the first
    plain run and the model's label (name and options) in the report."""
    runs = {v: sorted((folder / pattern.format(v=v)).glob("seed*")) for v in ("false", "true")}
    summaries = {v: [json.loads((d / "summary.json").read_text()) for d in ds] for v, ds in runs.items()}
    config = yaml.safe_load((runs["false"][0] / "config.yaml").read_text())
    kwargs = ", ".join(f"{k}={v}" for k, v in sorted(config["model_kwargs"].items()))
    return runs, summaries, config, f"{config['model']} ({kwargs})"


def pair_records(summaries: Mapping[str, list[dict]], value: Callable[[dict], float], **labels) -> list[dict]:
    """:func:`write_report`'s records of :func:`read_pair`'s summaries: ``value`` of each summary, its dataset
    and monitored metric and mode where it records them, and ``labels`` (model; dataset, metric, mode where the
    summary has none) the same for every run."""
    return [
        {"dataset": s.get("dataset"), **s.get("monitor", {}), **labels, "seed": s["seed"],
         "variant": {"false": "plain", "true": "pool_skip"}[v], "value": value(s)}
        for v, ss in summaries.items()
        for s in ss
    ]  # fmt: skip


def report_pair(folder: Path, pattern: str, value: Callable[[dict], float]) -> tuple[dict, dict]:
    """:func:`read_pair` of ``folder``, its report (:func:`write_report` of ``value`` of each summary, the model
    labelled from its config) written there and printed; returns the run directories and summaries."""
    runs, summaries, _, model = read_pair(folder, pattern)
    print(write_report(pair_records(summaries, value, model=model), folder))
    return runs, summaries


def _cell(values: list[float]) -> str:
    mean = statistics.fmean(values)
    return f"{mean:.2f} ± {statistics.stdev(values):.2f} (n={len(values)})" if len(values) > 1 else f"{mean:.2f} (n=1)"


def write_report(records: Iterable[Mapping], out: Path, more: str = "") -> str:
    """Write ``out/report.md`` (the table, its note, then ``more``) and ``out/report.csv`` from ``records``:
    one per run, with ``model`` and ``dataset`` (labels), ``metric``, ``mode`` (``min``/``max``), ``variant``
    (``plain``/``pool_skip``), ``seed`` and ``value`` (the run's final monitored metric). Returns report.md."""
    groups: dict[tuple[str, str], dict[str, list[Mapping]]] = {}
    for r in records:
        groups.setdefault((r["model"], r["dataset"]), {}).setdefault(r["variant"], []).append(r)
    md = ["| model | dataset | metric | plain | +Pool Skip | Pool Skip − plain | paper (plain / +Pool Skip) |",
          "|---|---|---|---:|---:|---:|---:|"]  # fmt: skip
    csv = ["model,dataset,metric,plain_n,plain_mean,plain_std,plain_seeds,mode,pool_skip_n,pool_skip_mean,"
           "pool_skip_std,pool_skip_seeds,difference,paper_plain,paper_pool_skip"]  # fmt: skip
    for (model, dataset), by in sorted(groups.items()):
        by = {v: sorted(by[v], key=lambda r: r["seed"]) for v in VARIANTS}
        metric, mode = by["plain"][0]["metric"], by["plain"][0]["mode"]
        values = {v: [r["value"] for r in rs] for v, rs in by.items()}
        mean = {v: statistics.fmean(x) for v, x in values.items()}
        std = {v: statistics.stdev(x) if len(x) > 1 else 0.0 for v, x in values.items()}
        seeds = {v: " ".join(str(r["seed"]) for r in rs) for v, rs in by.items()}
        diff = mean["pool_skip"] - mean["plain"]
        md.append(f"| {model} | {dataset} | {metric} ({'lower' if mode == 'min' else 'higher'} is better) "
                  f"| {_cell(values['plain'])} | {_cell(values['pool_skip'])} | {diff:+.2f} | - |")  # fmt: skip
        csv.append(",".join(str(x) for x in (
            model, dataset, metric, len(values["plain"]), repr(mean["plain"]), repr(std["plain"]), seeds["plain"],
            mode, len(values["pool_skip"]), repr(mean["pool_skip"]), repr(std["pool_skip"]), seeds["pool_skip"],
            repr(diff), "", "",
        )))  # fmt: skip
    text = "\n".join(md) + (
        "\n\nThe metric each run's task monitors, at the final evaluation; mean ± sample std over seeds (no ± for one "
        "run).\n" + more
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(text)
    (out / "report.csv").write_text("\r\n".join(csv) + "\r\n")  # csv's line ends, as `report` wrote them
    return text
