"""The 3D case of the CUDA tests, with cuDNN's TF32 on and off, against float64 on the CPU (run on the H200 as
.device/diag.py; lines split for the linter since)."""

import torch

from poolskip.functional import pool_unpool_conv, pool_unpool_conv_reference

g = torch.Generator().manual_seed(0)
y = torch.randn(2, 4, 5, 6, 7, generator=g)
w = torch.randn(4, 4, 3, 3, 3, generator=g) * 0.3
b = torch.randn(4, generator=g)
ref = pool_unpool_conv_reference(y.double(), w.double(), b.double(), 2)
for tf32 in (True, False):
    torch.backends.cudnn.allow_tf32 = tf32
    for name, fn in (("ours", pool_unpool_conv), ("plain", pool_unpool_conv_reference)):
        out = fn(y.cuda(), w.cuda(), b.cuda(), 2).double().cpu()
        print(f"3D cudnn.allow_tf32={tf32} {name}: max |out - float64 CPU| = {(out - ref).abs().max().item():.3g}")
