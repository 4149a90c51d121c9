"""Diagnostics for elimination singularities: weight sparsity, dead units and gradient flow per layer.

``diagnose(model, inputs, targets)`` probes any ``nn.Module`` and returns a :class:`Diagnosis` (layers
and activation sites in forward order); ``probe_measures`` gives its flat summary for training logs and
``ProbeMonitor`` logs it every N epochs as a training-loop callback;
``write_report`` writes CSVs and the Fig. 4 style plots for several models at once.
"""

from .measures import NEAR_ZERO_TOL, channel_measures, hoyer, l2_l1, near_zero, near_zero_threshold
from .probe import (
    ACTIVATION_TYPES,
    WEIGHT_TYPES,
    ActivationStats,
    Diagnosis,
    LayerStats,
    ProbeMonitor,
    diagnose,
    probe_measures,
)
from .report import (
    plot_dead_units,
    plot_grad_norms,
    plot_hoyer,
    plot_l2_l1,
    report_files,
    write_csv,
    write_report,
)

__all__ = [
    "ACTIVATION_TYPES",
    "NEAR_ZERO_TOL",
    "WEIGHT_TYPES",
    "ActivationStats",
    "Diagnosis",
    "LayerStats",
    "ProbeMonitor",
    "channel_measures",
    "diagnose",
    "hoyer",
    "l2_l1",
    "near_zero",
    "near_zero_threshold",
    "plot_dead_units",
    "plot_grad_norms",
    "plot_hoyer",
    "plot_l2_l1",
    "probe_measures",
    "report_files",
    "write_csv",
    "write_report",
]
