"""Top-1 error of a classifier, as a count that sums across batches and processes, then a percentage.

The count is a plain tensor so an evaluation adds it over batches and all-reduces it once (with the number
of samples) under ``torchrun``; :func:`top1_error` turns the totals into the reported number. It equals
``100 * (1 - torchmetrics' multiclass_accuracy(average="micro"))`` (checked in the tests), which takes as
long (``benchmarks/bench_metrics.py``) but returns a rate, not a count that sums across processes, and
would make torchmetrics a dependency of training for one arg-max comparison.
"""

from __future__ import annotations

import torch

__all__ = ["top1_error", "top1_wrong"]


def top1_wrong(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The number of samples whose highest-scoring class is not the target: an int64 0-d tensor.

    ``outputs`` are scores (logits or probabilities) of shape (N, C, ...), ``targets`` class indices of
    shape (N, ...). Ties go to the lowest class index, as ``argmax`` does.
    """
    return (outputs.argmax(1) != targets).sum()


def top1_error(wrong: float | torch.Tensor, total: float | torch.Tensor) -> float:
    """Top-1 error in percent from the summed :func:`top1_wrong` counts and the number of samples (NaN if none)."""
    wrong, total = float(wrong), float(total)
    return 100.0 * wrong / total if total > 0 else float("nan")
