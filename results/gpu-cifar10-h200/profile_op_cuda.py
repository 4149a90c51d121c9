"""Ours against the paper's formulation on CUDA, 5 forward+backward of batch 128, under torch.profiler (run on the
H200 as .device/prof.py; imports sorted for the linter since)."""

import torch
from torch.profiler import ProfilerActivity, profile

from poolskip.functional import pool_unpool_conv, pool_unpool_conv_reference

g = torch.Generator().manual_seed(0)
for C, S in ((64, 32), (256, 8)):
    y = torch.randn(128, C, S, S, generator=g).cuda().requires_grad_()
    w = (torch.randn(C, C, 3, 3, generator=g) * 0.02).cuda().requires_grad_()
    b = torch.zeros(C).cuda().requires_grad_()
    gr = torch.randn(y.shape, generator=g).cuda()
    for name, fn in (("ours", pool_unpool_conv), ("plain", pool_unpool_conv_reference)):
        for _ in range(3):
            torch.autograd.grad(fn(y, w, b, 2), (y, w, b), gr)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
            for _ in range(5):
                torch.autograd.grad(fn(y, w, b, 2), (y, w, b), gr)
            torch.cuda.synchronize()
        print(f"== {name} C={C} S={S}")
        print(p.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=50))
