"""``poolskip train``: a recipe + command-line overrides -> one run directory per seed.

    poolskip train --recipe devries_taylor --model resnet18 --dataset cifar10 --data-dir DATA --seeds 0 1 2
    torchrun --nproc_per_node=2 -m poolskip train ...        # DDP, same global batch
    poolskip train --resume runs/NAME/seed0                  # continue an interrupted run

Precedence: the config defaults < ``--recipe`` < named flags < ``--set key=value``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

#: flag -> config key, for the options people change most; every other key goes through --set.
FLAGS = {
    "model": str,
    "dataset": str,
    "data_dir": str,
    "epochs": int,
    "batch_size": int,
    "lr": float,
    "out_dir": str,
    "run_name": str,
    "device": str,
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", help="built-in recipe name (devries_taylor, official) or a YAML file")
    for key, typ in FLAGS.items():
        p.add_argument("--" + key.replace("_", "-"), dest=key, type=typ, help=f"config key {key}")
    p.add_argument("--download", action="store_true", default=None, help="fetch CIFAR into --data-dir if missing")
    p.add_argument(
        "--pool-skip",
        dest="pool_skip",
        type=yaml.safe_load,
        help="true (the paper's placement), a policy name, a pool size; omit for the plain model",
    )
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, help="one run with this seed")
    seeds.add_argument("--seeds", type=int, nargs="+", help="one run directory per seed, in turn")
    p.add_argument(
        "--set", dest="sets", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help="any config key (YAML)"
    )
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")


def overrides(args: argparse.Namespace) -> dict:
    """The config keys set by named flags and --set (the latter win)."""
    from ..engine.config import parse_set

    out = {
        key: getattr(args, key) for key in [*FLAGS, "download", "pool_skip", "seed"] if getattr(args, key) is not None
    }
    out.update(parse_set(args.sets))
    return out


def run(args: argparse.Namespace) -> int:
    from ..data import DatasetError
    from ..engine import distributed
    from ..engine.config import ConfigError, make_config
    from ..engine.trainer import NonFiniteLoss, load_run_config, train
    from .recipes import load_recipe

    try:
        if args.resume:
            if args.recipe or args.seeds:
                raise ConfigError("--resume continues one run with its own config: drop --recipe/--seeds")
            cfg = load_run_config(args.resume, overrides(args))
            train(cfg, args.resume, resume=True)
            return 0
        recipe = load_recipe(args.recipe) if args.recipe else {}
        cfg = make_config(recipe, overrides(args))
        seeds = args.seeds or [cfg.seed]
        dinfo = distributed.setup(cfg.device)
        name = cfg.run_name or distributed.broadcast(
            f"{time.strftime('%Y%m%d-%H%M%S')}_{cfg.dataset}_{cfg.model.rpartition(':')[2]}_{cfg.variant}"
        )
        for seed in seeds:
            seed_cfg = make_config(cfg.to_dict(), {"seed": seed})
            run_dir = Path(cfg.out_dir) / name / f"seed{seed}"
            if dinfo.is_main:
                print(f"run {run_dir}", flush=True)
            train(seed_cfg, run_dir)
        return 0
    except (ConfigError, DatasetError, NonFiniteLoss) as e:
        print(f"poolskip train: error: {e}", file=sys.stderr)
        return 1
    finally:
        distributed.teardown()
