"""Pool Skip (Sun et al., AAAI 2025) for any PyTorch network.

``PoolSkip`` is the module, ``convert`` retrofits it after the convolutions of an existing model.
"""

from .convert import (
    ConvertReport,
    Policy,
    convert,
    get_policy,
    list_policies,
    load_plain_state_dict,
    register_policy,
    unconvert,
)
from .module import VARIANTS, PoolSkip, PoolSkip1d, PoolSkip2d, PoolSkip3d

__version__ = "0.1.0"

__all__ = [
    "VARIANTS",
    "ConvertReport",
    "Policy",
    "PoolSkip",
    "PoolSkip1d",
    "PoolSkip2d",
    "PoolSkip3d",
    "convert",
    "get_policy",
    "list_policies",
    "load_plain_state_dict",
    "register_policy",
    "unconvert",
]
