"""torch.distributed in a few honest lines: ``torchrun`` sets RANK/WORLD_SIZE/LOCAL_RANK, we read them."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ..dist import Dist


def parse_device(name: str) -> torch.device | None:
    """``torch.device(name)``, or None where ``name`` is not a device's name (its syntax only: whether this
    machine has it is :func:`resolve_device`'s check)."""
    try:
        return torch.device(name)
    except (RuntimeError, TypeError):
        return None


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA if there is a GPU, else CPU; asking for CUDA without a GPU is a ConfigError."""
    from .config import ConfigError

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = parse_device(device)
    if dev is None:
        raise ConfigError(f"device {device!r} is not a device; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but this machine has no CUDA GPU; use cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise ConfigError(f"device {device!r}: this machine has {n} CUDA GPU(s), cuda:0 to cuda:{n - 1}")
    return dev


def setup(device: str = "auto") -> Dist:
    """Pick the device (:func:`resolve_device`) and, under torchrun, join the process group (NCCL on CUDA, gloo
    on CPU)."""
    device = str(resolve_device(device))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Dist(device=torch.device(device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world_size, dev, local_rank)


def broadcast(obj):
    """Rank 0's ``obj`` on every process (identity without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
