"""Saving a matplotlib figure the one way every report and reproduction picture is saved, and the class
legend of label-map pictures."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path


def save_figure(fig, path, dpi: int = 120) -> Path:
    """``fig`` laid out tightly, written to ``path`` (parent folders made) at ``dpi``, then closed; what lies
    outside the panels (a legend below them) is kept."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def add_class_legend(
    fig,
    maps: Iterable,
    classes: Sequence[str] | None,
    colour: Callable[[int], Sequence[float]],
    skip: Iterable[int] = (),
    extra: dict[int, str] | None = None,
) -> list[str]:
    """A legend below ``fig``'s panels: each class that occurs in the label maps ``maps`` (tensors) in its
    colour, ``colour(k)`` an RGB(A) tuple in [0, 1]; named ``classes[k]`` (``class k`` past the list), values in
    ``extra`` by their own name (e.g. ``{255: "ignored"}``), values in ``skip`` left out. Returns the labels."""
    from matplotlib.patches import Patch

    extra = extra or {}
    present = sorted(set().union(*(set(m.unique().tolist()) for m in maps)) - set(skip))
    labels = [
        extra.get(k) or (classes[k] if classes is not None and k < len(classes) else f"class {k}") for k in present
    ]
    if labels:
        handles = [Patch(facecolor=colour(k), edgecolor="0.5", linewidth=0.5) for k in present]
        fig.legend(
            handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(labels), 6), fontsize=8,
            frameon=False,
        )  # fmt: skip
    return labels
