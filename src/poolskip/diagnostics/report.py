"""Diagnoses to files: a CSV per model (plus per-channel CSV) and the Fig. 4 style PNG plots.

Plots overlay several models (e.g. plain vs Pool Skip S2 vs S4) on one axis, layers in output
order. They use matplotlib's object API with the Agg canvas, so no global backend is switched.
Every file is written atomically (:mod:`poolskip.files`): a run stopped mid-write leaves the old file or
the new one, never half a file.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from pathlib import Path

from ..files import atomic_write, atomic_write_text
from .probe import Diagnosis

__all__ = [
    "FIGURES",
    "SUMMARY",
    "plot_dead_units",
    "plot_grad_norms",
    "plot_hoyer",
    "plot_l2_l1",
    "report_files",
    "write_csv",
    "write_report",
]

#: The files :func:`write_report` writes besides each model's two CSVs.
SUMMARY = "summary.json"
FIGURES = ("l2_l1.png", "hoyer.png", "dead_units.png", "grad_norm.png")


def _write_rows(rows: list[dict[str, object]], path: Path) -> None:
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fields, restval="")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    atomic_write_text(path, text.getvalue())


def write_csv(diagnosis: Diagnosis, path: str | Path, channels_path: str | Path | None = None) -> Path:
    """One row per layer and activation site (forward order) to ``path``; per-channel rows to
    ``channels_path`` (default ``<stem>_channels.csv`` next to it). Returns ``path``."""
    path = Path(path)
    _write_rows(diagnosis.rows(), path)
    channels = Path(channels_path) if channels_path is not None else path.with_name(f"{path.stem}_channels.csv")
    _write_rows(diagnosis.channel_rows(), channels)
    return path


def _figure(title: str, ylabel: str, log: bool = False):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel("layer, in output direction (input -> output)")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    return fig, ax


def _save(fig, ax, path: str | Path) -> Path:
    ax.legend(loc="best", fontsize="small")
    path = Path(path)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=120)
    atomic_write(path, lambda fh: fh.write(png.getvalue()))
    return path


def plot_l2_l1(diagnoses: Mapping[str, Diagnosis], path: str | Path, title: str | None = None) -> Path:
    """The paper's Fig. 4: weight l2/l1 of every conv/linear layer in output order, one line per model.

    Pool Skip's inner convs are left out, so a plain model and its converted variant share the x axis.
    l2/l1 is bounded below by ``1/sqrt(n)``, so it also moves with layer size; :func:`plot_hoyer` does not.
    """
    return _plot_layers(diagnoses, path, "l2_l1", title or "weight l2/l1 per layer (higher: more near-zero weights)")


def plot_hoyer(diagnoses: Mapping[str, Diagnosis], path: str | Path, title: str | None = None) -> Path:
    """Hoyer's normalised sparsity of every conv/linear layer in output order (size-independent l2/l1)."""
    return _plot_layers(diagnoses, path, "hoyer", title or "Hoyer sparsity per layer (0: all equal, 1: one weight)")


def _plot_layers(diagnoses: Mapping[str, Diagnosis], path: str | Path, measure: str, title: str) -> Path:
    fig, ax = _figure(title, measure.replace("_", " / "))
    for label, d in diagnoses.items():
        layers = d.plain_layers()
        ax.plot([s.index for s in layers], [getattr(s, measure) for s in layers], marker=".", ms=3, lw=1, label=label)
    return _save(fig, ax, path)


def plot_dead_units(diagnoses: Mapping[str, Diagnosis], path: str | Path, title: str | None = None) -> Path:
    """Fraction of dead units (output <= 0 for every probe sample) at every ReLU-like site, in output
    order (x: the forward index of the layer each site follows), one line per model."""
    fig, ax = _figure(title or "dead units per activation (<= 0 for every probe sample)", "dead unit fraction")
    for label, d in diagnoses.items():
        sites = d.activation_sites()
        probe = f" (probe {d.probe_size})"
        ax.plot([a.index for a in sites], [a.dead_units for a in sites], marker=".", ms=3, lw=1, label=label + probe)
    ax.set_ylim(-0.02, 1.02)
    return _save(fig, ax, path)


def plot_grad_norms(diagnoses: Mapping[str, Diagnosis], path: str | Path, title: str | None = None) -> Path:
    """Gradient flow: ``||dL/dW||`` of every conv/linear layer over the probe set, log scale."""
    fig, ax = _figure(title or "gradient norm per layer over the probe set", "||dL/dW||", log=True)
    for label, d in diagnoses.items():
        pts = [(s.index, s.grad_norm) for s in d.plain_layers() if s.grad_norm is not None and s.grad_norm > 0]
        if pts:
            ax.plot(*zip(*pts), marker=".", ms=3, lw=1, label=label)
    return _save(fig, ax, path)


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "model"


def report_files(out_dir: str | Path) -> list[Path]:
    """The files of an earlier :func:`write_report` in ``out_dir``, sorted (none: ``[]``): ``summary.json`` and
    the figures (which a new report would replace), the ``<label>.csv`` and ``<label>_channels.csv`` of each
    model a diagnose summary names and any other such pair (a report stopped before its summary), and the
    temporary files of a write stopped midway. Other files are not the report's. A ``summary.json`` that is not a
    diagnose summary (a training run's, say) is a ``FileExistsError``: that folder is never a report's to replace."""
    out = Path(out_dir)
    if not out.is_dir():
        return []
    try:
        summary = json.loads((out / SUMMARY).read_text())
    except (OSError, ValueError):
        summary = None
    ours = isinstance(summary, dict) and all(isinstance(v, dict) and "probe_size" in v for v in summary.values())
    if (out / SUMMARY).exists() and not ours:
        raise FileExistsError(
            f"{out / SUMMARY} is not a diagnose report's (a run directory's?); write the report to another folder"
        )
    stems = {_slug(label) for label in summary} if ours else set()
    for p in out.glob("*_channels.csv"):
        stem = p.name.removesuffix("_channels.csv")
        if (out / f"{stem}.csv").is_file():
            stems.add(stem)
    names = {SUMMARY, *FIGURES, *(f"{stem}{end}" for stem in stems for end in (".csv", "_channels.csv"))}
    found = [out / name for name in names if (out / name).is_file()]
    # atomic_write's temporary files: ".<name>.<random>.tmp"
    found += [p for p in out.glob(".*.tmp") if p.is_file() and p.name[1:-4].rpartition(".")[0] in names]
    return sorted(found)


def write_report(diagnoses: Mapping[str, Diagnosis], out_dir: str | Path, overwrite: bool = False) -> dict[str, Path]:
    """Write ``<label>.csv`` + ``<label>_channels.csv`` per model, ``summary.json`` (each model's
    :meth:`Diagnosis.summary`) and ``l2_l1.png``, ``hoyer.png``, ``dead_units.png``,
    ``grad_norm.png`` to ``out_dir``, each file atomically.

    An ``out_dir`` that already holds a report (:func:`report_files`) is refused (``FileExistsError``), so
    that no earlier model's CSVs stay beside the new summary as if they were part of it; ``overwrite``
    removes that report's files first (only those). Returns the written paths by name (``csv:<label>``,
    ``summary``, ``l2_l1``, ...).
    """
    if not diagnoses:
        raise ValueError("write_report needs at least one diagnosis")
    slugs: dict[str, str] = {}
    for label in diagnoses:
        slug = _slug(label)
        if slug in slugs.values():
            raise ValueError(f"two models would write the same file {slug}.csv; give them distinct labels")
        slugs[label] = slug
    out = Path(out_dir)
    earlier = report_files(out)
    if earlier and not overwrite:
        raise FileExistsError(
            f"{out} already holds a diagnose report ({', '.join(p.name for p in earlier)}); pass overwrite=True "
            "to replace it"
        )
    for p in earlier:
        p.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for label, d in diagnoses.items():
        paths[f"csv:{label}"] = write_csv(d, out / f"{slugs[label]}.csv")
    summary = out / SUMMARY
    atomic_write_text(summary, json.dumps({label: d.summary() for label, d in diagnoses.items()}, indent=2) + "\n")
    paths["summary"] = summary
    for name, plot in zip(FIGURES, (plot_l2_l1, plot_hoyer, plot_dead_units, plot_grad_norms)):
        paths[name.removesuffix(".png")] = plot(diagnoses, out / name)
    return paths
