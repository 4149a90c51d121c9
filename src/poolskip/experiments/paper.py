"""The paper's reported numbers (Tables 1-5, Fig. 3 and 4), kept in the package as data.

``paper_numbers()`` reads ``paper_numbers.yaml`` (each entry with its source: table, row, column);
``paper_entry(table, model, dataset, variant, metric)`` finds one entry, ``None`` if the paper has none.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import yaml

__all__ = ["PAPER_NUMBERS", "paper_entry", "paper_numbers"]

PAPER_NUMBERS = Path(__file__).resolve().parent / "paper_numbers.yaml"


@functools.cache
def _load() -> str:
    data = yaml.safe_load(PAPER_NUMBERS.read_text())
    for name, table in data.items():
        for entry in table["entries"]:
            entry.setdefault("metric", table["metric"])
            missing = {"model", "dataset", "variant", "mean", "std", "source"} - set(entry)
            if missing:
                raise ValueError(f"{PAPER_NUMBERS.name}: an entry of {name} lacks {sorted(missing)}: {entry}")
    return json.dumps(data)


def paper_numbers() -> dict[str, Any]:
    """``{table: {title, metric, mode, entries: [{model, dataset, variant, metric, mean, std, source}]}}``.

    A fresh copy each call (callers may modify it). Tables: table1..table5, fig3, fig4.
    """
    return json.loads(_load())


def paper_entry(table: str, model: str, dataset: str, variant: str, metric: str | None = None) -> dict | None:
    """The paper's entry for this cell, or ``None`` where the paper reports no such number."""
    data = paper_numbers()
    if table not in data:
        raise ValueError(f"the paper has no {table!r}; known: {sorted(data)}")
    metric = metric or data[table]["metric"]
    for e in data[table]["entries"]:
        if (e["model"], e["dataset"], e["variant"], e["metric"]) == (model, dataset, variant, metric):
            return e
    return None
