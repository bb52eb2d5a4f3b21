"""Figure plumbing shared by the diagnostic plots: matplotlib without pyplot, saved as PNG/SVG/PDF.

Figures are built on the Agg canvas directly (no global pyplot state, no display needed), so plots
work in scripts, tests and servers alike. matplotlib and Pillow are the ``viz`` extra.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sciattr.errors import InputError, describe, require

__all__ = ["FORMATS", "figure_image", "new_figure", "save_figure"]

#: File types the plot functions write, by suffix.
FORMATS = (".png", ".svg", ".pdf")


def new_figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (6.0, 4.0)):
    """A matplotlib ``Figure`` on an Agg canvas and its axes array (always 2-D)."""
    figure_mod = require("matplotlib.figure", "viz")
    agg = require("matplotlib.backends.backend_agg", "viz")
    fig = figure_mod.Figure(figsize=size, layout="constrained")
    agg.FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save_figure(fig, path) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix: .png, .svg or .pdf); parents are created."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"expected a file path ending in one of {FORMATS}; got {describe(path)}")
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise InputError(f"expected a file path ending in one of {FORMATS}; got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def figure_image(fig):
    """The figure rasterized as an RGB ``PIL.Image``."""
    image_mod = require("PIL.Image", "viz")
    fig.canvas.draw()
    return image_mod.fromarray(np.asarray(fig.canvas.buffer_rgba()).copy()).convert("RGB")
