"""The shipped BBC topic classifier: card accuracy, completeness, HTML and terminal output."""

import csv
import io
import json
import re

import pytest
import torch

from sciattr.text.classifier import DEFAULT_MAX_LENGTH, accuracy, classifier_attribution
from sciattr.text.corpus import TOPICS, load_bbc_articles, split_articles, tokenize
from sciattr.text.embedding import pad_batch
from sciattr.text.report import run_text_batch_cli, run_text_cli
from sciattr.zoo.text_models import ZOO_TEXT, load_text_model, load_topic_classifier

TEXTS = {
    "sports": "the striker scored twice as the team won the cup final",
    "business": "shares fell after the bank reported lower profits and rising debt",
    "tech": "the new mobile phone software lets users download music and games",
}


@pytest.fixture(scope="module")
def clf():
    return load_topic_classifier()


def test_card_accuracy_is_reproduced(clf):
    split = split_articles(load_bbc_articles(), seed=clf.card["data"]["seed"])
    docs = [clf.vocab.encode(tokenize(a.text))[0][: clf.card["max_length"]] for a in split["test"]]
    ids, mask = pad_batch(docs, pad_id=clf.vocab.index["<pad>"])
    labels = torch.tensor([TOPICS.index(a.topic) for a in split["test"]])
    measured = accuracy(clf.model, ids, mask, labels)
    assert measured == pytest.approx(clf.card["test_accuracy_articles"], abs=1e-4)
    assert clf.card["test_accuracy_articles"] > 0.85
    assert (ZOO_TEXT / "topic_classifier.safetensors").stat().st_size < 5 * 2**20
    assert clf.max_length == DEFAULT_MAX_LENGTH


def test_obvious_sentences_and_completeness(clf):
    res = classifier_attribution(clf.model, clf.vocab, list(TEXTS.values()), None, steps=64)
    assert res.target_labels == list(TEXTS)
    assert float(res.relative_gap.max()) < 0.01
    # softmax probabilities saturate steeply: adaptive steps reach 1% where 64 nodes do not
    probs = classifier_attribution(clf.model, clf.vocab, list(TEXTS.values()), list(TEXTS), score="prob",
                                   steps=64, tolerance=0.01)
    assert float(probs.relative_gap.max()) < 0.01 and int(probs.steps.max()) > 64
    # topic words carry the largest attribution to their topic
    top_sport = [t for t, _ in res.top_tokens(0, k=3)]
    assert {"striker", "scored", "cup", "team", "final"} & set(top_sport)


def test_cli_html_colours_follow_signs(clf, tmp_path):
    stream = io.StringIO()
    (path,) = run_text_cli(TEXTS["sports"], "topic-classifier", "sports", tmp_path / "c.html", stream=stream,
                           text_model=clf)
    page = path.read_text()
    spans = re.findall(r'<span class="tok (pos|neg|zero)"[^>]*data-attr="([^"]+)"[^>]*>([^<]*)</span>', page)
    assert [s[2] for s in spans] == tokenize(TEXTS["sports"])
    for sign, value, _ in spans:
        assert sign == "zero" or (sign == "pos") == (float(value) > 0)
    assert any(sign == "pos" for sign, _, _ in spans)
    assert "target sports" in stream.getvalue()


def test_batch_cli_reports_bad_rows_and_processes_the_rest(clf, tmp_path):
    infile = tmp_path / "in.txt"
    infile.write_text(f"{TEXTS['business']}\n\n{TEXTS['tech']}\tpolitics\nthe cup\tweather\n")
    stream = io.StringIO()
    paths = run_text_batch_cli(infile, "topic-classifier", None, tmp_path / "out", stream=stream, text_model=clf)
    payload = json.loads(paths[1].read_text())
    assert [r["row"] for r in payload["rows"]] == [0, 2]
    assert [r["target"] for r in payload["rows"]] == ["business", "politics"]
    assert [e["row"] for e in payload["errors"]] == [1, 3]
    assert "row 3  error: expected a class name" in stream.getvalue()
    assert "row 1:" in paths[0].read_text()
    table = list(csv.DictReader(paths[2].open(encoding="utf-8")))
    assert [(r["status"], r["target"]) for r in table] == [("ok", "business"), ("error", ""), ("ok", "politics"),
                                                           ("error", "")]
    assert "expected a class name" in table[3]["error"] and table[1]["error"]
    assert [float(r["prediction"]) for r in table[::2]] == [r["forward_x"] for r in payload["rows"]]
    assert table[0]["tokens"].startswith("shares:")


def test_loader_by_name():
    assert load_text_model("topic-classifier").model.labels == list(TOPICS)
    with pytest.raises(Exception, match="expected a model name"):
        load_text_model("bert")
