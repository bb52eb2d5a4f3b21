"""One vocabulary and the settings object across the text entry points; pandas inputs and tables;
strict loading; files that are not UTF-8; the g2p word-length limit."""

import json
import shutil
import time
import warnings

import pytest
import torch

from sciattr.errors import InputError, SciAttrError
from sciattr.settings import Settings
from sciattr.text.classifier import classifier_attribution
from sciattr.text.corpus import PAD, UNK
from sciattr.text.lstm_lm import lm_attribution, lm_report
from sciattr.text.report import read_batch_file
from sciattr.zoo.text_models import ZOO_TEXT, load_lstm_lm, load_topic_classifier


def test_settings_object_and_keywords_give_the_same_numbers(classifier):
    model, vocab = classifier
    texts = ["the cat sat on the mat", "the dog ran"]
    by_keywords = classifier_attribution(model, vocab, texts, "sports", steps=16, rule="gausslegendre")
    by_settings = classifier_attribution(model, vocab, texts, "sports", settings=Settings(steps=16, rule="gausslegendre"))
    torch.testing.assert_close(by_keywords.token_scores(), by_settings.token_scores(), rtol=0, atol=0)
    # a keyword replaces the field of the given settings
    finer = classifier_attribution(model, vocab, texts, "sports", settings=Settings(steps=16, rule="gausslegendre"),
                                   steps=64)
    assert int(finer.steps.max()) == 64 and float(finer.relative_gap.max()) < float(by_settings.relative_gap.max())


def test_baselines_word_and_old_spellings(lm, classifier):
    model, vocab = classifier
    zeros = classifier_attribution(model, vocab, ["the cat"], 0, steps=32)
    pad = classifier_attribution(model, vocab, ["the cat"], 0, steps=32, baselines="pad")
    unk = classifier_attribution(model, vocab, ["the cat"], 0, steps=32, baselines="unk")
    with torch.no_grad():
        logits_pad = model(torch.tensor([[vocab.index[PAD]] * 2]))
        logits_unk = model(torch.tensor([[vocab.index[UNK]] * 2]))
    assert float(pad.forward_baseline[0]) == pytest.approx(float(logits_pad[0, 0]), abs=1e-12)
    assert float(unk.forward_baseline[0]) == pytest.approx(float(logits_unk[0, 0]), abs=1e-12)
    # the classifier's embedding has padding_idx: the PAD row is the zero vector, so "pad" is the zero baseline
    assert float(model.embed.weight.detach()[vocab.index[PAD]].abs().sum()) == 0.0
    assert float(zeros.forward_baseline[0]) == pytest.approx(float(pad.forward_baseline[0]), abs=1e-12)
    # UNK's embedding is not zero: another starting point, another baseline output
    assert float(unk.forward_baseline[0]) != pytest.approx(float(zeros.forward_baseline[0]), abs=1e-6)
    for call, args in [(classifier_attribution, (model, vocab, ["the cat"])), (lm_attribution, (*lm, ["the cat"]))]:
        with pytest.raises(InputError, match="use 'baselines'"):
            call(*args, baseline="pad")
        with pytest.raises(InputError, match="use 'target'"):
            call(*args, task=0)
        with pytest.raises(InputError, match="use 'steps'"):
            call(*args, n_steps=8)


def test_pandas_series_inputs_and_dataframes(lm, classifier):
    pd = pytest.importorskip("pandas")
    model, vocab = classifier
    texts = pd.Series(["the cat sat", "", "the dog ran on the mat"], index=[101, 102, 103])
    res = classifier_attribution(model, vocab, texts, pd.Series(["sports", "business", 0], index=texts.index),
                                 steps=32)
    assert res.rows == [0, 2] and res.row_ids == [101, 102, 103]
    examples = res.to_dataframe("example")
    assert list(examples["row"]) == [0, 1, 2] and list(examples["id"]) == [101, 102, 103]
    assert list(examples["status"]) == ["ok", "error", "ok"] and "non-empty" in examples.loc[1, "error"]
    assert examples.loc[0, "prediction"] == pytest.approx(float(res.forward_x[0]))
    assert examples.loc[2, "gap"] == pytest.approx(float(res.completeness_gap[1]), abs=1e-12)
    tokens = res.to_dataframe("token")
    ok = tokens[tokens.status == "ok"]
    assert list(ok[ok.row == 2]["token"]) == ["the", "dog", "ran", "on", "the", "mat"]
    assert set(ok[ok.row == 2]["id"]) == {103}
    assert ok[ok.row == 2]["attribution"].sum() == pytest.approx(res.total(1), abs=1e-12)
    words = res.to_dataframe("word")
    assert words[words.row == 0]["attribution"].sum() == pytest.approx(res.total(0), abs=1e-12)
    assert res.to_records("token") == tokens.replace({float("nan"): None}).to_dict("records") or len(tokens)
    with pytest.raises(InputError, match="level"):
        res.to_dataframe("atom")
    sentences = pd.Series(["the cat sat on", "the dog ran"], index=["a", "b"])
    lm_res = lm_attribution(*lm, sentences, "more", steps=16)
    assert lm_res.target_labels == ["more", "more"] and lm_res.to_dataframe()["id"].tolist() == ["a", "b"]


def test_lm_report_needs_a_model_and_the_zoo_supplies_it():
    with pytest.raises(TypeError):
        lm_report("the cat")  # no hidden default model: the domain does not import the zoo
    import subprocess
    import sys

    code = ("import sys, sciattr.text.lstm_lm, sciattr.text.report, sciattr.text.classifier, sciattr.text.seq2seq, "
            "sciattr.text.huggingface, sciattr.text.continuation; "
            "print(any(m.startswith('sciattr.zoo') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _copy_shipped(tmp_path, stem):
    for suffix in (".safetensors", "_vocab.json", "_card.json"):
        shutil.copy(ZOO_TEXT / f"{stem}{suffix}", tmp_path / f"{stem}{suffix}")


def test_loading_is_strict_and_the_card_describes_only_its_weights(tmp_path):
    from safetensors.torch import load_file, save_file

    _copy_shipped(tmp_path, "topic_classifier")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shipped = load_topic_classifier(folder=tmp_path)
    assert shipped.card["test_accuracy_articles"] == pytest.approx(0.9641)
    state = load_file(str(tmp_path / "topic_classifier.safetensors"))
    renamed = {f"encoder.{k}": v for k, v in state.items()}
    save_file(renamed, str(tmp_path / "topic_classifier.safetensors"))
    with pytest.raises(InputError, match=r"missing \['embed.weight'.*unexpected \['encoder.embed.weight'"):
        load_topic_classifier(folder=tmp_path)
    # the right names but other values: loaded, and the card's accuracy is withdrawn with a note
    save_file({k: torch.zeros_like(v) for k, v in state.items()}, str(tmp_path / "topic_classifier.safetensors"))
    with pytest.warns(UserWarning, match="measurements of the card"):
        other = load_topic_classifier(folder=tmp_path)
    assert "test_accuracy_articles" not in other.card and "SHA-256" in other.card["note"]
    assert float(other.model.out.weight.abs().sum()) == 0.0
    _copy_shipped(tmp_path, "lstm_lm")  # tied weights stored once load strictly
    lm = load_lstm_lm(folder=tmp_path)
    assert lm.model.decoder.weight is lm.model.embed.weight and "test_perplexity" in lm.card


def test_files_that_are_not_utf8_name_the_file(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 au lait\tsports\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin1\.txt.*not.*UTF-8|UTF-8.*latin1\.txt") as info:
        read_batch_file(path)
    assert "byte 3" in str(info.value)
    _copy_shipped(tmp_path, "topic_classifier")
    (tmp_path / "topic_classifier_vocab.json").write_bytes(b'{"words": ["\xff"]}')
    with pytest.raises(InputError, match="topic_classifier_vocab.json"):
        load_topic_classifier(folder=tmp_path)


def test_huggingface_folders_that_are_not_models(tmp_path):
    pytest.importorskip("transformers")
    from sciattr.text.huggingface import load_local_model

    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(SciAttrError, match="model_type"):
        load_local_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 30, "hidden_size": 8,
                                                      "num_hidden_layers": 1, "num_attention_heads": 2,
                                                      "intermediate_size": 16}))
    with pytest.raises(SciAttrError, match="expected model weights"):
        load_local_model(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(SciAttrError, match="JSON"):
        load_local_model(tmp_path)


def test_g2p_words_have_a_maximum_length():
    from sciattr.text import seq2seq

    try:
        model = seq2seq.load_g2p()
    except SciAttrError:
        pytest.skip("g2p-en weights not installed")
    word = "a" * 300
    started = time.perf_counter()
    with pytest.raises(InputError, match=f"at most {seq2seq.MAX_WORD_LENGTH} letters.*got 300"):
        seq2seq.attribute_g2p(word, model=model, steps=8)
    res = seq2seq.attribute_g2p(["cat", word], model=model, steps=8)
    assert res.rows == [0] and "truncate=True" in res.errors[0]["message"]
    with pytest.warns(UserWarning, match="truncated from 300"):
        cut = seq2seq.attribute_g2p(word, model=model, steps=8, truncate=True)
    assert len(cut.tokens[0]) == seq2seq.MAX_WORD_LENGTH + 1 and "truncated" in cut.notes[0][0]
    assert time.perf_counter() - started < 20


def test_old_spellings_are_refused_at_every_text_entry_point(lm, classifier):
    """The same words everywhere: each old spelling names its replacement, before any work is done."""
    from sciattr.text.continuation import continuation_integrated_gradients
    from sciattr.text.embedding import EmbeddingModel, embedding_integrated_gradients

    model, vocab = classifier
    ids = torch.tensor([[vocab.index["the"], vocab.index["cat"]]])
    calls = {
        "classifier_attribution": lambda **kw: classifier_attribution(model, vocab, ["the cat"], **kw),
        "lm_attribution": lambda **kw: lm_attribution(*lm, ["the cat"], **kw),
        "lm_report": lambda **kw: lm_report("the cat", lm=type("LM", (), {"model": lm[0], "vocab": lm[1]}), **kw),
        "embedding_integrated_gradients": lambda **kw: embedding_integrated_gradients(
            EmbeddingModel(model), ids, target=0, **kw),
        "continuation_integrated_gradients": lambda **kw: continuation_integrated_gradients(
            EmbeddingModel(lm[0], call="embeddings"), [1, 2, 3], **kw),
    }
    old = {"baseline": ("pad", "baselines"), "task": (0, "target"), "n_steps": (8, "steps"),
           "internal_batch_size": (4, "batch_size")}
    for call in calls.values():
        for word, (value, new) in old.items():
            with pytest.raises(InputError, match=f"use '{new}'"):
                call(**{word: value})
