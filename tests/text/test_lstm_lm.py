"""The shipped BBC LSTM language model: card perplexity, Fig. 9 reports, completeness, CLI output."""

import io
import json

import pytest
import torch

from sciattr.text.corpus import language_model_tokens, load_bbc_articles, split_articles
from sciattr.text.lstm_lm import LSTMLanguageModel, lm_attribution, lm_report, perplexity
from sciattr.text.report import run_text_cli
from sciattr.zoo.text_models import ZOO_TEXT, load_lstm_lm


@pytest.fixture(scope="module")
def lm():
    return load_lstm_lm()


def test_shipped_files_are_small_and_float16():
    from safetensors.torch import load_file

    path = ZOO_TEXT / "lstm_lm.safetensors"
    assert path.stat().st_size < 5 * 2**20
    assert {t.dtype for t in load_file(str(path)).values()} == {torch.float16}


def test_perplexity_on_the_fixed_slice_matches_the_card(lm):
    check = lm.card["check_slice"]
    split = split_articles(load_bbc_articles(), seed=lm.card["data"]["seed"])
    stream = language_model_tokens(split[check["split"]])[: check["first_tokens"]]
    ids = torch.tensor([lm.vocab.id(t) for t in stream])
    ppl = perplexity(lm.model, ids, batch_size=check["batch_size"], bptt=check["bptt"])
    assert ppl == pytest.approx(check["perplexity"], rel=1e-4)
    assert lm.card["test_perplexity"] < len(lm.vocab) / 20  # far better than uniform guessing


def test_report_fig9_completeness_and_saturation_curve(lm):
    rep = lm_report("the shareholders claimed more", "than", lm=lm)
    assert rep.words == ["the", "shareholders", "claimed", "more"]
    assert rep.next_word == "than"
    with torch.no_grad():
        ids = torch.tensor([[lm.vocab.id(w) for w in ["<eos>", *rep.words]]])
        prob = torch.softmax(lm.model(ids)[0, -1], -1)[lm.vocab.id("than")]
    assert rep.prediction == pytest.approx(float(prob), rel=1e-5)
    delta = rep.prediction - rep.baseline_score
    assert rep.total_integrated_gradients == pytest.approx(delta, abs=0.01 * abs(delta))
    assert rep.alphas[0] == 0.0 and rep.alphas[-1] == 1.0 and len(rep.alphas) == len(rep.curve)
    assert rep.curve[-1] == pytest.approx(rep.prediction)
    assert rep.curve[0] == pytest.approx(rep.baseline_score)
    # "than" follows "more": the last word carries the largest attribution (the paper's Fig. 9 finding)
    assert max(range(4), key=lambda k: rep.integrated_gradients[k]) == 3
    assert len(rep.gradients) == 4 and "Prediction for than" in str(rep)


def test_batch_completeness_within_one_percent(lm):
    sentences = ["the government said it would cut taxes", "the film won an award at the",
                 "shares in the company rose by 5 %", "he scored two goals in the second"]
    res = lm_attribution(lm.model, lm.vocab, sentences, None, steps=64)
    assert res.n_examples == 4 and not res.errors
    assert float(res.relative_gap.max()) < 0.01
    logres = lm_attribution(lm.model, lm.vocab, sentences[:2], ["said", "best"], score="log_prob", steps=64)
    assert float(logres.relative_gap.max()) < 0.01


def test_cli_writes_html_and_prints(lm, tmp_path):
    stream = io.StringIO()
    (path,) = run_text_cli("the shareholders claimed more", "lstm-lm", "than", tmp_path / "lm.html",
                           stream=stream, text_model=lm)
    page = path.read_text()
    assert page.count('<span class="tok ') == 5 + 3  # <eos> + 4 words, and the legend
    printed = stream.getvalue()
    assert "target than" in printed and "more(" in printed and "\x1b" not in printed
    assert json.loads(json.dumps(lm.card))["config"]["vocab_size"] == len(lm.vocab)


def test_model_class_checks_arguments():
    with pytest.raises(Exception, match="tied weights"):
        LSTMLanguageModel(10, 8, 6)
    model = LSTMLanguageModel(10, 6, 6, dropout=0.0).eval()
    with pytest.raises(Exception, match="input_ids or inputs_embeds"):
        model()
