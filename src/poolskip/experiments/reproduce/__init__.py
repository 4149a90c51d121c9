"""``poolskip reproduce``: one command per table and figure of the paper (being split by concern)."""

from .tables import *  # noqa: F403
from .tables import __all__  # noqa: F401
