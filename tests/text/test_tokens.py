"""Token and word views of TokenAttribution: sums survive aggregation; tables; save/load."""

import pytest
import torch

from sciattr.errors import InputError
from sciattr.text.classifier import LSTMTopicClassifier
from sciattr.text.embedding import embedding_integrated_gradients, pad_batch
from sciattr.text.tokens import TokenAttribution, aggregate_tokens, group_by_word, words_from_offsets

F64 = torch.float64
TOKENS = [["[CLS]", "un", "##believ", "##able", "goal", "[SEP]"], ["the", "▁strik", "er"]]


@pytest.fixture(scope="module")
def result() -> TokenAttribution:
    torch.manual_seed(3)
    model = LSTMTopicClassifier(30, ["x", "y"], emb_dim=4, hidden_dim=4, dropout=0.0).to(F64).eval()
    ids, mask = pad_batch([[1, 2, 3, 4, 5, 6], [7, 8, 9]])
    return embedding_integrated_gradients(model, ids, attention_mask=mask, target=1, tokens=TOKENS, steps=32)


def test_to_tokens_sums_to_the_score_difference(result):
    for i in range(2):
        pairs = result.to_tokens(i)
        assert [t for t, _ in pairs] == TOKENS[i]
        assert sum(s for _, s in pairs) == pytest.approx(float(result.delta[i]), rel=1e-6)


def test_subwords_to_words_preserve_sums(result):
    words = result.to_words(0, [None, 0, 0, 0, 1, None])
    assert [w for w, _ in words] == ["[CLS]", "unbelievable", "goal", "[SEP]"]
    scores = result.example_scores(0)
    assert words[1][1] == pytest.approx(sum(scores[1:4]), abs=1e-15)
    assert sum(s for _, s in words) == pytest.approx(result.total(0), abs=1e-14)
    sp = result.to_words(1, [0, 1, 1])
    assert [w for w, _ in sp] == ["the", "striker"]
    assert sum(s for _, s in sp) == pytest.approx(result.total(1), abs=1e-14)


def test_words_from_tokenizer_offsets(result):
    text = "the striker"
    offsets = [(0, 3), (4, 9), (9, 11)]
    assert words_from_offsets(text, offsets) == [0, 1, 1]
    assert words_from_offsets("a b", [(0, 0), (0, 1), (2, 3), (0, 0)]) == [None, 0, 1, None]
    words = result.to_words(1, offsets=offsets, text=text)
    assert [w for w, _ in words] == ["the", "striker"]
    assert sum(s for _, s in words) == pytest.approx(result.total(1), abs=1e-14)
    with pytest.raises(InputError):
        result.to_words(1, offsets=offsets)
    with pytest.raises(InputError):
        result.to_words(1, [0, 1])


def test_group_by_word_keeps_order_and_specials():
    out = group_by_word(["a", "##b", "<s>", "c"], [1.0, 2.0, 0.5, -4.0], [0, 0, None, 1])
    assert out == [("ab", 3.0), ("<s>", 0.5), ("c", -4.0)]


def test_aggregations_on_a_known_tensor():
    a = torch.tensor([[[3.0, -4.0], [0.0, 1.0]]])
    assert aggregate_tokens(a).tolist() == [[-1.0, 1.0]]
    assert aggregate_tokens(a, "abs").tolist() == [[7.0, 1.0]]
    assert aggregate_tokens(a, "l2").tolist() == [[5.0, 1.0]]
    with pytest.raises(InputError):
        aggregate_tokens(a, "max")
    with pytest.raises(InputError):
        aggregate_tokens(a[0])


def test_table_records_and_top_tokens(result):
    table = result.table(0)
    assert "unbelievable" not in table and "##believ" in table and "gap=" in table
    top = result.top_tokens(0, k=2)
    assert [abs(s) for _, s in top] == sorted((abs(s) for s in result.example_scores(0)), reverse=True)[:2]
    rec = result.records()
    assert rec[1]["tokens"] == TOKENS[1] and len(rec[1]["attributions"]) == 3
    with pytest.raises(InputError):
        result.to_tokens(5)


def test_save_and_load_roundtrip(result, tmp_path):
    path = result.save(tmp_path / "res.pt")
    back = TokenAttribution.load(path)
    assert back.tokens == TOKENS
    assert back.to_tokens(1) == result.to_tokens(1)
