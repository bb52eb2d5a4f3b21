"""Bad text input: clear errors, bad rows reported per row, the rest processed, nothing dropped."""

import warnings

import pytest

from sciattr.errors import InputError
from sciattr.text.classifier import classifier_attribution
from sciattr.text.corpus import UNK, Vocabulary, encode_texts
from sciattr.text.lstm_lm import lm_attribution
from sciattr.text.report import attribute_texts, read_batch_file
from sciattr.zoo.text_models import TextModel
from tests.text.conftest import WORDS


def test_encode_texts_reports_each_bad_row():
    vocab = Vocabulary([UNK] + WORDS)
    batch = encode_texts(["the cat", "", "   ", None, "the zebra sat", "cat " * 5], vocab, max_length=4)
    assert batch.rows == [0, 4]
    assert [e["row"] for e in batch.errors] == [1, 2, 3, 5]
    assert "non-empty" in batch.errors[0]["message"] and "non-empty" in batch.errors[1]["message"]
    assert "expected a string; got NoneType" == batch.errors[2]["message"]
    assert "expected at most 4 tokens" in batch.errors[3]["message"] and "got 5" in batch.errors[3]["message"]
    assert batch.notes[1] == ["1 unknown word(s) mapped to <unk>: zebra"]
    assert batch.ids[1] == [1, vocab.unk_id, 3]
    assert batch.tokens[1] == ["the", "zebra", "sat"]  # the text shown keeps the original word


def test_truncation_is_explicit_and_noted():
    vocab = Vocabulary([UNK] + WORDS)
    with pytest.warns(UserWarning, match="truncated from 5 to the first 4"):
        batch = encode_texts(["cat " * 5], vocab, max_length=4, truncate=True)
    assert len(batch.ids[0]) == 4 and batch.notes[0] == ["truncated from 5 to the first 4 tokens"]


def test_language_model_batch_with_bad_rows(lm):
    model, vocab = lm
    texts = ["the cat sat on the mat", "", "the zebra ran", "dog " * 120]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = lm_attribution(model, vocab, texts, ["dog", None, "walrus", None], steps=16)
    assert res.rows == [0, 2] and res.n_examples == 2
    assert [e["row"] for e in res.errors] == [1, 3]
    assert "expected at most 100 tokens" in res.errors[1]["message"]
    assert res.target_labels == ["dog", UNK]
    assert "next word 'walrus' is not in the vocabulary; scoring <unk>" in res.notes[1]
    assert any("zebra" in n for n in res.notes[1])
    assert float(res.relative_gap.max()) < 1e-3
    assert "row 1: error" in res.table() and "row 3: error" in res.table()


def test_classifier_unknown_topic_is_a_row_error(classifier):
    model, vocab = classifier
    texts = ["the cat", "dog ran", "the mat"]
    res = classifier_attribution(model, vocab, texts, ["sports", "politics", 1], steps=8)
    assert res.rows == [0, 2] and res.target_labels == ["sports", "sports"]
    assert res.errors[0]["row"] == 1
    assert "expected a class name in ['business', 'sports']" in res.errors[0]["message"]


def test_all_rows_bad_raises_with_every_message(classifier):
    model, vocab = classifier
    with pytest.raises(InputError, match=r"row 0: expected a non-empty text.*row 1: expected a string"):
        classifier_attribution(model, vocab, ["", 3.5], steps=4)


def test_mismatched_target_count(lm, classifier):
    with pytest.raises(InputError, match="one target per text"):
        lm_attribution(*lm, ["the cat"], ["dog", "cat"])
    with pytest.raises(InputError, match="one target per text"):
        classifier_attribution(*classifier, ["the cat"], [0, 1])


def test_attribute_texts_with_a_given_model(classifier):
    model, vocab = classifier
    text_model = TextModel("topic-classifier", model, vocab, {"max_length": 3})
    res = attribute_texts(["the cat", "the cat sat on"], "topic-classifier", ["predicted", None],
                          text_model=text_model, steps=4)
    assert res.rows == [0] and "expected at most 3 tokens" in res.errors[0]["message"]
    with pytest.raises(InputError, match="expected a model name"):
        attribute_texts(["x"], "gpt", text_model=text_model)


def test_batch_file_reading(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("the cat\tsports\n\nthe dog\n")
    texts, targets = read_batch_file(path)
    assert texts == ["the cat", "", "the dog"] and targets == ["sports", None, None]
    with pytest.raises(InputError, match="not a file"):
        read_batch_file(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(InputError, match="empty file"):
        read_batch_file(tmp_path / "empty.txt")
