"""The one reader of run directories: status, config, summary, history, placement.

A run directory is what :mod:`poolskip.engine.rundir` describes; ``report``, ``reproduce`` and the 3D
folds read runs only through this module, so "finished", "what the run was" and "what it measured" mean
the same thing everywhere. A summary must hold every field the current engine writes (:data:`REQUIRED`);
one that lacks any is refused with a one-line :class:`ResultsError` naming the file, never guessed at.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..engine.rundir import lock_held
from ..errors import PoolskipError

__all__ = [
    "REQUIRED",
    "STATUSES",
    "ResultsError",
    "Summary",
    "code_note",
    "commit_of",
    "curve",
    "dataset_label",
    "find_runs",
    "config_change",
    "config_differences",
    "flat_config",
    "LOCAL_KEYS",
    "model_key",
    "model_label",
    "placement_key",
    "placement_label",
    "protocol",
    "read_config",
    "read_history",
    "read_summary",
    "run_status",
]

#: What :func:`run_status` answers.
STATUSES = {
    "new": "nothing there yet (or an empty directory)",
    "running": "another process holds the run's lock and is writing it",
    "finished": "summary.json written: the run ended",
    "incomplete": "checkpoints/last.pt but no summary.json: stopped, resumable",
    "stale": "files of a start that never checkpointed: nothing to resume",
}

#: The fields a run's summary.json must hold to be read.
REQUIRED = ("task", "model", "model_kwargs", "dataset", "seed", "monitor", "final", "placement")

#: Config keys that say where and how a run is computed, not what it learns: runs may differ in them and still
#: be the same experiment (a results folder moved to another machine, another device or thread count; a splits
#: file's path, whose content is checked against the dataset, seed and fold count when it is read).
LOCAL_KEYS = frozenset(
    {"data.data_dir", "data.cache_dir", "data.download", "run.device", "run.threads", "run.out_dir",
     "run.run_name", "run.eval_batch_size", "segmentation3d.split_file"}
)  # fmt: skip

#: Config keys that tell apart the runs of one row (seed, fold) or that the row names itself (the model with
#: its options, the placement).
_CELL_KEYS = frozenset({"run.seed", "segmentation3d.fold", "model", "model_kwargs", "pool_skip"})

#: The Table 4 ablations (module.py's ``variant``) by the paper's names.
_ABLATIONS = {"pool_skip": "{Pool,Skip}", "conv_skip": "{Conv,Skip}", "pool_conv": "{Pool,Conv}"}


class ResultsError(PoolskipError):
    """A run directory's files are missing, unreadable or incomplete; the message names the file."""


# ------------------------------------------------------------------------------------------ status


def run_status(run_dir: str | os.PathLike) -> str:
    """One of :data:`STATUSES`: ``running`` while a process holds the lock, else ``finished`` (summary.json),
    ``incomplete`` (checkpoints/last.pt), ``stale`` (other files) or ``new``."""
    d = Path(run_dir)
    if not d.is_dir():
        return "new"
    if lock_held(d):
        return "running"
    if (d / "summary.json").is_file():
        return "finished"
    if (d / "checkpoints" / "last.pt").is_file():
        return "incomplete"
    return "stale" if any(p.name != ".lock" for p in d.iterdir()) else "new"


# ------------------------------------------------------------------------------------------ files


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ResultsError(f"{path} is unreadable or not JSON ({e}); rerun or remove that run") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's resolved config (``config.yaml``) as a mapping whose sections are mappings; a file that is not
    is a ResultsError naming it (the run is refused, as a run with an unreadable summary is)."""
    path = Path(run_dir) / "config.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path} is missing: every run directory holds its resolved config") from None
    except (OSError, ValueError, yaml.YAMLError) as e:  # ValueError: not UTF-8 text
        reason = " ".join(str(e).split())[:200]
        raise ResultsError(f"{path} is unreadable or not YAML ({reason}); rerun or remove that run") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path} must hold a mapping of config keys; rerun or remove that run")
    for key in ("data", "optim", "run", "model_kwargs"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise ResultsError(
                f"{path}: {key!r} must be a mapping of config keys, got {data[key]!r}; rerun or remove that run"
            )
    return data


def read_history(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The per-epoch records of ``metrics.jsonl`` (empty before the first epoch ended)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise ResultsError(f"{path}, line {n}, is not JSON: {line[:60]!r}") from None
        if not isinstance(record, dict) or "epoch" not in record:
            raise ResultsError(f"{path}, line {n}, is not an epoch record (a JSON object with 'epoch')")
        out.append(record)
    return out


def flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """A resolved config with its sections flattened to ``section.key`` (``model_kwargs`` and a ``pool_skip``
    mapping kept whole: each is one value)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and key not in ("model_kwargs", "pool_skip"):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def config_differences(
    config: dict[str, Any], reference: dict[str, Any], ignore: frozenset[str] | set[str] = frozenset()
) -> list[str]:
    """The keys of :func:`flat_config` in which the resolved config ``config`` differs from ``reference``, in
    ``reference``'s order: keys one of them lacks, :data:`LOCAL_KEYS` and ``ignore`` do not count; a folder
    dataset's folder name does (as ``data.data_dir``, first). Empty: the two configs train the same run."""
    now, then = flat_config(reference), flat_config(config)
    changed = [k for k in now if k in then and k not in LOCAL_KEYS and k not in ignore and now[k] != then[k]]
    folders = data_folder(reference), data_folder(config)  # the folder a layout was read from, wherever it lives
    if None not in folders and folders[0] != folders[1]:
        changed.insert(0, "data.data_dir")
    return changed


def config_change(planned: dict[str, Any], run_dir: str | os.PathLike) -> str:
    """How the run on disk at ``run_dir`` was trained otherwise than the resolved config ``planned`` would train
    it, e.g. ``optim.epochs 1 where this plan has 2 (and 1 more key(s))``; empty where it was not (see
    :func:`config_differences`); a run without config.yaml was trained with an unknown config, never taken as
    this plan's. Skipping, keeping or resuming a changed run would put its numbers under this plan."""
    if not (Path(run_dir) / "config.yaml").is_file():
        return "an unknown config (its config.yaml is missing)"
    config = read_config(run_dir)
    changed = config_differences(config, planned)
    if not changed:
        return ""
    now, then = flat_config(planned), flat_config(config)
    k, more = changed[0], f" (and {len(changed) - 1} more key(s))" if len(changed) > 1 else ""
    return f"{k} {then[k]!r} where this plan has {now[k]!r}{more}"


def protocol(config: dict[str, Any]) -> dict[str, Any]:
    """What a run's config says about how it was trained and evaluated, beyond its row's own label and its cell:
    the flattened config without :data:`LOCAL_KEYS` and the seed, fold, model and placement. Two runs whose
    protocols differ in a key both hold (epochs, lr, train_subset, ...) are never one row."""
    return {k: v for k, v in flat_config(config).items() if k not in LOCAL_KEYS and k not in _CELL_KEYS}


def curve(history: list[dict[str, Any]], metric: str) -> list[tuple[int, float]]:
    """``(epoch, value)`` of ``metric`` at each evaluated epoch of ``history``."""
    return [(r["epoch"], r[metric]) for r in history if r.get(metric) is not None]


@dataclass(frozen=True)
class Summary:
    """A finished run: what it was (task, model and factory options, dataset, seed, placement) and what its
    final evaluation measured (the task's monitored ``metric`` and every other one)."""

    path: Path
    task: str
    model: str
    model_kwargs: dict[str, Any]
    dataset: str
    seed: int
    metric: str
    mode: str
    final: float
    placement: dict[str, Any]
    final_metrics: dict[str, Any] = field(default_factory=dict)
    best: float | None = None
    params: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def read_summary(run_dir: str | os.PathLike) -> Summary:
    """The run's ``summary.json``, checked to hold every :data:`REQUIRED` field."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise ResultsError(f"{path} is missing: the run has not finished (status {run_status(run_dir)})")
    s = _json(path)
    missing = [k for k in REQUIRED if k not in s]
    monitor = s.get("monitor")
    if not missing and not (isinstance(monitor, dict) and {"metric", "mode"} <= set(monitor)):
        missing = ["monitor.metric/mode"]
    if missing:
        raise ResultsError(
            f"{path} lacks {', '.join(missing)}: not a summary the current poolskip writes; rerun that run"
        )
    if not isinstance(s["final"], (int, float)) or isinstance(s["final"], bool) or not math.isfinite(s["final"]):
        raise ResultsError(f"{path}: 'final' must be a finite number, got {s['final']!r}")
    if not isinstance(s["placement"], dict) or "pool_skip" not in s["placement"]:
        raise ResultsError(f"{path}: 'placement' must be a mapping with 'pool_skip', got {s['placement']!r}")
    return Summary(
        path=Path(run_dir),
        task=s["task"],
        model=s["model"],
        model_kwargs=dict(s["model_kwargs"] or {}),
        dataset=s["dataset"],
        seed=s["seed"],
        metric=monitor["metric"],
        mode=monitor["mode"],
        final=float(s["final"]),
        placement=s["placement"],
        final_metrics=dict(s.get("final_metrics") or {}),
        best=s.get("best"),
        params=s.get("params"),
        raw=s,
    )


def find_runs(paths: list[str | os.PathLike], busy: list[Path] | None = None) -> list[Path]:
    """Finished run directories (holding summary.json) at or below each path, sorted; each once, however many
    of the paths reach it (compared resolved: ``runs`` and ``runs/plain/seed0`` name that run twice). A run
    another process is writing (its lock held: a finished run resumed with more epochs still holds its earlier
    end's summary until its first new checkpoint) is left out, and added to ``busy`` when given."""
    found: dict[Path, Path] = {}
    for p in map(Path, paths):
        if (p / "summary.json").is_file():
            found.setdefault(p.resolve(), p)
        elif p.is_dir():
            for s in p.rglob("summary.json"):
                found.setdefault(s.parent.resolve(), s.parent)
        else:
            raise ResultsError(f"{p} is not a run directory or a directory of runs")
    held = sorted(d for d in found.values() if lock_held(d))
    if busy is not None:
        busy.extend(held)
    done = sorted(d for d in found.values() if d not in held)
    if not done:
        raise ResultsError(f"no finished run (summary.json) under {', '.join(map(str, paths))}: is a run still going?")
    return done


# ------------------------------------------------------------------------------------------ labels


def model_key(model: str, model_kwargs: dict[str, Any]) -> str:
    """What makes two runs' networks the same: :func:`model_label` without the options set to the registered
    factory's own default (``width=64`` written out for resnet18 is resnet18: one network, one row)."""
    import inspect

    from ..models import get_model_entry, list_models

    if model in list_models():
        params = inspect.signature(get_model_entry(model).factory).parameters
        model_kwargs = {k: v for k, v in model_kwargs.items() if k not in params or params[k].default != v}
    return model_label(model, model_kwargs)


def model_label(model: str, model_kwargs: dict[str, Any]) -> str:
    """The model with its factory options as the run's config wrote them, e.g. ``resnet18 (width=16)``."""
    kwargs = ", ".join(f"{k}={v}" for k, v in sorted(model_kwargs.items()))
    return model + (f" ({kwargs})" if kwargs else "")


#: Datasets that are whatever folder ``data_dir`` names (a layout, not one dataset): the folder is part of
#: what a run trained on, though not its path on one machine.
FOLDER_DATASETS = ("imagefolder", "segfolder", "decathlon", "nnunet")


def data_folder(config: dict[str, Any]) -> str | None:
    """The name of the folder a run of a :data:`FOLDER_DATASETS` layout read (e.g. ``cifar10-jpg``), the part
    of its ``data_dir`` that survives moving a results folder to another machine; None for a named dataset."""
    data = config.get("data") or {}
    if data.get("dataset") not in FOLDER_DATASETS or not data.get("data_dir"):
        return None
    return Path(str(data["data_dir"])).expanduser().resolve().name


def dataset_label(dataset: str, config: dict[str, Any]) -> str:
    """The dataset a run of ``config`` trained on (``dataset``, the engine's name) as a reader needs it: a folder
    dataset (``imagefolder``, ``segfolder``) with its directory's name; a Decathlon / nnU-Net raw folder by its
    dataset's name (``Hippocampus``), not by its layout."""
    data_dir = (config.get("data") or {}).get("data_dir")
    if dataset in ("imagefolder", "segfolder") and data_dir:
        return f"{dataset}:{data_folder(config)}"
    if dataset in ("decathlon", "nnunet") and data_dir:
        return _layout_dataset_name(Path(data_dir))
    return dataset


def _layout_dataset_name(root: Path) -> str:
    """The ``name`` in a Decathlon / nnU-Net raw folder's dataset.json (as the 3D task reads it), else the
    folder's name (e.g. ``Task04_Hippocampus``) when the data is not on this machine."""
    try:
        name = json.loads((root.expanduser() / "dataset.json").read_text()).get("name")
    except (OSError, ValueError, AttributeError):
        name = None
    return str(name) if name else root.name


def _computed(placement: dict[str, Any]) -> dict[str, Any]:
    """The placement as its sites compute: one that never pools (the {Conv,Skip} ablation, or the paper's module
    with pool size 1: ``Y + Conv(Y)`` both) is {Conv,Skip} without a pool size, whatever size its config named."""
    sizes = placement.get("pool_size") or []
    variant = placement.get("variant", "full")
    if variant == "full" and sizes and all(e == 1 for s in sizes for e in s):
        variant = "conv_skip"
    if variant != "conv_skip":
        return placement
    return {**{k: v for k, v in placement.items() if k != "pool_size"}, "variant": "conv_skip"}


def placement_key(placement: dict[str, Any]) -> str:
    """A canonical string of a placement: runs group by it, and by what their sites compute (:func:`_computed`)."""
    return json.dumps(_computed(placement), sort_keys=True)


def placement_label(placement: dict[str, Any]) -> str:
    """A readable placement, e.g. ``plain``, ``Pool Skip (official, 16 sites, pool 2)`` or ``Pool Skip
    {Conv,Skip}, depthwise (...)``; every field that differs from the paper's module is named."""
    if not placement.get("pool_skip"):
        return "plain"
    placement = _computed(placement)
    name = "Pool Skip"
    variant = placement.get("variant", "full")
    if variant != "full":
        name += " " + _ABLATIONS.get(variant, str(variant))
    groups = placement.get("groups", 1)
    if groups != 1:
        name += ", " + ("depthwise" if groups == "depthwise" else f"groups={groups}")
    kernel = placement.get("kernel_size", 3)
    if kernel != 3:
        name += f", kernel {kernel}"
    sizes = placement.get("pool_size") or []
    pool = "/".join("x".join(map(str, s)) if len(set(s)) > 1 else str(s[0]) for s in sizes) or "?"
    if placement.get("bias", True) is not True:
        name += ", no bias" if placement["bias"] is False else f", bias {placement['bias']}"
    if placement.get("zero_init"):
        name += ", zero init"
    where = [placement.get("policy") or "every conv", f"{placement.get('sites', '?')} sites"]
    where += [f"pool {pool}"] if variant != "conv_skip" else []  # it never pools
    return f"{name} ({', '.join(map(str, where))})"


def commit_of(summary: Summary) -> str | None:
    """The poolskip commit that trained the run (summary.json's ``versions.poolskip_commit``, recorded where
    poolskip ran from a git checkout); None where it was not recorded."""
    versions = summary.raw.get("versions")
    commit = versions.get("poolskip_commit") if isinstance(versions, dict) else None
    return commit if isinstance(commit, str) and commit else None


def code_note(commits: Sequence[str | None]) -> str:
    """One paragraph naming the code that trained a table's runs (:func:`commit_of` of each): every commit with
    its number of runs; where they are several, that runs are averaged on their config alone, which code changes
    between commits (a model's initialisation, say) are not part of. Empty for no runs."""
    if not commits:
        return ""
    counts = Counter(c[:10] + ("+changes" if c.endswith("+changes") else "") if c else None for c in commits)
    parts = [f"{c} ({_runs(n)})" for c, n in sorted(((c, n) for c, n in counts.items() if c), key=lambda x: -x[1])]
    if counts.get(None):
        parts.append(f"not recorded ({_runs(counts[None])}: poolskip outside a git checkout, or before 2026-12-04)")
    text = "Code: poolskip commit " + ", ".join(parts) + "."
    if len(counts) > 1:
        text += (
            " Runs are grouped by their config.yaml, which a change of code between commits (a model's "
            "initialisation, say) is not part of: a row whose runs come from several commits may mix such changes."
        )
    return text


def _runs(n: int) -> str:
    return f"{n} run" + ("" if n == 1 else "s")
