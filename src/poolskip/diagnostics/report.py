"""Diagnoses to files: a CSV per model (plus per-channel CSV) and the Fig. 4 style PNG plots.

Plots overlay several models (e.g. plain vs Pool Skip S2 vs S4) on one axis, layers in output
order. They use matplotlib's object API with the Agg canvas, so no global backend is switched.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping
from pathlib import Path

from .probe import Diagnosis

__all__ = ["plot_dead_units", "plot_grad_norms", "plot_hoyer", "plot_l2_l1", "write_csv", "write_report"]


def _write_rows(rows: list[dict[str, object]], path: Path) -> None:
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)


def write_csv(diagnosis: Diagnosis, path: str | Path, channels_path: str | Path | None = None) -> Path:
    """One row per layer and activation site (forward order) to ``path``; per-channel rows to
    ``channels_path`` (default ``<stem>_channels.csv`` next to it). Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
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


def write_report(diagnoses: Mapping[str, Diagnosis], out_dir: str | Path) -> dict[str, Path]:
    """Write ``<label>.csv`` + ``<label>_channels.csv`` per model, ``summary.json`` (each model's
    :meth:`Diagnosis.summary`) and ``l2_l1.png``, ``hoyer.png``, ``dead_units.png``,
    ``grad_norm.png`` to ``out_dir``.

    Returns the written paths by name (``csv:<label>``, ``summary``, ``l2_l1``, ...).
    """
    if not diagnoses:
        raise ValueError("write_report needs at least one diagnosis")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    slugs: set[str] = set()
    for label, d in diagnoses.items():
        slug = _slug(label)
        if slug in slugs:
            raise ValueError(f"two models would write the same file {slug}.csv; give them distinct labels")
        slugs.add(slug)
        paths[f"csv:{label}"] = write_csv(d, out / f"{slug}.csv")
    summary = out / "summary.json"
    summary.write_text(json.dumps({label: d.summary() for label, d in diagnoses.items()}, indent=2) + "\n")
    paths["summary"] = summary
    paths["l2_l1"] = plot_l2_l1(diagnoses, out / "l2_l1.png")
    paths["hoyer"] = plot_hoyer(diagnoses, out / "hoyer.png")
    paths["dead_units"] = plot_dead_units(diagnoses, out / "dead_units.png")
    paths["grad_norm"] = plot_grad_norms(diagnoses, out / "grad_norm.png")
    return paths
