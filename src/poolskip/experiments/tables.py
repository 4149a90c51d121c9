"""The one table renderer of ``report`` and ``reproduce``: rows + columns -> Markdown or CSV.

A row is a mapping; a :class:`Column` names the key it shows. A cell holding a :class:`Stat` (the
values of a cell over seeds) prints as mean ± sample std with its n (:mod:`.stats`) in Markdown and
as ``<key>_mean``, ``<key>_std``, ``<key>_n``, ``<key>_values`` in CSV. :func:`ours_minus_paper` is
the only place a difference from the paper's number is made: only on the paper's dataset at the
paper's scale.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .stats import format_mean_std, mean_std

__all__ = ["Column", "Stat", "format_cell", "markdown", "ours_minus_paper", "to_csv"]


@dataclass(frozen=True)
class Column:
    """One column: the row key it shows, its header, whether it is text (left) or a number (right), and
    whether a number is a difference (printed with its sign)."""

    key: str
    title: str
    numeric: bool = True
    signed: bool = False


@dataclass(frozen=True)
class Stat:
    """A cell's values over seeds (or folds)."""

    values: tuple[float, ...] = field(default_factory=tuple)

    @property
    def mean(self) -> float | None:
        return mean_std(self.values)[0]

    @property
    def std(self) -> float | None:
        return mean_std(self.values)[1]

    def __len__(self) -> int:
        return len(self.values)


def format_cell(value: object, missing: str = "-", signed: bool = False) -> str:
    """A Markdown cell: a Stat as ``mean ± std (n=k)``, a float with two decimals (and its sign where
    ``signed``), None as ``missing``."""
    if value is None:
        return missing
    if isinstance(value, Stat):
        return format_mean_std(value.mean, value.std, len(value), missing=missing)
    if isinstance(value, float):
        return f"{value:+.2f}" if signed else f"{value:.2f}"
    return str(value).replace("|", "\\|")


def markdown(rows: Sequence[Mapping[str, object]], columns: Sequence[Column], missing: str = "-") -> str:
    """A Markdown table (no trailing newline)."""
    lines = [
        "| " + " | ".join(c.title for c in columns) + " |",
        "|" + "|".join("---:" if c.numeric else "---" for c in columns) + "|",
    ]
    for r in rows:
        lines.append("| " + " | ".join(format_cell(r.get(c.key), missing, c.signed) for c in columns) + " |")
    return "\n".join(lines)


def to_csv(rows: Sequence[Mapping[str, object]], columns: Sequence[Column]) -> str:
    """CSV text: one column per key, a Stat as mean, std, n and its values (empty where None)."""
    header: list[str] = []
    for c in columns:
        stat = any(isinstance(r.get(c.key), Stat) for r in rows)
        header += [f"{c.key}_{k}" for k in ("mean", "std", "n", "values")] if stat else [c.key]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        out: list[object] = []
        for c in columns:
            v = r.get(c.key)
            if any(isinstance(x.get(c.key), Stat) for x in rows):
                s = v if isinstance(v, Stat) else Stat()
                out += ["" if s.mean is None else s.mean, "" if s.std is None else s.std, len(s)]
                out.append(" ".join(repr(float(x)) for x in s.values))
            else:
                out.append("" if v is None else v)
        w.writerow(out)
    return buf.getvalue()


def ours_minus_paper(ours: float | None, paper: float | None, *, dataset: str, paper_dataset: str, scale: str):
    """Our mean minus the paper's, or None unless we trained on the paper's dataset at the paper's scale
    (``scale == "paper"``): a stand-in dataset or a shortened protocol is not the paper's experiment."""
    if ours is None or paper is None or dataset != paper_dataset or scale != "paper":
        return None
    return ours - paper
