"""Two gloo processes: the segmentation task's evaluation all-reduces one confusion matrix (same mIoU as one
process) and their training shares add up to the one-process batch."""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from poolskip.dist import Dist
from poolskip.engine import build_task
from poolskip.engine.config import make_config
from seg_layouts import make_camvid


def _cfg(root, cache):
    return make_config(
        {
            "task": "segmentation", "dataset": "camvid", "data_dir": str(root), "cache_dir": str(cache),
            "batch_size": 4, "eval_batch_size": 1, "seed": 5,
            "segmentation": {"crop_size": [13, 15], "eval_split": "test", "color_jitter": 0.2},
        }
    )  # fmt: skip


def _model():
    torch.manual_seed(0)
    return nn.Conv2d(3, 11, 3, padding=1)


def _worker(rank, world, port, root, cache, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        task = build_task(_cfg(root, cache), Dist(rank, world))
        with torch.no_grad():
            metrics = task.evaluate(_model(), lambda: torch.autocast("cpu", enabled=False))
        batch = next(iter(task.train_batches(1)))
        torch.save({"metrics": metrics, "inputs": batch.inputs, "targets": batch.targets}, f"{out}/{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_give_one_process_metrics_and_batches(tmp_path):
    root = make_camvid(tmp_path / "camvid", counts={"train": 8, "test": 3}, size=(16, 20))
    build_task(_cfg(root, tmp_path / "cache"))  # decode once, before the workers
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # fork: the workers inherit the imported modules (spawn would import torch twice more)
    mp.start_processes(_worker, args=(2, port, root, tmp_path / "cache", tmp_path), nprocs=2, start_method="fork")
    one = build_task(_cfg(root, tmp_path / "cache"))
    with torch.no_grad():
        expect = one.evaluate(_model(), lambda: torch.autocast("cpu", enabled=False))
    batch = next(iter(one.train_batches(1)))
    parts = [torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in range(2)]
    for p in parts:  # 3 test images split 2/1 over the ranks, yet every rank reports the whole split
        assert p["metrics"]["miou"] == expect["miou"] and p["metrics"]["class_iou"] == expect["class_iou"]
        assert abs(p["metrics"]["eval_loss"] - expect["eval_loss"]) < 1e-6
    torch.testing.assert_close(torch.cat([p["inputs"] for p in parts]), batch.inputs)
    assert torch.equal(torch.cat([p["targets"] for p in parts]), batch.targets)
