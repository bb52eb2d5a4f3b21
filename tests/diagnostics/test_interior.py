"""Interior-gradient frames, cumulative frames and their animation."""

import pytest
import torch
from diagnostic_models import F64, LinearScore, RaggedLinear, Saturating
from PIL import Image

from sciattr import integrated_gradients
from sciattr.diagnostics import (
    PAPER_ALPHAS,
    animate_frames,
    frame_grid,
    frames_from_attribution,
    interior_frames,
    render_bars,
)
from sciattr.errors import InputError

X = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0]], dtype=F64)


def test_linear_model_frames_are_constant_and_cumulative_is_linear_in_alpha():
    w = torch.tensor([2.0, 1.0, -1.0], dtype=F64)
    frames = interior_frames(LinearScore(w, c=0.5), X, alphas=11)
    a = torch.linspace(0, 1, 11, dtype=F64)
    wx = w * X
    assert torch.allclose(frames.interior, wx.expand(11, 2, 3), atol=1e-14)
    assert torch.allclose(frames.cumulative, a[:, None, None] * wx, atol=1e-14)
    ig = integrated_gradients(LinearScore(w), X, steps=3)
    assert torch.allclose(frames.cumulative[-1], ig.attributions["input"], atol=1e-14)


def test_quadratic_model_cumulative_frames_are_exact():
    # F = sum x^2: interior(a) = 2 a x^2, integral to a is a^2 x^2 (trapezoid is exact for linear integrands)
    frames = interior_frames(lambda x: (x * x).sum(-1), X, alphas=[0.1, 0.25, 0.5])
    a = frames.alphas[:, None, None]
    assert torch.allclose(frames.interior, 2 * a * X * X, atol=1e-14)
    assert torch.allclose(frames.cumulative, a * a * X * X, atol=1e-14)
    assert torch.allclose(frames.scores, frames.alphas[None] ** 2 * (X * X).sum(1, keepdim=True), atol=1e-14)


def test_saturating_model_concentrates_importance_at_small_alpha():
    frames = interior_frames(Saturating(torch.tensor([0.5, 0.25, 0.25], dtype=F64)), X.abs() * 2, alphas=21)
    trend = frames.magnitude()
    assert (trend[:, 0] > 20 * trend[:, -1]).all()  # Fig. 3: large early, about zero when saturated
    assert torch.allclose(trend, frames.interior.abs().mean(-1).T)


def test_ragged_frames_and_trailing_sums():
    w = torch.tensor([1.0, 2.0], dtype=F64)
    atoms = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]], dtype=F64)
    seg = torch.tensor([1, 0, 1])
    frames = interior_frames(RaggedLinear(w), {"atoms": atoms}, segments={"atoms": seg}, alphas=5)
    one = frames.frames(1)
    assert one.shape == (5, 2, 2)
    assert torch.allclose(one[2], torch.tensor([[1.0, 0.0], [2.0, 4.0]], dtype=F64))
    per_atom = frames.frames(1, sum_trailing=1, cumulative=True)
    assert torch.allclose(per_atom[-1], torch.tensor([1.0, 6.0], dtype=F64), atol=1e-14)
    assert torch.allclose(frames.magnitude()[0], torch.full((5,), 1.0, dtype=F64))  # |(0, 2)| mean = 1
    with pytest.raises(InputError, match="example index"):
        frames.frames(2)
    with pytest.raises(InputError, match="sum_trailing"):
        frames.frames(0, sum_trailing=3)


def test_frames_from_attribution_requires_a_path():
    res = integrated_gradients(LinearScore(torch.ones(3, dtype=F64)), X, steps=4)
    with pytest.raises(InputError, match="store_path"):
        frames_from_attribution(res)


def test_gif_has_one_frame_per_alpha(tmp_path):
    frames = interior_frames(Saturating(torch.tensor([0.5, 0.25, 0.25], dtype=F64)), X, alphas=6)
    path = frames.animate(tmp_path / "interior.gif", example=1, duration_ms=50)
    with Image.open(path) as gif:
        assert gif.n_frames == 6 and gif.info["duration"] == 50
    tile = frames.grid(tmp_path / "tile.png", alphas=(0.5,))
    still = frames.grid(tmp_path / "grid.png", alphas=(0.0, 0.2, 0.21, 1.0))  # 0.2 and 0.21: one frame
    with Image.open(tile) as one, Image.open(still) as image:
        assert image.size == (3 * one.width, one.height)


def test_custom_renderer_and_heatmaps(tmp_path):
    calls = []

    def render(frame, scale):
        calls.append((frame.shape, scale))
        return Image.new("RGB", (40, 30), (int(255 * abs(frame).max() / scale), 0, 0))

    stack = torch.arange(4 * 3 * 2, dtype=F64).reshape(4, 3, 2) - 10
    alphas = torch.tensor([0.0, 0.2, 0.6, 1.0])
    animate_frames(stack, alphas, tmp_path / "custom.gif", render_frame=render)
    assert [c[0] for c in calls] == [(3, 2)] * 4
    assert [c[1] for c in calls] == [10.0, 4.0, 7.0, 13.0]  # per-frame largest |value|
    calls.clear()
    animate_frames(stack, alphas, tmp_path / "shared.gif", render_frame=render, shared_scale=True)
    assert [c[1] for c in calls] == [13.0] * 4
    heat = animate_frames(stack, alphas, tmp_path / "heat.gif", trend=torch.tensor([4.0, 3.0, 2.0, 1.0]))
    with Image.open(heat) as gif:
        assert gif.n_frames == 4
    frame_grid(stack, alphas, tmp_path / "heat.png", columns=2)
    assert (tmp_path / "heat.png").stat().st_size > 1000


def test_bad_frames_and_paths_are_refused(tmp_path):
    alphas = torch.tensor([0.0, 1.0])
    with pytest.raises(InputError, match="1-D or 2-D"):
        animate_frames(torch.zeros(2, 2, 2, 2), alphas, tmp_path / "x.gif")
    with pytest.raises(InputError, match=".gif"):
        animate_frames(torch.zeros(2, 3), alphas, tmp_path / "x.png")
    with pytest.raises(InputError, match="K = 2"):
        animate_frames(torch.zeros(3, 3), alphas, tmp_path / "x.gif")
    with pytest.raises(InputError, match="uint8"):
        animate_frames(torch.zeros(2, 3), alphas, tmp_path / "x.gif", render_frame=lambda f, s: "picture")
    with pytest.raises(InputError, match="labels"):
        render_bars(torch.zeros(3), 1.0, labels=["a"])
    assert PAPER_ALPHAS[0] == 0.02 and PAPER_ALPHAS[-1] == 1.0
