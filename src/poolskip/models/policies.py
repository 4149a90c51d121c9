"""Placement policies for the paper's networks, registered with :func:`poolskip.convert.register_policy`.

Besides the built-in ``every_conv`` (Table 1's wording) and ``official`` (the official ResNet code):

- ``deep_resnet``: Fig. 3's deep ResNets: the residual-branch convs of every block (``conv1``..``conv3``,
  not the stem, not the shortcuts), pool 4 by default (the CIFAR-100 runs); pass ``pool_size=2`` for
  the CIFAR-10 runs. On bottleneck ResNets it is the ``official`` placement.
- ``tokenizer``: Table 5's vision transformers: only the convs of the convolutional tokenizer (patch
  generation), i.e. convs inside a module named ``tokenizer``; pool 2.
"""

from __future__ import annotations

from torch import nn

from ..convert import Policy, get_policy, list_policies, register_policy

__all__ = ["DEEP_RESNET", "TOKENIZER"]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _deep_resnet(model: nn.Module) -> dict[str, int | None]:
    return dict.fromkeys(get_policy("official").select(model), 4)


def _tokenizer(model: nn.Module) -> dict[str, int | None]:
    return {
        name: 2 for name, m in model.named_modules() if isinstance(m, _CONVS) and "tokenizer" in name.split(".")[:-1]
    }


DEEP_RESNET = Policy(
    "deep_resnet",
    "Fig. 3's deep ResNets: residual-branch convs (conv1..conv3) of every block, pool 4 "
    "(the CIFAR-100 runs; pool_size=2 for CIFAR-10); not the stem, not the shortcuts",
    _deep_resnet,
)
TOKENIZER = Policy(
    "tokenizer",
    "Table 5's vision transformers: only the convs of the convolutional tokenizer (patch generation), pool 2",
    _tokenizer,
)

for _policy in (DEEP_RESNET, TOKENIZER):
    if _policy.name not in list_policies():  # importing twice (e.g. a reload) must not fail
        register_policy(_policy)
