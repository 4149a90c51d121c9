"""Saving a matplotlib figure the one way every report and reproduction picture is saved."""

from __future__ import annotations

from pathlib import Path


def save_figure(fig, path, dpi: int = 120) -> Path:
    """``fig`` laid out tightly, written to ``path`` (parent folders made) at ``dpi``, then closed."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
