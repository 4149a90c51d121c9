"""An independent, loop-based implementation of the paper's equation, for tests only.

O = Y + Conv(MaxUnpool(MaxPool(Y))): the block maximum found by a plain Python scan (first maximum in
row-major order wins), the convolution as an explicit sum over kernel offsets. Differentiable, so
gradients can be compared too. Slow: small inputs only.
"""

import itertools
import math

import torch
import torch.nn.functional as F


def block_max_mask(y: torch.Tensor, pool: tuple[int, ...]) -> torch.Tensor:
    """1.0 at the (first) maximum of every pool block of every (n, c) plane, 0.0 elsewhere."""
    spatial = y.shape[2:]
    mask = torch.zeros_like(y)
    blocks = [range(math.ceil(s / e)) for s, e in zip(spatial, pool)]
    for n in range(y.shape[0]):
        for c in range(y.shape[1]):
            plane = y[n, c]
            for b in itertools.product(*blocks):
                ranges = [range(i * e, min((i + 1) * e, s)) for i, e, s in zip(b, pool, spatial)]
                best, best_pos = None, None
                for pos in itertools.product(*ranges):
                    v = plane[pos].item()
                    if best is None or v > best:
                        best, best_pos = v, pos
                mask[(n, c, *best_pos)] = 1.0
    return mask


def conv_same(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, groups: int = 1) -> torch.Tensor:
    """Stride-1 'same' convolution as a sum over kernel offsets (no F.conv); ``groups`` split the channels.

    Group g maps input channels [g*Cin/G, (g+1)*Cin/G) to output channels [g*Cout/G, (g+1)*Cout/G).
    """
    if groups > 1:
        cin, cout = x.shape[1] // groups, weight.shape[0] // groups
        parts = [
            conv_same(
                x[:, g * cin : (g + 1) * cin],
                weight[g * cout : (g + 1) * cout],
                None if bias is None else bias[g * cout : (g + 1) * cout],
            )
            for g in range(groups)
        ]
        return torch.cat(parts, dim=1)
    kernel = weight.shape[2:]
    pad = [k // 2 for k in kernel]
    xp = F.pad(x, [p for p in reversed(pad) for _ in (0, 1)])
    spatial = x.shape[2:]
    out = torch.zeros(x.shape[0], weight.shape[0], *spatial, dtype=x.dtype)
    for offset in itertools.product(*[range(k) for k in kernel]):
        window = xp[(slice(None), slice(None), *[slice(o, o + s) for o, s in zip(offset, spatial)])]
        w = weight[(slice(None), slice(None), *offset)]  # (Cout, Cin)
        out = out + torch.einsum("oc,nc...->no...", w, window)
    if bias is not None:
        out = out + bias.view(1, -1, *([1] * len(spatial)))
    return out


def reference_pool_skip(y, weight, bias, pool, variant="full", groups=1):
    pooled = y * block_max_mask(y.detach(), pool) if any(e > 1 for e in pool) else y
    if variant == "full":
        return y + conv_same(pooled, weight, bias, groups)
    if variant == "pool_skip":
        return y + pooled
    if variant == "conv_skip":
        return y + conv_same(y, weight, bias, groups)
    if variant == "pool_conv":
        return conv_same(pooled, weight, bias, groups)
    raise ValueError(variant)
