"""Pictures of token attributions: HTML heatmaps, terminal colouring, seq2seq matrices.

Colours follow the integrated-gradients paper (Fig. 4): red for positive attribution, blue for
negative, gray where the attribution is about zero (below ``neutral`` times the largest
absolute value of the sentence). Colour intensity grows with ``|attribution|``.

* :func:`token_html` / :func:`write_html` -- one ``<span>`` per token, a self-contained HTML file;
* :func:`terminal_tokens` -- ANSI 24-bit or 256-colour backgrounds, plain ``token(+0.12)`` text
  when the stream is not a terminal;
* :func:`seq2seq_heatmap` -- a matrix (rows: output tokens, columns: input tokens) as PNG/SVG.
"""

from __future__ import annotations

import html
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from sciattr.errors import InputError, describe, require

__all__ = [
    "GRAY",
    "HTML_LEVELS",
    "NEUTRAL",
    "color_mode",
    "seq2seq_heatmap",
    "terminal_tokens",
    "token_color",
    "token_html",
    "write_html",
]

#: Fraction of the sentence's largest |attribution| below which a token is drawn gray.
NEUTRAL = 0.05
GRAY = (220, 220, 220)
_RED, _BLUE = (214, 39, 40), (31, 90, 200)

Pairs = Sequence[tuple[str, float]]


def _scale(scores: Sequence[float]) -> float:
    finite = [abs(s) for s in scores if math.isfinite(s)]
    return max(finite) if finite and max(finite) > 0 else 1.0


def token_color(value: float, scale: float, neutral: float = NEUTRAL) -> tuple[str, tuple[int, int, int]]:
    """``(sign, rgb)``: sign ``"pos"``, ``"neg"`` or ``"zero"`` and a background colour."""
    if not math.isfinite(value) or scale <= 0 or abs(value) < neutral * scale:
        return "zero", GRAY
    strength = min(abs(value) / scale, 1.0)
    target = _RED if value > 0 else _BLUE
    # white at strength 0, the full colour at strength 1; never lighter than a visible tint
    mix = 0.25 + 0.75 * strength
    red, green, blue = (round(255 + (c - 255) * mix) for c in target)
    return ("pos" if value > 0 else "neg"), (red, green, blue)


def _text_color(rgb: tuple[int, int, int]) -> str:
    luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return "#000" if luminance > 140 else "#fff"


def token_html(pairs: Pairs, neutral: float = NEUTRAL, scale: float | None = None) -> str:
    """One ``<span class="tok pos|neg|zero">`` per token; the attribution is in ``data-attr``/``title``."""
    scale = _scale([s for _, s in pairs]) if scale is None else scale
    spans = []
    for token, value in pairs:
        sign, rgb = token_color(value, scale, neutral)
        style = f"background-color: rgb{rgb}; color: {_text_color(rgb)}"
        spans.append(f'<span class="tok {sign}" style="{style}" data-attr="{value:.6g}" '
                     f'title="{value:+.6g}">{html.escape(token)}</span>')
    return " ".join(spans)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}
.tok{padding:0.1em 0.25em;border-radius:0.25em;line-height:2em;white-space:pre}
.sentence{margin:0.5em 0 1.5em 0}.meta{color:#555;font-size:0.9em}.note{color:#8a5a00}.error{color:#b00}
.legend span{margin-right:1em}"""


def _attribution_blocks(result, target: int, level: str = "token") -> list[str]:
    blocks = []
    for i in range(result.n_examples):
        pairs = result.to_tokens(i, target=target) if level == "token" else result.to_words(i, target=target)
        fx = result._scalar(result.forward_x, i, target)
        fb = result._scalar(result.forward_baseline, i, target)
        label = result.target_labels[i] if i < len(result.target_labels) else result.target
        row = result.rows[i] if i < len(result.rows) else i
        meta = (f"row {row} &middot; target {html.escape(str(label))} &middot; F(x) = {fx:.4g} &middot; "
                f"F(baseline) = {fb:.4g} &middot; sum of attributions = {result.total(i, target):.4g}")
        notes = "".join(f'<div class="note">{html.escape(n)}</div>'
                        for n in (result.notes[i] if i < len(result.notes) else []))
        blocks.append(f'<div class="meta">{meta}</div>{notes}<div class="sentence">{token_html(pairs)}</div>')
    return blocks


#: Levels of :func:`write_html`.
HTML_LEVELS = ("token", "word")


def _matrix_blocks(result, level: str) -> list[str]:
    """One line per output token (or word): the inputs it may depend on, coloured by their attribution to it."""
    blocks = []
    for i in range(result.n_examples):
        row = result.rows[i] if i < len(result.rows) else i
        label = result.target_labels[i] if i < len(result.target_labels) else result.target
        lines = []
        if level == "token":
            outputs, inputs, values = result.output_tokens[i], result.token_texts(i), result.matrix(i)
            context = [result.context_length(i, t) for t in range(len(outputs))]
            gaps = [f"relative gap {g:.1e}" for g in result.output_gaps(i).tolist()]
        else:
            outputs, inputs, values = result.word_matrix(i)
            context = [result.word_context(i, w) for w in range(len(outputs))]
            gaps = [""] * len(outputs)
        for t, out in enumerate(outputs):
            pairs = list(zip(inputs[: context[t]], values[t, : context[t]].tolist()))
            lines.append(f'<tr><td class="out"><b>{html.escape(out)}</b></td><td>{token_html(pairs)}</td>'
                         f'<td class="meta">{gaps[t]}</td></tr>')
        notes = "".join(f'<div class="note">{html.escape(n)}</div>'
                        for n in (result.notes[i] if i < len(result.notes) else []))
        blocks.append(f'<div class="meta">row {row} &middot; output {html.escape(str(label))}</div>{notes}'
                      f'<table class="sentence">{"".join(lines)}</table>')
    return blocks


def write_html(result, path, title: str = "Token attributions", target: int = 0, level: str = "token") -> Path:
    """Write a self-contained HTML page with one coloured sentence per example (and the bad rows).

    ``level="token"`` colours tokens, ``"word"`` words (subword tokens summed by signed sums). For
    output x input results (encoder--decoders, causal-LM continuations) there is one line per
    output token (or output word) with the inputs it may depend on coloured by their attribution
    to it; ``target`` is then unused.
    """
    if level not in HTML_LEVELS:
        raise InputError(f"expected level in {HTML_LEVELS}; got {level!r}")
    if hasattr(result, "output_tokens") and hasattr(result, "word_matrix"):
        blocks = _matrix_blocks(result, level)
    else:
        blocks = _attribution_blocks(result, target, level)
    blocks += [f'<div class="error">row {e["row"]}: {html.escape(e["message"])}</div>'
               for e in getattr(result, "errors", [])]
    legend = ('<div class="legend"><span class="tok pos" style="background-color: rgb(214, 39, 40); color: '
              '#fff">'
              'positive</span><span class="tok neg" style="background-color: rgb(31, 90, 200); color: #fff">'
              'negative</span><span class="tok zero" style="background-color: rgb(220, 220, 220)">about zero'
              '</span></div>')
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f'<p class="meta">{html.escape(result.method)} ({html.escape(result.rule)}, '
            f"steps {int(result.steps.max())}), score {html.escape(result.target)}</p>{legend}"
            + "".join(blocks) + "</body></html>\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def color_mode(stream: TextIO | None = None) -> str:
    """``"truecolor"``, ``"256"`` or ``"none"`` for ``stream`` (default stdout).

    ``NO_COLOR`` disables colours; a non-terminal stream gets ``"none"``.
    """
    stream = sys.stdout if stream is None else stream
    if os.environ.get("NO_COLOR") or not getattr(stream, "isatty", lambda: False)():
        return "none"
    if os.environ.get("COLORTERM", "").lower() in ("truecolor", "24bit"):
        return "truecolor"
    return "256"


def _ansi_256(rgb: tuple[int, int, int]) -> int:
    r, g, b = (round(c / 255 * 5) for c in rgb)
    return 16 + 36 * r + 6 * g + b


def terminal_tokens(pairs: Pairs, mode: str | None = None, neutral: float = NEUTRAL,
                    stream: TextIO | None = None) -> str:
    """Tokens with coloured backgrounds for a terminal (``mode``: ``"truecolor"``, ``"256"``,
    ``"none"``; default from :func:`color_mode`). ``"none"`` writes ``token(+0.123)``."""
    mode = color_mode(stream) if mode is None else mode
    if mode not in ("truecolor", "256", "none"):
        raise InputError(f"expected mode 'truecolor', '256' or 'none'; got {mode!r}")
    scale = _scale([s for _, s in pairs])
    parts = []
    for token, value in pairs:
        if mode == "none":
            parts.append(f"{token}({value:+.3g})")
            continue
        _, rgb = token_color(value, scale, neutral)
        fg = "30" if _text_color(rgb) == "#000" else "97"
        bg = f"48;2;{rgb[0]};{rgb[1]};{rgb[2]}" if mode == "truecolor" else f"48;5;{_ansi_256(rgb)}"
        parts.append(f"\x1b[{bg};{fg}m{token}\x1b[0m")
    return " ".join(parts)


def seq2seq_heatmap(matrix, output_tokens: Sequence[str], input_tokens: Sequence[str], path,
                    title: str | None = None, cmap: str = "RdBu_r"):
    """Save a heatmap of ``matrix`` ``(n_output_tokens, n_input_tokens)`` to ``path`` (PNG or SVG).

    Rows are output tokens, columns input tokens; colours are symmetric around zero (red positive,
    blue negative). Returns the path.
    """
    import numpy as np

    values = np.asarray(matrix.detach().cpu() if hasattr(matrix, "detach") else matrix, dtype=float)
    if values.ndim != 2 or values.shape != (len(output_tokens), len(input_tokens)):
        raise InputError(
            f"expected a matrix of shape ({len(output_tokens)}, {len(input_tokens)}) "
            f"(output tokens x input tokens); got {describe(values)}"
        )
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise InputError(f"expected a .png, .svg or .pdf path; got {str(path)!r}")
    matplotlib = require("matplotlib", "viz")
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    limit = float(np.nanmax(np.abs(values))) if values.size and np.nanmax(np.abs(values)) > 0 else 1.0
    width = max(4.0, 0.45 * len(input_tokens) + 2.0)
    height = max(3.0, 0.4 * len(output_tokens) + 1.5)
    fig, ax = plt.subplots(figsize=(width, height))
    try:
        image = ax.imshow(values, cmap=cmap, vmin=-limit, vmax=limit, aspect="auto")
        ax.set_xticks(range(len(input_tokens)), labels=list(input_tokens), rotation=60, ha="right")
        ax.set_yticks(range(len(output_tokens)), labels=list(output_tokens))
        ax.set_xlabel("input tokens")
        ax.set_ylabel("output tokens")
        if title:
            ax.set_title(title)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attribution")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
