"""``poolskip train``: a recipe + command-line overrides -> one run directory per seed.

    poolskip train --recipe devries_taylor --model resnet18 --dataset cifar10 --data-dir DATA --seeds 0 1 2
    torchrun --nproc_per_node=2 -m poolskip train ...        # DDP, same global batch
    poolskip train --resume runs/NAME/seed0                  # continue an interrupted run
    poolskip train --recipe digits --print-config            # the resolved config, nothing run
    poolskip train --recipe hippocampus --data-dir DIR --folds   # 5-fold cross-validation (segmentation3d)

Precedence: the config defaults < ``--recipe`` < named flags < ``--set key=value``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import yaml

from ..engine import distributed
from ..engine.config import ConfigError, TrainConfig, describe_keys, make_config, parse_set
from ..engine.placement import placement_name
from ..engine.rundir import RunDir, confine, new_run_dir, remove_empty_dirs
from ..engine.trainer import load_run_config, train
from ..errors import repeated
from ..experiments.folds3d import fold_list, plan_folds, run_folds
from ..experiments.recipes import list_recipes, load_recipe
from ..tasks import list_tasks

#: flag -> (config key, type): the options people change most; every other key goes through --set.
FLAGS = {
    "task": ("task", str),
    "model": ("model", str),
    "dataset": ("data.dataset", str),
    "data_dir": ("data.data_dir", str),
    "epochs": ("optim.epochs", int),
    "batch_size": ("optim.batch_size", int),
    "lr": ("optim.lr", float),
    "out_dir": ("run.out_dir", str),
    "run_name": ("run.run_name", str),
    "device": ("run.device", str),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    helps = {key: text for key, _, text in describe_keys()}
    p.add_argument(
        "--recipe", help=f"a built-in recipe ({', '.join(list_recipes())}) or the path of your own YAML file"
    )
    for flag, (key, typ) in FLAGS.items():
        text = helps.get(key, "")
        if flag == "task":
            text = f"what is trained: {', '.join(list_tasks())} (default: classification)"
        p.add_argument("--" + flag.replace("_", "-"), dest=flag, type=typ, help=f"{text} [{key}]")
    p.add_argument("--download", action="store_true", default=None, help=helps["data.download"])
    p.add_argument(
        "--pool-skip",
        dest="pool_skip",
        help="true (the paper's placement), a policy name, a pool size; omit for the plain model [pool_skip]",
    )
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, help="one run with this seed [run.seed]")
    seeds.add_argument("--seeds", type=int, nargs="+", help="one run directory per seed, in turn")
    p.add_argument(
        "--set", dest="sets", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
        help="any config key, as key=value (YAML value; key bare like lr or grouped like optim.lr)",
    )  # fmt: skip
    p.add_argument(
        "--resume", metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its last checkpoint (one stopped before its first: start it afresh)",
    )  # fmt: skip
    p.add_argument(
        "--overwrite", action="store_true",
        help="replace a run that already exists in the run directory (with --folds: train every named fold afresh)",
    )  # fmt: skip
    p.add_argument(
        "--allow-external-model",
        action="store_true",
        help="with --resume: import the package.module:factory model the run's config names (it runs that code)",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config (YAML) and exit")
    p.add_argument(
        "--folds", type=int, nargs="*", metavar="K",
        help="segmentation3d: train (or resume) these cross-validation folds, all when none are named, into "
        "RUN_DIR/seed<N>/fold<K> with one shared splits file; finished folds are kept, a fold stopped before "
        "its first checkpoint is trained afresh",
    )  # fmt: skip


def overrides(args: argparse.Namespace) -> dict:
    """The config keys set by named flags and --set (the latter win)."""
    out = {key: getattr(args, flag) for flag, (key, _) in FLAGS.items() if getattr(args, flag) is not None}
    for flag, key in (("download", "data.download"), ("seed", "run.seed")):
        if getattr(args, flag) is not None:
            out[key] = getattr(args, flag)
    if args.pool_skip is not None:  # YAML: true, a policy name, a pool size or a mapping
        try:
            out["pool_skip"] = yaml.safe_load(args.pool_skip)
        except yaml.YAMLError as e:
            reason = str(e).splitlines()[0]
            raise ConfigError(f"--pool-skip {args.pool_skip!r} is not valid YAML ({reason})") from None
    out.update(parse_set(args.sets))
    return out


def print_config(cfg: TrainConfig) -> None:
    """The resolved config as YAML, each section's keys commented with what they mean."""
    helps = {key: text for key, _, text in describe_keys(cfg.task)}
    for key, value in cfg.to_dict().items():
        if isinstance(value, dict) and key != "model_kwargs":
            print(f"{key}:")
            for sub, v in value.items():
                line = yaml.safe_dump({sub: v}, default_flow_style=True, width=10_000).strip()[1:-1]
                text = helps.get(f"{key}.{sub}", "")
                print(f"  {line}  # {text}" if text else f"  {line}")
        else:
            line = yaml.safe_dump({key: value}, default_flow_style=True, width=10_000).strip()[1:-1]
            print(f"{line}  # {helps.get(key, '')}")


def _callbacks(cfg: TrainConfig) -> list:
    if cfg.run.diagnostics_every <= 0:
        return []
    from ..diagnostics import ProbeMonitor

    return [ProbeMonitor(cfg.run.diagnostics_every)]


def run(args: argparse.Namespace) -> int:
    try:
        if args.resume:
            if args.recipe or args.seeds or args.overwrite:
                raise ConfigError("--resume continues one run with its own config: drop --recipe/--seeds/--overwrite")
            RunDir(args.resume).check(resume=True)  # before its config is read through a link, or not there
            cfg = load_run_config(args.resume, overrides(args))
            if args.print_config:
                print_config(cfg)
                return 0
            if RunDir(args.resume).restarts():
                print(
                    f"{args.resume} stopped before its first checkpoint: starting it afresh with its config", flush=True
                )
            external_ok = args.allow_external_model or args.model is not None
            train(cfg, args.resume, resume=True, callbacks=_callbacks(cfg), allow_external_model=external_ok)
            return 0
        recipe = load_recipe(args.recipe) if args.recipe else {}
        cfg = make_config(recipe, overrides(args))
        if args.print_config:
            print_config(cfg)
            return 0
        seeds = args.seeds or [cfg.run.seed]
        twice = repeated(seeds)
        if twice:
            raise ConfigError(f"--seeds names seed {twice[0]} twice; each seed is one run directory, name it once")
        if args.folds is not None:
            fold_list(cfg, args.folds)
        dinfo = distributed.setup(cfg.run.device)
        return _train_seeds(args, cfg, seeds, dinfo)
    finally:
        distributed.teardown()


def _train_seeds(args: argparse.Namespace, cfg: TrainConfig, seeds: list[int], dinfo) -> int:
    """Every seed's run directory is checked before the first trains; a start that fails leaves no directory
    it made (the run itself writes nothing before its inputs were read and its model built)."""
    out = Path(cfg.run.out_dir)
    placed = placement_name(cfg.model, cfg.pool_skip)
    default = f"{time.strftime('%Y%m%d-%H%M%S')}_{cfg.data.dataset}_{cfg.model.rpartition(':')[2]}_{placed}"
    named, there = cfg.run.run_name is not None, _existing(out)
    if named:
        root = new_run_dir(out, cfg.run.run_name, default)
    else:  # rank 0 claims a fresh directory; the others learn its name
        root = Path(distributed.broadcast(str(new_run_dir(out, None, default)) if dinfo.is_main else ""))
    # on failure, the directories this command made and left empty go; what was there before stays
    keep = {seed: _existing(root / f"seed{seed}") if named else there for seed in seeds}
    try:
        for seed in seeds:
            run_dir = root / f"seed{seed}"
            if os.path.lexists(run_dir):
                confine(run_dir, out)
            if args.folds is not None:
                plan_folds(cfg, run_dir, args.folds, args.overwrite)
            else:
                RunDir(run_dir).check(resume=False, overwrite=args.overwrite)
        for seed in seeds:
            seed_cfg = make_config(cfg.to_dict(), {"run.seed": seed})
            run_dir = root / f"seed{seed}"
            if args.folds is not None:
                run_folds(seed_cfg, run_dir, folds=args.folds, overwrite=args.overwrite)
            else:
                train(seed_cfg, run_dir, overwrite=args.overwrite, callbacks=_callbacks(seed_cfg))
    except BaseException:
        if dinfo.is_main:
            for seed in seeds:
                remove_empty_dirs(root / f"seed{seed}", keep[seed])
        raise
    return 0


def _existing(path: Path) -> Path:
    """``path`` or the nearest of its parents that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
