"""HTML heatmaps, terminal colouring and the seq2seq matrix picture."""

import io
import re

import pytest
import torch

from sciattr.errors import InputError
from sciattr.text.classifier import LSTMTopicClassifier
from sciattr.text.embedding import embedding_integrated_gradients, pad_batch
from sciattr.text.render import (
    GRAY,
    color_mode,
    seq2seq_heatmap,
    terminal_tokens,
    token_color,
    token_html,
    write_html,
)

PAIRS = [("gold", 0.8), ("<unk>", -0.5), ("the", 0.001), ("price", 0.2)]
SPAN = re.compile(r'<span class="tok (pos|neg|zero)" style="background-color: rgb\((\d+), (\d+), '
                  r'(\d+)\)[^"]*" '
                  r'data-attr="([^"]+)"[^>]*>([^<]*)</span>')


def test_colour_sign_and_gray():
    assert token_color(1.0, 1.0) == ("pos", (214, 39, 40))
    sign, rgb = token_color(-0.5, 1.0)
    assert sign == "neg" and rgb[2] > rgb[0]
    assert token_color(0.01, 1.0) == ("zero", GRAY)
    assert token_color(float("nan"), 1.0) == ("zero", GRAY)


def test_html_has_one_span_per_token_with_the_right_colour():
    spans = SPAN.findall(token_html(PAIRS))
    assert len(spans) == len(PAIRS)
    for (sign, r, g, b, value, text), (token, score) in zip(spans, PAIRS):
        assert text == token.replace("<", "&lt;").replace(">", "&gt;")
        assert float(value) == pytest.approx(score)
        expected = "zero" if abs(score) < 0.05 * 0.8 else ("pos" if score > 0 else "neg")
        assert sign == expected
        if sign == "pos":
            assert int(r) > int(b)
        if sign == "neg":
            assert int(b) > int(r)


def test_write_html_for_a_result(tmp_path):
    torch.manual_seed(0)
    model = LSTMTopicClassifier(12, ["a", "b"], emb_dim=4, hidden_dim=3, dropout=0.0).double().eval()
    ids, mask = pad_batch([[1, 2, 3], [4, 5]])
    res = embedding_integrated_gradients(model, ids, attention_mask=mask, target=0, steps=8,
                                         tokens=[["x", "<y>", "z"], ["u", "v"]])
    res.errors.append({"row": 2, "input": "", "message": "expected a non-empty text; got an empty string"})
    path = write_html(res, tmp_path / "page.html")
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page and "http" not in page
    spans = SPAN.findall(page)
    assert len(spans) == 5  # the legend spans carry no data-attr
    assert [s[5] for s in spans] == ["x", "&lt;y&gt;", "z", "u", "v"]
    for sign, *_rgb, value, _text in spans:
        v = float(value)
        assert sign == "zero" or (sign == "pos") == (v > 0)
    assert "row 2: expected a non-empty text" in page


def test_terminal_modes():
    plain = terminal_tokens(PAIRS, mode="none")
    assert plain.startswith("gold(+0.8)") and "\x1b" not in plain
    true = terminal_tokens(PAIRS, mode="truecolor")
    assert true.count("\x1b[48;2;") == 4 and "48;2;214;39;40" in true
    assert terminal_tokens(PAIRS, mode="256").count("\x1b[48;5;") == 4
    assert color_mode(io.StringIO()) == "none"  # not a terminal: plain fallback
    with pytest.raises(InputError):
        terminal_tokens(PAIRS, mode="16")


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_seq2seq_heatmap(tmp_path, suffix):
    matrix = torch.tensor([[0.5, -0.2, 0.0], [0.1, 0.9, -0.7]])
    path = seq2seq_heatmap(matrix, ["HH", "AY"], ["h", "i", "</s>"], tmp_path / f"m{suffix}", title="g2p")
    data = path.read_bytes()
    if suffix == ".png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert b"<svg" in data
    with pytest.raises(InputError):
        seq2seq_heatmap(matrix, ["HH"], ["h", "i", "</s>"], tmp_path / "bad.png")
    with pytest.raises(InputError):
        seq2seq_heatmap(matrix, ["HH", "AY"], ["h", "i", "</s>"], tmp_path / "bad.txt")
