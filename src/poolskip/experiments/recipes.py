"""The paper's training recipes, as YAML files shipped in the package (``recipes/*.yaml``).

A recipe is a mapping of :class:`~poolskip.engine.config.TrainConfig` keys. ``--recipe`` takes a
built-in name or the path of your own YAML file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..engine.config import ConfigError, read_yaml
from ..errors import did_you_mean

RECIPE_DIR = Path(__file__).resolve().parent / "recipes"


def list_recipes() -> list[str]:
    """Names of the built-in recipes."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def load_recipe(name_or_path: str) -> dict[str, Any]:
    """The config mapping of a built-in recipe (by name) or of a YAML file (by path)."""
    builtin = RECIPE_DIR / f"{name_or_path}.yaml"
    if builtin.is_file():
        return read_yaml(builtin)
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return read_yaml(path)
    raise ConfigError(
        f"unknown recipe {name_or_path!r}{did_you_mean(name_or_path, list_recipes())}: built-in recipes are "
        f"{list_recipes()}, or give a YAML path"
    )
