"""The Compact-Transformers CIFAR models (Hassani et al. 2021, SHI-Labs): ViT-Lite, CVT and CCT.

All three are a convolutional ``tokenizer`` followed by the same pre-norm transformer encoder
(``TransformerClassifier``): learnable position embedding, ``num_layers`` layers of multi-head
self-attention (qkv without bias) and a GELU MLP, stochastic depth rising linearly to 0.1, a final
LayerNorm and a linear head. They differ in the tokenizer and the readout:

- ViT-Lite ``vit_7_4_32``: 4x4 patches (Conv2d k4 s4 with bias, 64 tokens), a class token;
- CVT ``cvt_7_4_32``: the same patches, sequence pooling (attention-weighted mean of the tokens);
- CCT ``cct_7_3x1_32``: Conv2d(k3, s1, p1, no bias) + ReLU + MaxPool(3, s2, p1) (256 tokens), sequence pooling.

Names: 7 layers, 4 heads, 3x1 = one tokenizer conv of kernel 3, 32 = input size; dim 256, MLP ratio 2.
Pool Skip goes only into the tokenizer (the ``tokenizer`` policy, pool 2), as in the paper's Table 5.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._registry import register_model

__all__ = ["Attention", "CompactTransformer", "EncoderLayer", "Tokenizer", "cct_7_3x1_32", "cvt_7_4_32", "vit_7_4_32"]


class Tokenizer(nn.Module):
    """Image -> tokens: one conv (+ optional ReLU and 3x3/s2 max-pool), flattened to (N, H*W, C)."""

    def __init__(
        self,
        dim: int,
        kernel_size: int,
        stride: int,
        padding: int,
        bias: bool,
        relu_pool: bool,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, dim, kernel_size, stride, padding, bias=bias)
        self.act = nn.ReLU(inplace=True) if relu_pool else nn.Identity()
        self.pool = nn.MaxPool2d(3, 2, 1) if relu_pool else nn.Identity()
        nn.init.kaiming_normal_(self.conv.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.act(self.conv(x))).flatten(2).transpose(1, 2)

    def num_tokens(self, image_size: int) -> int:
        """Tokens produced for a square ``image_size`` input."""
        conv = self.conv
        side = (image_size + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1
        if isinstance(self.pool, nn.MaxPool2d):
            side = (side + 2 * self.pool.padding - self.pool.kernel_size) // self.pool.stride + 1
        return side * side


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample with probability ``p`` in training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Attention(nn.Module):
    """Multi-head self-attention: qkv projection without bias, attention dropout, output projection."""

    def __init__(self, dim: int, num_heads: int, attention_dropout: float = 0.1, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attention_dropout = attention_dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        n, t, c = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        p = self.attention_dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(n, t, c)))


class EncoderLayer(nn.Module):
    """Compact-Transformers' encoder layer: ``x + attn(LN(x))``, then LN, then ``+ MLP`` (GELU)."""

    def __init__(
        self, dim: int, num_heads: int, mlp_dim: int, dropout: float, attention_dropout: float, drop_path: float
    ) -> None:
        super().__init__()
        self.pre_norm = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, num_heads, attention_dropout, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, mlp_dim)
        self.activation = nn.GELU()  # a module, not F.gelu: diagnostics watch activation modules (no parameters)
        self.dropout1 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(mlp_dim, dim)
        self.dropout2 = nn.Dropout(dropout)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm1(x + self.drop_path(self.self_attn(self.pre_norm(x))))
        return x + self.drop_path(self.dropout2(self.linear2(self.dropout1(self.activation(self.linear1(x))))))


class CompactTransformer(nn.Module):
    """``tokenizer`` -> position embedding -> encoder ``blocks`` -> ``norm`` -> readout -> ``fc``.

    The readout is the class token (``seq_pool=False``) or ``attention_pool``, sequence pooling.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        num_classes: int = 10,
        image_size: int = 32,
        dim: int = 256,
        num_layers: int = 7,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        seq_pool: bool = True,
        dropout: float = 0.0,
        attention_dropout: float = 0.1,
        stochastic_depth: float = 0.1,
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        tokens = tokenizer.num_tokens(image_size)
        self.seq_pool = seq_pool
        if seq_pool:
            self.attention_pool = nn.Linear(dim, 1)
        else:
            self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
            tokens += 1
        self.pos_embedding = nn.Parameter(torch.empty(1, tokens, dim))
        self.dropout = nn.Dropout(dropout)
        rates = torch.linspace(0, stochastic_depth, num_layers, device="cpu").tolist()
        self.blocks = nn.Sequential(
            *(EncoderLayer(dim, num_heads, int(dim * mlp_ratio), dropout, attention_dropout, r) for r in rates)
        )
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.pos_embedding, std=0.2)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.tokenizer(x)
        if not self.seq_pool:
            x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], 1)
        x = self.norm(self.blocks(self.dropout(x + self.pos_embedding)))
        if self.seq_pool:
            x = (self.attention_pool(x).softmax(1).transpose(1, 2) @ x).squeeze(1)
        else:
            x = x[:, 0]
        return self.fc(x)


def _patches(dim: int, in_channels: int) -> Tokenizer:
    """ViT's and CVT's tokenizer: non-overlapping 4x4 patches (Conv2d k4 s4 with bias), 64 tokens of 32x32."""
    return Tokenizer(dim, 4, 4, 0, bias=True, relu_pool=False, in_channels=in_channels)


def _conv_pool(dim: int, in_channels: int) -> Tokenizer:
    """CCT's tokenizer: Conv2d(k3, s1, p1, no bias) + ReLU + MaxPool(3, s2, p1), 256 tokens of 32x32."""
    return Tokenizer(dim, 3, 1, 1, bias=False, relu_pool=True, in_channels=in_channels)


def _model(name: str, doc: str, tokenizer: Callable[[int, int], Tokenizer], seq_pool: bool) -> Callable[..., nn.Module]:
    """Register one of the three models: ``tokenizer(dim, in_channels)`` and the readout are what differ."""

    def factory(
        num_classes: int = 10,
        in_channels: int = 3,
        dim: int = 256,
        num_layers: int = 7,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
    ) -> CompactTransformer:
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be a multiple of num_heads {num_heads}")
        return CompactTransformer(
            tokenizer(dim, in_channels),
            num_classes,
            dim=dim,
            num_layers=num_layers,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            seq_pool=seq_pool,
        )

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = (
        f"{doc}\n``dim``/``num_layers``/``num_heads``/``mlp_ratio`` size the encoder (defaults: the paper's 7-layer\n"
        "model; Compact Transformers' smallest CIFAR size, 2, is ``dim=128, num_layers=2, num_heads=2, mlp_ratio=1``)."
    )
    return register_model(pool_skip={"policy": "tokenizer"})(factory)


vit_7_4_32 = _model(
    "vit_7_4_32",
    'ViT-Lite 7/4 (4x4 patches, class token); paper: Table 5 "ViT", tokenizer conv only (``tokenizer``, pool 2).',
    _patches,
    seq_pool=False,
)
cvt_7_4_32 = _model(
    "cvt_7_4_32",
    'CVT 7/4 (4x4 patches, sequence pooling); paper: Table 5 "CVT", tokenizer conv only (``tokenizer``, pool 2).',
    _patches,
    seq_pool=True,
)
cct_7_3x1_32 = _model(
    "cct_7_3x1_32",
    'CCT 7/3x1 (conv-ReLU-pool tokenizer, sequence pooling); paper: Table 5 "CCT", ``tokenizer`` policy, pool 2.',
    _conv_pool,
    seq_pool=True,
)
