"""The channels_last micro-benchmark of README.md: forward + backward + SGD step of batch 128 (random data),
one torch thread, samples/s over 4 steps after one warm-up step, with and without channels_last."""

import time

import torch

from poolskip.models import create_model

torch.set_num_threads(1)


def bench(m, bs, cl, n=4):
    x = torch.randn(bs, 3, 32, 32)
    y = torch.randint(0, 10, (bs,))
    if cl:
        m = m.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    for i in range(n + 1):
        if i == 1:
            t = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    return bs * n / (time.perf_counter() - t)


for cl in (False, True, False, True):
    print("vgg16 w8 channels_last", cl, round(bench(create_model("vgg16", width=8), 128, cl)), flush=True)
for name, ps in [("vgg16", True), ("resnet18", None), ("mobilenet", None)]:
    for cl in (False, True):
        print(
            name,
            "pool_skip" if ps else "plain",
            "w8 channels_last",
            cl,
            round(bench(create_model(name, pool_skip=ps, width=8), 128, cl)),
            flush=True,
        )
