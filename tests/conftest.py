"""Fixtures shared by several test files, and torch's threads under pytest-xdist."""

import os

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # `pytest -n N`: the cores shared out, not N x all of them
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


@pytest.fixture
def one_thread():
    """Small tensors: one torch thread is faster than two fighting over a busy shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
