"""Seq2seq attributions: the pretrained g2p GRU encoder-decoder and the batched output strategies."""

import csv
import json

import numpy as np
import pytest
import torch

from sciattr.errors import InputError
from sciattr.text.seq2seq import (
    GRAPHEMES,
    PHONEMES,
    STRATEGIES,
    Seq2SeqAttribution,
    attribute_g2p,
    attribute_outputs,
    encode_words,
    g2p_accuracy,
    g2p_weights_path,
    greedy_decode,
    load_g2p,
    run_g2p_batch_cli,
    run_g2p_cli,
)

F64 = torch.float64


@pytest.fixture(scope="module")
def g2p():
    return load_g2p(F64)


# ---------------------------------------------------------------------------------------- weights
def test_checkpoint_maps_onto_torch_gru_equations(g2p):
    """One encoder step of the torch GRU equals the g2p-en cell written out from the raw arrays."""
    arrays = np.load(g2p_weights_path())
    x = arrays["enc_emb"][[GRAPHEMES.index("c")]].astype(np.float64)
    h = np.random.default_rng(0).normal(size=(1, arrays["enc_w_hh"].shape[1]))
    gi = x @ arrays["enc_w_ih"].T + arrays["enc_b_ih"]
    gh = h @ arrays["enc_w_hh"].T + arrays["enc_b_hh"]
    third = gi.shape[1] // 3
    r = 1 / (1 + np.exp(-(gi[:, :third] + gh[:, :third])))
    z = 1 / (1 + np.exp(-(gi[:, third:2 * third] + gh[:, third:2 * third])))
    n = np.tanh(gi[:, 2 * third:] + r * gh[:, 2 * third:])
    expected = (1 - z) * n + z * h
    _, got = g2p.encoder(torch.tensor(x)[None], torch.tensor(h)[None])
    np.testing.assert_allclose(got[0].detach().numpy(), expected, rtol=1e-6, atol=1e-6)


def test_greedy_decoding_reproduces_cmudict():
    """Exact-word accuracy on 1,000 seeded CMUdict words (measured: 0.656 first / 0.663 any pronunciation)."""
    acc = g2p_accuracy(load_g2p(torch.float32), n_words=1000, seed=0)
    assert acc["first"] >= 0.62
    assert acc["any"] >= acc["first"]
    assert acc["phoneme_error_rate"] <= 0.15


def test_greedy_known_words(g2p):
    assert greedy_decode(g2p, ["cat", "Dog"]) == [["K", "AE1", "T"], ["D", "AO1", "G"]]


# ---------------------------------------------------------------------------------------- completeness
@pytest.fixture(scope="module")
def words_result(g2p):
    return attribute_g2p(["pronunciation", "cat", "fish"], model=g2p, steps=64)


def test_completeness_for_every_output_token(words_result):
    res = words_result
    assert isinstance(res, Seq2SeqAttribution)
    for i in range(res.n_examples):
        gaps = res.output_gaps(i)
        assert gaps.shape == (len(res.output_tokens[i]),)
        assert float(gaps.max()) < 0.01
        matrix = res.matrix(i)
        delta = res.forward_x[i, : len(res.output_tokens[i])] - res.forward_baseline[i, : len(res.output_tokens[i])]
        torch.testing.assert_close(matrix.sum(1), delta, rtol=0.01, atol=1e-6)


def test_end_marker_is_kept_in_the_baseline(words_result):
    for i in range(words_result.n_examples):
        assert words_result.tokens[i][-1] == "</s>"
        assert bool((words_result.matrix(i)[:, -1] == 0).all())


@pytest.mark.parametrize("word, expected", [
    ("cat", {0: 0, 2: 2}), ("dog", {0: 0, 2: 2}), ("fish", {0: 0, 2: 2}), ("lamp", {0: 0, 2: 2, 3: 3}),
    ("wind", {0: 0, 2: 2, 3: 3}),
])
def test_consonants_come_from_their_letters(g2p, word, expected):
    """Each consonant phoneme's largest attribution lies on the letter that spells it."""
    res = attribute_g2p(word, model=g2p, steps=32)
    best = res.matrix(0).argmax(1).tolist()
    assert {row: best[row] for row in expected} == expected


# ---------------------------------------------------------------------------------------- strategies
def test_batched_strategies_equal_per_token_ig(g2p):
    """Different word and output lengths in one batch; float64; all three strategies agree."""
    results = {s: attribute_g2p(["phonetics", "ox"], model=g2p, steps=12, strategy=s) for s in STRATEGIES}
    ref = results["per_token"]
    for name in ("multi_target", "replicate"):
        res = results[name]
        torch.testing.assert_close(res.attributions["embeddings"], ref.attributions["embeddings"],
                                   rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(res.forward_x, ref.forward_x, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(res.forward_baseline, ref.forward_baseline, rtol=1e-12, atol=1e-12)
        assert res.meta["strategy"] == name


def test_padding_does_not_change_a_word(g2p):
    alone = attribute_g2p("ox", model=g2p, steps=12)
    batched = attribute_g2p(["phonetics", "ox"], model=g2p, steps=12)
    torch.testing.assert_close(batched.matrix(1), alone.matrix(0), rtol=1e-9, atol=1e-12)


class LinearDecoder(torch.nn.Module):
    """score_t = <W[y_t], x>: integrated gradients are exactly W[y_t] * (x - x')."""

    def __init__(self, vocab, length, dim):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(vocab, length, dim, dtype=F64))

    def forward(self, embeddings, target_ids):
        w = self.weight[target_ids]  # (rows, T, L, E)
        return torch.einsum("rtle,rle->rt", w, embeddings)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_linear_oracle(strategy):
    model = LinearDecoder(7, 5, 3)
    x = torch.randn(2, 5, 3, dtype=F64)
    base = torch.randn(2, 5, 3, dtype=F64)
    targets = torch.tensor([[1, 4, 6, 2], [3, 3, 0, 0]])
    res = attribute_outputs(model, x, targets, target_lengths=torch.tensor([4, 2]), baselines=base, steps=3,
                            strategy=strategy)
    expected = model.weight.detach()[targets] * (x - base)[:, None]  # (n, T, L, E)
    expected[1, 2:] = 0.0
    torch.testing.assert_close(res.attributions["embeddings"], expected.movedim(1, -1), rtol=1e-12, atol=1e-12)
    assert float(res.completeness_gap.abs().max()) < 1e-12
    assert bool((res.forward_x[1, 2:] == 0).all())


# ---------------------------------------------------------------------------------------- bad input
def test_bad_rows_are_reported_and_the_rest_processed(g2p):
    res = attribute_g2p(["cat", "", "café", "r2d2", "Ox"], model=g2p, steps=8)
    assert res.rows == [0, 4]
    assert res.tokens[1] == ["o", "x", "</s>"]
    by_row = {e["row"]: e["message"] for e in res.errors}
    assert set(by_row) == {1, 2, 3}
    assert "empty" in by_row[1]
    assert "'é' at position 3" in by_row[2] and "a-z" in by_row[2]
    assert "'2' at position 1" in by_row[3]


def test_all_rows_bad_raises(g2p):
    with pytest.raises(InputError, match="no row could be attributed.*row 0.*row 1"):
        attribute_g2p(["", "123"], model=g2p)


@pytest.mark.parametrize("words, phonemes, message", [
    ("cat", ["K", "XX", "T"], "ARPAbet"),
    ("cat", [], "at least one output phoneme"),
    (["cat", "dog"], [["K", "AE1", "T"]], "one pronunciation per word"),
    ("cat", [["K"]], "list of ARPAbet symbols"),
])
def test_bad_pronunciations(g2p, words, phonemes, message):
    with pytest.raises(InputError, match=message):
        attribute_g2p(words, phonemes, model=g2p, steps=4)


def test_bad_arguments():
    with pytest.raises(InputError, match="strategy"):
        attribute_outputs(LinearDecoder(3, 2, 2), torch.zeros(1, 2, 2, dtype=F64), torch.zeros(1, 1, dtype=torch.long),
                          strategy="loop")
    with pytest.raises(InputError, match="target_lengths"):
        attribute_outputs(LinearDecoder(3, 2, 2), torch.zeros(1, 2, 2, dtype=F64), torch.zeros(1, 2, dtype=torch.long),
                          target_lengths=torch.tensor([3]))
    with pytest.raises(InputError, match="expected a word"):
        encode_words([3])


def test_given_pronunciation_is_used(g2p):
    res = attribute_g2p("read", "R EH1 D", model=g2p, steps=48)
    assert res.output_tokens == [["R", "EH1", "D"]]
    assert res.target_labels == ["R EH1 D"]
    assert float(res.output_gaps(0).max()) < 0.01
    assert set(PHONEMES[4:]) >= set(res.output_tokens[0])


# ---------------------------------------------------------------------------------------- cli
def test_run_g2p_cli_writes_matrix_and_html(tmp_path, capsys):
    paths = run_g2p_cli("phoneme", tmp_path / "g2p.html", steps=16)
    html_path, png = paths
    assert png.suffix == ".png" and png.stat().st_size > 5000
    page = html_path.read_text()
    assert "phoneme" in page and "g2p.png" in page and "rel. gap" in page
    assert "rel gap" in capsys.readouterr().out


def test_run_g2p_batch_cli_rows_equal_single_words(g2p, tmp_path, capsys):
    infile = tmp_path / "words.txt"
    infile.write_text("cat\n\nr2d2\nread\tR EH1 D\nDog\ncat\tK XX T\n")
    paths = run_g2p_batch_cli(infile, None, tmp_path / "out", steps=16, tolerance=0.01)
    index, json_path, csv_path = paths[:3]
    rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    assert [r["status"] for r in rows] == ["ok", "error", "error", "ok", "ok", "error"]
    assert "empty string" in rows[1]["error"] and "'2' at position 1" in rows[2]["error"]
    assert "ARPAbet" in rows[5]["error"]
    err = capsys.readouterr().err
    assert all(f"row {k}  error: " in err for k in (1, 2, 5)) and "row 0" not in err
    records = {r["row"]: r for r in json.loads(json_path.read_text(encoding="utf-8"))["rows"]}
    for row, word, spoken in [(0, "cat", None), (3, "read", "R EH1 D"), (4, "Dog", None)]:
        alone = attribute_g2p(word, spoken, model=g2p, steps=16, tolerance=0.01, max_steps=1024)
        line, record = rows[row], records[row]
        fx, fb = float(alone.forward_x.sum()), float(alone.forward_baseline.sum())
        assert line["target"] == alone.target_labels[0] and record["output_tokens"] == alone.output_tokens[0]
        assert float(line["prediction"]) == pytest.approx(fx, rel=1e-9)
        assert float(line["baseline_score"]) == pytest.approx(fb, rel=1e-9)
        assert float(line["relative_gap"]) < 0.01 and float(alone.relative_gap.max()) < 0.01
        np.testing.assert_allclose(record["matrix"], alone.matrix(0).numpy(), atol=0.01 * abs(fx - fb))
        np.testing.assert_allclose(record["attributions"], alone.matrix(0).sum(0).numpy(), atol=0.01 * abs(fx - fb))
        assert line["tokens"].split()[0].startswith(f"{word[0].lower()}:")
        page = (tmp_path / "out" / line["report"]).read_text()
        assert f"{word.lower()} -&gt; {line['target']}" in page and f"row{row}.png" in page
    assert "reports/row3.html" in index.read_text() and "r2d2" in index.read_text()
