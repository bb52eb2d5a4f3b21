"""Interior gradients: how importance moves as the input is scaled up (Gradients of Counterfactuals, Fig. 3).

For a grid of ``a`` in ``[0, 1]`` the *interior* frame of input ``name`` is
``grad F(x' + a (x - x')) * (x - x')`` -- gradient times input at the scaled input -- and the
*cumulative* frame is its integral from 0 to ``a`` (integrated gradients so far; at ``a = 1`` it
is the integrated-gradients attribution of the same grid). Frames are plain arrays; a
``render_frame(frame, scale) -> image`` callback draws one (the domains pass molecule or token
renderers); :func:`render_bars` (1-D feature vectors) and :func:`render_heatmap` (2-D maps) are
the defaults. :meth:`InteriorFrames.animate` writes the sequence as a GIF beside the paper's
trend of the average absolute importance, with a marker at the current ``a``.

Example
-------
>>> model = torch.nn.Sequential(torch.nn.Linear(5, 1), torch.nn.Tanh())
>>> frames = interior_frames(model, torch.randn(3, 5, dtype=torch.float64), alphas=11)
>>> frames.frames(0).shape
torch.Size([11, 5])
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sciattr.diagnostics.figures import figure_image, new_figure
from sciattr.diagnostics.grid import attribute_on_grid, cumulative_trapezoid
from sciattr.errors import InputError, describe, require
from sciattr.result import Attribution
from sciattr.settings import Settings

__all__ = [
    "PAPER_ALPHAS",
    "InteriorFrames",
    "animate_frames",
    "frame_grid",
    "frames_from_attribution",
    "interior_frames",
    "render_bars",
    "render_heatmap",
]

#: The scaling parameters shown in Fig. 3 of Gradients of Counterfactuals.
PAPER_ALPHAS = (0.02, 0.04, 0.06, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)

RenderFrame = Callable[[np.ndarray, float], object]


@dataclass
class InteriorFrames:
    """Per-alpha attribution frames of one named input, for every example.

    Attributes
    ----------
    name:
        The input the frames belong to.
    alphas:
        ``(K,)`` ascending path positions from 0 to 1.
    interior:
        ``(K, *input_shape)`` gradient at ``x' + a (x - x')`` times ``(x - x')``.
    cumulative:
        ``(K, *input_shape)`` running trapezoid integral of ``interior`` from 0 to ``a``.
    scores:
        ``(n, K)`` the score along the path.
    segments:
        ``(rows,)`` example of each row for a ragged input, else ``None``.
    """

    name: str
    alphas: torch.Tensor
    interior: torch.Tensor
    cumulative: torch.Tensor
    scores: torch.Tensor
    segments: torch.Tensor | None = None

    @property
    def n_examples(self) -> int:
        return int(self.scores.shape[0])

    def frames(self, example: int = 0, *, cumulative: bool = False, sum_trailing: int = 0) -> torch.Tensor:
        """``(K, ...)`` frames of one example (its rows for a ragged input).

        ``sum_trailing`` sums that many trailing dimensions (e.g. 1 to turn ``(tokens, dim)``
        embedding frames into one value per token).
        """
        if isinstance(example, bool) or not isinstance(example, int) or not 0 <= example < self.n_examples:
            raise InputError(
                f"expected an example index in [0, {self.n_examples - 1}]; got {describe(example)}"
            )
        data = self.cumulative if cumulative else self.interior
        if self.segments is None:
            out = data[:, example]
        else:
            out = data[:, self.segments.to(data.device) == example]
        if (
            isinstance(sum_trailing, bool)
            or not isinstance(sum_trailing, int)
            or not 0 <= sum_trailing < out.dim()
        ):
            raise InputError(f"expected sum_trailing in [0, {out.dim() - 1}]; got {describe(sum_trailing)}")
        if sum_trailing:
            out = out.sum(dim=tuple(range(out.dim() - sum_trailing, out.dim())))
        return out

    def magnitude(self, *, cumulative: bool = False) -> torch.Tensor:
        """``(n, K)`` mean absolute frame value of each example (the trend chart of Fig. 3)."""
        data = (self.cumulative if cumulative else self.interior).abs()
        per_row = data.reshape(data.shape[0], data.shape[1], -1).mean(-1)  # (K, rows)
        if self.segments is None:
            return per_row.T
        seg = self.segments.to(data.device)
        total = torch.zeros(self.n_examples, data.shape[0], dtype=data.dtype, device=data.device)
        total.index_add_(0, seg, per_row.T)
        counts = torch.bincount(seg, minlength=self.n_examples).clamp_min(1)
        return total / counts[:, None]

    def animate(
        self,
        path,
        example: int = 0,
        *,
        cumulative: bool = False,
        sum_trailing: int = 0,
        render_frame: RenderFrame | None = None,
        duration_ms: int = 200,
        shared_scale: bool = False,
    ) -> Path:
        """A GIF of one example's frames, with the Fig. 3 trend chart; returns the path."""
        frames = self.frames(example, cumulative=cumulative, sum_trailing=sum_trailing)
        trend = self.magnitude(cumulative=cumulative)[example]
        return animate_frames(
            frames,
            self.alphas,
            path,
            render_frame=render_frame,
            trend=trend,
            duration_ms=duration_ms,
            shared_scale=shared_scale,
            title=f"{'integrated' if cumulative else 'interior'} gradients of {self.name!r}, "
            f"example {example}",
        )

    def grid(
        self,
        path,
        example: int = 0,
        *,
        alphas: Sequence[float] | None = None,
        cumulative: bool = False,
        sum_trailing: int = 0,
        render_frame: RenderFrame | None = None,
        columns: int = 5,
    ) -> Path:
        """A still image of the frames (all, or those nearest to ``alphas``), Fig. 3 layout.

        Compute the frames on a grid containing the wanted positions (e.g.
        ``interior_frames(..., alphas=PAPER_ALPHAS)``) to show exactly those. Returns the path.
        """
        if alphas is None:
            k = list(range(self.alphas.numel()))
        else:
            k = sorted({int(torch.argmin((self.alphas - float(a)).abs())) for a in alphas})
        frames = self.frames(example, cumulative=cumulative, sum_trailing=sum_trailing)
        return frame_grid(frames[k], self.alphas[k], path, render_frame=render_frame, columns=columns)


def frames_from_attribution(result: Attribution, name: str | None = None) -> InteriorFrames:
    """Interior and cumulative frames from an attribution recorded with ``store_path=True``.

    The path must be the straight line and the recorded positions must include 0 (true for any
    grid of :func:`interior_frames`).
    """
    if result.path is None:
        raise InputError("expected an Attribution computed with store_path=True; got one without a path")
    if result.multi_target:
        raise InputError("expected an attribution of one target per example; got a multi-target result")
    name = result.names[0] if name is None else name
    if name not in result.path.gradients:
        raise InputError(f"expected an input name among {list(result.path.gradients)}; got {name!r}")
    alphas = result.path.alphas
    if float(alphas[0]) != 0.0:
        raise InputError(f"expected recorded path positions starting at 0; got {float(alphas[0])}")
    velocity = result.inputs[name] - result.baselines[name]
    interior = result.path.gradients[name] * velocity.unsqueeze(0)
    segments = None if result.segments is None else result.segments.get(name)
    return InteriorFrames(
        name=name,
        alphas=alphas,
        interior=interior,
        cumulative=cumulative_trapezoid(interior, alphas),
        scores=result.path.scores,
        segments=segments,
    )


def interior_frames(
    model: Callable,
    inputs,
    *,
    name: str | None = None,
    alphas=None,
    target=None,
    settings: Settings | None = None,
    forward_kwargs=None,
    segments=None,
    **options,
) -> InteriorFrames:
    """Interior-gradient frames of input ``name`` on a grid of alphas (one batched engine run).

    Parameters
    ----------
    model, inputs, target, forward_kwargs, segments:
        As for :func:`sciattr.attribute` (one target per example).
    settings, options:
        A :class:`sciattr.Settings` and/or its keyword options (``baselines``, ``batch_size``,
        ``memory_budget``, ...); the grid decides the steps and the rule.
    name:
        The input whose frames are kept (default: the first).
    alphas:
        ``None`` (21 points), a number of equally spaced points, or positions in ``[0, 1]``;
        0 and 1 are always included.
    """
    result = attribute_on_grid(model, inputs, alphas, target=target, settings=settings,
                               forward_kwargs=forward_kwargs, segments=segments, **options)
    return frames_from_attribution(result, name)


# ---------------------------------------------------------------------- rendering
def _as_array(frame) -> np.ndarray:
    if isinstance(frame, torch.Tensor):
        frame = frame.detach().cpu().double().numpy()
    return np.asarray(frame, dtype=np.float64)


def render_bars(frame, scale: float, labels: Sequence[str] | None = None, size=(4.0, 3.0)):
    """A bar chart of a 1-D frame (red positive, blue negative) with y-limits ``+-scale``."""
    values = _as_array(frame)
    if values.ndim != 1:
        raise InputError(f"expected a 1-D frame for bars; got shape {values.shape}")
    fig, axes = new_figure(1, 1, size=size)
    ax = axes[0, 0]
    positions = np.arange(values.size)
    ax.bar(positions, values, color=np.where(values >= 0, "#d62728", "#1f5ac8"))
    ax.axhline(0.0, color="black", lw=0.6)
    ax.set_ylim(-scale * 1.05, scale * 1.05)
    if labels is not None:
        if len(labels) != values.size:
            raise InputError(f"expected {values.size} labels; got {len(labels)}")
        ax.set_xticks(positions, labels, rotation=60, fontsize=7)
    ax.set_xlabel("feature")
    return figure_image(fig)


def render_heatmap(frame, scale: float, size=(4.0, 3.0)):
    """A heatmap of a 2-D frame on a symmetric red-blue scale ``[-scale, scale]``."""
    values = _as_array(frame)
    if values.ndim != 2:
        raise InputError(f"expected a 2-D frame for a heatmap; got shape {values.shape}")
    fig, axes = new_figure(1, 1, size=size)
    image = axes[0, 0].imshow(
        values, cmap="RdBu_r", vmin=-scale, vmax=scale, aspect="auto", interpolation="nearest"
    )
    fig.colorbar(image, ax=axes[0, 0], shrink=0.8)
    return figure_image(fig)


def _default_renderer(shape: tuple) -> RenderFrame:
    if len(shape) == 1:
        return render_bars
    if len(shape) == 2:
        return render_heatmap
    raise InputError(
        f"expected 1-D or 2-D frames for the default renderers; got frames of shape {shape}; "
        f"pass render_frame=callable(frame, scale) -> image or sum trailing dimensions"
    )


def _as_image(image):
    pil = require("PIL.Image", "viz")
    if isinstance(image, pil.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.dtype != np.uint8:
        raise InputError(
            f"expected render_frame to return a PIL image or an (H, W, 3|4) uint8 array; "
            f"got {describe(image)}"
        )
    return pil.fromarray(array).convert("RGB")


def _scales(frames: np.ndarray, shared: bool) -> np.ndarray:
    flat = np.abs(frames.reshape(frames.shape[0], -1)).max(1) if frames.size else np.zeros(frames.shape[0])
    if shared:
        flat = np.full_like(flat, flat.max() if flat.size else 0.0)
    return np.where(flat > 0, flat, 1.0)


def _rendered(frames, alphas, render_frame, shared_scale):
    array = _as_array(frames)
    a = _as_array(alphas).reshape(-1)
    if array.ndim < 2 or array.shape[0] != a.size:
        raise InputError(f"expected frames of shape (K, ...) with K = {a.size} alphas; got {array.shape}")
    renderer = render_frame or _default_renderer(array.shape[1:])
    scales = _scales(array, shared_scale)
    return [_as_image(renderer(array[k], float(scales[k]))) for k in range(a.size)], a


class _TrendChart:
    """The trend of Fig. 3 drawn once; a marker at the current alpha is added per frame."""

    def __init__(self, alphas: np.ndarray, trend: np.ndarray, height: int):
        fig, axes = new_figure(1, 1, size=(3.2, 2.4))
        ax = axes[0, 0]
        ax.plot(alphas, trend, color="black", lw=1.2)
        ax.set_xlabel("alpha")
        ax.set_ylabel("mean |importance|")
        ax.set_xlim(0, 1)
        ax.grid(alpha=0.3)
        fig.canvas.draw()
        self.points = ax.transData.transform(np.column_stack([alphas, trend]))
        self.image = figure_image(fig)
        self.scale = height / self.image.height
        self.image = self.image.resize((max(1, int(self.image.width * self.scale)), height))

    def at(self, k: int):
        pil_draw = require("PIL.ImageDraw", "viz")
        image = self.image.copy()
        x, y = self.points[k]
        px, py = x * self.scale, image.height - y * self.scale
        pil_draw.Draw(image).ellipse([px - 5, py - 5, px + 5, py + 5], fill=(214, 39, 40))
        return image


def _compose(frame_image, header: str, side=None):
    pil = require("PIL.Image", "viz")
    pil_draw = require("PIL.ImageDraw", "viz")
    width = frame_image.width + (side.width if side is not None else 0)
    canvas = pil.new("RGB", (width, frame_image.height + 24), "white")
    canvas.paste(frame_image, (0, 24))
    if side is not None:
        canvas.paste(side, (frame_image.width, 24))
    pil_draw.Draw(canvas).text((6, 4), header, fill=(0, 0, 0), font=_header_font())
    return canvas


def _header_font():
    font_mod = require("PIL.ImageFont", "viz")
    try:
        return font_mod.load_default(size=14)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return font_mod.load_default()


def animate_frames(
    frames,
    alphas,
    path,
    *,
    render_frame: RenderFrame | None = None,
    trend=None,
    duration_ms: int = 200,
    shared_scale: bool = False,
    title: str = "",
) -> Path:
    """Write frames as an animated GIF, one GIF frame per alpha.

    Parameters
    ----------
    frames:
        ``(K, ...)`` array or tensor; frame ``k`` belongs to ``alphas[k]``.
    alphas:
        ``(K,)`` path positions.
    path:
        Output file, ending in ``.gif``.
    render_frame:
        ``fn(frame, scale) -> PIL image or (H, W, 3|4) uint8 array``; ``scale`` is the largest
        absolute value to map to full colour. Default: bars for 1-D frames, a heatmap for 2-D.
    trend:
        Optional ``(K,)`` values drawn beside each frame with a marker at the current alpha.
    duration_ms:
        Display time of each frame.
    shared_scale:
        One colour scale for all frames (absolute magnitudes) instead of one per frame (the
        relative distribution, as in the paper).
    """
    if not isinstance(path, (str, os.PathLike)) or Path(path).suffix.lower() != ".gif":
        raise InputError(f"expected an output path ending in .gif; got {describe(path)}")
    if isinstance(duration_ms, bool) or not isinstance(duration_ms, int) or duration_ms < 1:
        raise InputError(f"expected duration_ms as a positive integer; got {describe(duration_ms)}")
    images, a = _rendered(frames, alphas, render_frame, shared_scale)
    chart = None
    if trend is not None:
        values = _as_array(trend).reshape(-1)
        if values.size != a.size:
            raise InputError(f"expected a trend of {a.size} values; got {values.size}")
        chart = _TrendChart(a, values, images[0].height)
    composed = [
        _compose(
            image, f"{title}  alpha = {a[k]:.3f}  ({k + 1}/{a.size})", None if chart is None else chart.at(k)
        )
        for k, image in enumerate(images)
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    composed[0].save(path, save_all=True, append_images=composed[1:], duration=duration_ms, loop=0)
    return path


def frame_grid(
    frames,
    alphas,
    path,
    *,
    render_frame: RenderFrame | None = None,
    columns: int = 5,
    shared_scale: bool = False,
) -> Path:
    """A still image (PNG) of several frames in a grid, each titled with its alpha (Fig. 3)."""
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise InputError(f"expected columns as a positive integer; got {describe(columns)}")
    path = Path(path)
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise InputError(f"expected an output path ending in .png or .jpg; got {str(path)!r}")
    pil = require("PIL.Image", "viz")
    images, a = _rendered(frames, alphas, render_frame, shared_scale)
    tiles = [_compose(image, f"alpha = {a[k]:.3g}") for k, image in enumerate(images)]
    w, h = max(t.width for t in tiles), max(t.height for t in tiles)
    rows = -(-len(tiles) // columns)
    sheet = pil.new("RGB", (w * min(columns, len(tiles)), h * rows), "white")
    for k, tile in enumerate(tiles):
        sheet.paste(tile, ((k % columns) * w, (k // columns) * h))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
