"""Hugging Face adapters on tiny random models built from configs (no downloads), float64."""

import csv
import json
import warnings

import pytest
import torch

from sciattr.errors import InputError, TargetError

transformers = pytest.importorskip("transformers")

from sciattr.cli import main
from sciattr.text.hf_report import run_hf_batch_cli, run_hf_cli
from sciattr.text.huggingface import (
    HFSeq2SeqAttribution,
    HFTokenAttribution,
    causal_lm_integrated_gradients,
    classifier_integrated_gradients,
    encode_texts,
    hf_integrated_gradients,
    load_local_model,
    model_kind,
    seq2seq_integrated_gradients,
)

F64 = torch.float64
WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "ran", "fast", "slow", "big", "small", "red", "blue", "un",
         "##happy", "##ly", "quick", "brown", "fox", "jumps", "over", "lazy"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SENTENCES = ["the cat sat on the mat", "unhappy dog"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vocab")
    (folder / "vocab.txt").write_text("\n".join(SPECIALS + WORDS) + "\n")
    return transformers.BertTokenizer(str(folder / "vocab.txt"))


def _seeded(build):
    torch.manual_seed(0)
    return build().to(F64).eval()


@pytest.fixture(scope="module")
def bert(tokenizer):
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=24,
                                     num_labels=3, id2label={0: "neg", 1: "neu", 2: "pos"},
                                     label2id={"neg": 0, "neu": 1, "pos": 2})
    return _seeded(lambda: transformers.BertForSequenceClassification(config))


@pytest.fixture(scope="module")
def gpt2(tokenizer):
    config = transformers.GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=2, n_head=2, n_positions=24,
                                     bos_token_id=2, eos_token_id=3)
    return _seeded(lambda: transformers.GPT2LMHeadModel(config))


@pytest.fixture(scope="module")
def bart(tokenizer):
    config = transformers.BartConfig(vocab_size=len(tokenizer), d_model=16, encoder_layers=2, decoder_layers=2,
                                     encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                                     decoder_ffn_dim=32, max_position_embeddings=24, pad_token_id=0, bos_token_id=2,
                                     eos_token_id=3, decoder_start_token_id=3, forced_eos_token_id=None)
    return _seeded(lambda: transformers.BartForConditionalGeneration(config))


@pytest.fixture(scope="module")
def t5(tokenizer):
    config = transformers.T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=2,
                                   num_heads=2, decoder_start_token_id=0, pad_token_id=0, eos_token_id=3,
                                   feed_forward_proj="gated-gelu")
    return _seeded(lambda: transformers.T5ForConditionalGeneration(config))


FORCED = [5, 6, 7, 8, 9, 10, 11, 12, 13, 3]  # a 10-token forced output


# ---------------------------------------------------------------------------------------- classifier
def test_classifier_completeness_and_forward(bert, tokenizer):
    res = classifier_integrated_gradients(bert, tokenizer, SENTENCES, target="pos", steps=24)
    assert isinstance(res, HFTokenAttribution)
    assert float(res.relative_gap.max()) < 1e-8
    enc = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    logits = bert(**enc).logits
    torch.testing.assert_close(res.forward_x, logits[:, 2], rtol=1e-12, atol=1e-12)
    assert res.target_labels == ["pos", "pos"]
    # [CLS] and [SEP] stay in the baseline: exactly zero
    assert res.to_tokens(0)[0] == ("[CLS]", 0.0) and res.to_tokens(0)[-1] == ("[SEP]", 0.0)


def test_predicted_target_and_labels(bert, tokenizer):
    res = classifier_integrated_gradients(bert, tokenizer, SENTENCES, steps=8)
    enc = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    predicted = bert(**enc).logits.argmax(1).tolist()
    assert res.target_labels == [["neg", "neu", "pos"][p] for p in predicted]


def test_parity_with_captum_layer_integrated_gradients(bert, tokenizer):
    captum_attr = pytest.importorskip("captum.attr")
    res = classifier_integrated_gradients(bert, tokenizer, SENTENCES, target=1, baselines="pad", steps=20)
    enc = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids)) | (mask == 0)
    base_ids = torch.where(special, ids, torch.full_like(ids, tokenizer.pad_token_id))

    def forward(input_ids, attention_mask):
        return bert(input_ids=input_ids, attention_mask=attention_mask).logits

    lig = captum_attr.LayerIntegratedGradients(forward, bert.bert.embeddings.word_embeddings)
    theirs = lig.attribute(ids, baselines=base_ids, target=1, additional_forward_args=(mask,), n_steps=20,
                           method="gausslegendre")
    ours = res.attributions["embeddings"]
    scale = float(ours.abs().max())
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7 * scale)


def test_padding_does_not_change_attributions(bert, tokenizer):
    alone = classifier_integrated_gradients(bert, tokenizer, SENTENCES[1], target=0, steps=16)
    batch = classifier_integrated_gradients(bert, tokenizer, SENTENCES, target=0, steps=16)
    assert batch.attention_mask[1].sum() < batch.attention_mask.shape[1]  # the short sentence is padded
    a = [v for _, v in alone.to_tokens(0)]
    b = [v for _, v in batch.to_tokens(1)]
    torch.testing.assert_close(torch.tensor(b), torch.tensor(a), rtol=1e-10, atol=1e-13)


def test_words_sum_their_subwords(bert, tokenizer):
    res = classifier_integrated_gradients(bert, tokenizer, SENTENCES, target=2, steps=16)
    tokens = res.to_tokens(1)
    words = res.to_words(1)
    assert [w for w, _ in words] == ["[CLS]", "unhappy", "dog", "[SEP]"]
    assert [t for t, _ in tokens] == ["[CLS]", "un", "##happy", "dog", "[SEP]"]
    assert words[1][1] == pytest.approx(tokens[1][1] + tokens[2][1], abs=1e-15)
    assert sum(v for _, v in words) == pytest.approx(float(res.delta[1]), rel=1e-8)


def test_mask_baseline_and_bad_baseline(bert, tokenizer):
    res = classifier_integrated_gradients(bert, tokenizer, SENTENCES, target=0, baselines="mask", steps=24)
    assert float(res.relative_gap.max()) < 1e-6
    with pytest.raises(InputError, match="baseline"):
        classifier_integrated_gradients(bert, tokenizer, SENTENCES, baselines="blank")


def test_unknown_label_is_a_target_error(bert, tokenizer):
    with pytest.raises(TargetError, match="label"):
        classifier_integrated_gradients(bert, tokenizer, SENTENCES, target="angry")


# ---------------------------------------------------------------------------------------- causal LM
def test_causal_lm_keeps_first_token_and_completes(gpt2, tokenizer):
    texts = ["cat sat on the", "the big red"]
    res = causal_lm_integrated_gradients(gpt2, tokenizer, texts, target="mat", steps=24, keep_special=False)
    assert float(res.relative_gap.max()) < 1e-8
    assert res.target_labels == ["mat", "mat"]
    for i in range(2):
        assert res.to_tokens(i)[0][1] == 0.0  # the first token stays in the baseline
    # the score is log p(mat | text) after each text's last real token (padding differs per row)
    alone = causal_lm_integrated_gradients(gpt2, tokenizer, texts[1], target="mat", steps=24, keep_special=False)
    torch.testing.assert_close(torch.tensor([v for _, v in res.to_tokens(1)]),
                               torch.tensor([v for _, v in alone.to_tokens(0)]), rtol=1e-10, atol=1e-13)
    ids = tokenizer(texts[1], return_tensors="pt")["input_ids"]
    logp = torch.log_softmax(gpt2(input_ids=ids).logits[0, -1], -1)[tokenizer.convert_tokens_to_ids("mat")]
    assert float(res.forward_x[1]) == pytest.approx(float(logp.detach()), abs=1e-12)


def test_causal_lm_unknown_target_token(gpt2, tokenizer):
    with pytest.raises(TargetError, match="not in the vocabulary"):
        causal_lm_integrated_gradients(gpt2, tokenizer, "the cat", target="zebra")


# ---------------------------------------------------------------------------------------- encoder-decoder
@pytest.mark.parametrize("name, baseline, steps", [("bart", "zeros", 24), ("t5", "pad", 96)])
def test_seq2seq_completeness_for_every_output_token(request, tokenizer, name, baseline, steps):
    model = request.getfixturevalue(name)
    res = seq2seq_integrated_gradients(model, tokenizer, SENTENCES, [FORCED, FORCED[:4]], baselines=baseline,
                                       steps=steps)
    assert isinstance(res, HFSeq2SeqAttribution)
    assert [len(t) for t in res.output_tokens] == [10, 4]
    assert res.matrix(0).shape == (10, len(res.tokens[0]))
    # T5 computes its RMS-norm variance in float32: completeness to ~1e-5 there
    assert float(res.relative_gap.max()) < (1e-8 if name == "bart" else 1e-4)
    torch.testing.assert_close(res.matrix(1).sum(1), res.delta[1, :4], rtol=1e-5, atol=1e-9)
    assert bool((res.forward_x[1, 4:] == 0).all())


def test_t5_zero_baseline_is_degenerate(t5, tokenizer):
    """T5 has no absolute position embeddings and RMS-normalizes its input: the zero-embedding path is
    flat except near alpha = 0, so quadrature misses the change -- hence baseline='pad' for T5."""
    res = seq2seq_integrated_gradients(t5, tokenizer, SENTENCES[:1], [FORCED], baselines="zeros", steps=24)
    assert float((res.completeness_gap.abs() / res.delta.abs()).max()) > 0.05


@pytest.mark.parametrize("strategy", ["multi_target", "replicate"])
def test_seq2seq_batched_equals_per_token(bart, tokenizer, strategy):
    kw = {"steps": 8}
    ref = seq2seq_integrated_gradients(bart, tokenizer, SENTENCES, [FORCED, FORCED[:4]], strategy="per_token", **kw)
    res = seq2seq_integrated_gradients(bart, tokenizer, SENTENCES, [FORCED, FORCED[:4]], strategy=strategy, **kw)
    torch.testing.assert_close(res.attributions["embeddings"], ref.attributions["embeddings"], rtol=1e-9,
                               atol=1e-13)


def test_seq2seq_padding_invariance_and_words(bart, tokenizer):
    alone = seq2seq_integrated_gradients(bart, tokenizer, SENTENCES[1], [FORCED[:4]], steps=12)
    batch = seq2seq_integrated_gradients(bart, tokenizer, SENTENCES, [FORCED, FORCED[:4]], steps=12)
    torch.testing.assert_close(batch.matrix(1), alone.matrix(0), rtol=1e-10, atol=1e-13)
    words = batch.to_words(1, target=2)
    assert [w for w, _ in words] == ["[CLS]", "unhappy", "dog", "[SEP]"]
    assert sum(v for _, v in words) == pytest.approx(float(batch.matrix(1)[2].sum()), abs=1e-12)


def test_seq2seq_generates_when_no_output_is_given(bart, tokenizer):
    res = seq2seq_integrated_gradients(bart, tokenizer, SENTENCES, max_new_tokens=5, steps=8)
    enc = tokenizer(SENTENCES[:1], return_tensors="pt")
    generated = bart.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], do_sample=False,
                              max_new_tokens=5)
    body = generated[0, 1:].tolist()
    assert tokenizer.convert_tokens_to_ids(res.output_tokens[0]) == body[: len(res.output_tokens[0])]
    assert 1 <= len(res.output_tokens[0]) <= 5


# ---------------------------------------------------------------------------------------- dispatch, hooks
def test_model_kind_and_dispatch(bert, gpt2, bart, tokenizer):
    assert [model_kind(m) for m in (bert, gpt2, bart)] == ["classifier", "causal_lm", "seq2seq"]
    res = hf_integrated_gradients(bert, tokenizer, "the cat", target=1, steps=8)
    assert res.target_labels == ["neu"]
    with pytest.raises(InputError, match="expected a Hugging Face"):
        model_kind(torch.nn.Linear(2, 2))


class IdsOnly(torch.nn.Module):
    """A model whose forward takes ids only: attributed through a scoped embedding hook."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert
        self.config = bert.config

    def get_input_embeddings(self):
        return self.bert.get_input_embeddings()

    def forward(self, input_ids, attention_mask=None):
        return self.bert(input_ids=input_ids, attention_mask=attention_mask)


def test_models_without_inputs_embeds_use_a_scoped_hook(bert, tokenizer):
    wrapped = IdsOnly(bert).eval()
    ours = classifier_integrated_gradients(wrapped, tokenizer, SENTENCES, target=2, steps=12)
    direct = classifier_integrated_gradients(bert, tokenizer, SENTENCES, target=2, steps=12)
    torch.testing.assert_close(ours.attributions["embeddings"], direct.attributions["embeddings"], rtol=1e-12,
                               atol=1e-14)
    assert not bert.get_input_embeddings()._forward_hooks  # removed after the call


# ---------------------------------------------------------------------------------------- bad input
def test_bad_rows_are_reported_and_the_rest_processed(bert, tokenizer):
    too_long = " ".join(["cat"] * 30)
    res = classifier_integrated_gradients(bert, tokenizer, ["", "the cat", too_long, 7, "   "], target=0, steps=8)
    assert res.rows == [1]
    by_row = {e["row"]: e["message"] for e in res.errors}
    assert set(by_row) == {0, 2, 3, 4}
    assert "non-empty" in by_row[0] and "non-empty" in by_row[4]
    assert "at most 24 tokens" in by_row[2] and "got 32" in by_row[2] and "truncation=True" in by_row[2]
    assert "expected a text" in by_row[3]


def test_truncation_warns_and_notes(bert, tokenizer):
    too_long = " ".join(["cat"] * 30)
    with pytest.warns(UserWarning, match="truncated from 32 to 24"):
        res = classifier_integrated_gradients(bert, tokenizer, too_long, target=0, truncation=True, steps=8)
    assert len(res.tokens[0]) == 24 and res.tokens[0][-1] == "[SEP]"
    assert any("truncated" in n for n in res.notes[0])


def test_all_rows_bad_and_unknown_words(bert, tokenizer):
    with pytest.raises(InputError, match="no row could be used: row 0: .*row 1"):
        classifier_integrated_gradients(bert, tokenizer, ["", ""], target=0)
    batch = encode_texts(tokenizer, ["the zebra"])
    assert batch.notes[0] and "zebra" in batch.notes[0][0]


# ---------------------------------------------------------------------------------------- offline folder, cli
@pytest.fixture(scope="module")
def bert_folder(bert, tokenizer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny-bert"
    bert.to(torch.float32).save_pretrained(folder)
    bert.to(F64)
    tokenizer.save_pretrained(folder)
    return folder


def test_run_hf_cli_on_a_local_folder(bert_folder, tmp_path, capsys):
    folder = bert_folder
    model, _tok = load_local_model(folder)
    assert type(model).__name__ == "BertForSequenceClassification" and model.dtype == F64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paths = run_hf_cli("the unhappy cat", folder, "pos", tmp_path / "report.html", steps=16)
    page = paths[0].read_text()
    assert "unhappy" in page and "##happy" in page and "target pos" in page
    assert "rel gap" in capsys.readouterr().out
    with pytest.raises(InputError, match="config.json"):
        load_local_model(tmp_path / "missing")


def test_per_row_targets_follow_the_usable_rows(bert, tokenizer):
    res = classifier_integrated_gradients(bert, tokenizer, ["the cat", "", "dog"], target=["pos", 0, 1], steps=8)
    assert res.rows == [0, 2] and res.target_labels == ["pos", "neu"]
    with pytest.raises(TargetError, match="one target per text \\(3\\); got 2"):
        classifier_integrated_gradients(bert, tokenizer, ["the cat", "", "dog"], target=[0, 1])


def test_run_hf_batch_cli_rows_equal_single_texts(bert_folder, tmp_path, capsys):
    too_long = " ".join(["cat"] * 30)
    infile = tmp_path / "in.txt"
    infile.write_text(f"the cat sat on the mat\n\nunhappy dog\tpos\n{too_long}\nthe dog\tweird\nthe fox\n")
    paths = run_hf_batch_cli(infile, bert_folder, None, tmp_path / "out", steps=16, tolerance=0.01)
    index, json_path, csv_path = paths[:3]
    rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    assert [r["status"] for r in rows] == ["ok", "error", "ok", "error", "error", "ok"]
    assert "non-empty" in rows[1]["error"] and "at most 24 tokens" in rows[3]["error"]
    assert "'weird'" in rows[4]["error"]
    err = capsys.readouterr().err
    assert all(f"row {k}  error: " in err for k in (1, 3, 4)) and "row 0" not in err
    model, tok = load_local_model(bert_folder)
    records = {r["row"]: r for r in json.loads(json_path.read_text(encoding="utf-8"))["rows"]}
    for row, text, target in [(0, "the cat sat on the mat", "predicted"), (2, "unhappy dog", "pos"),
                              (5, "the fox", "predicted")]:
        alone = classifier_integrated_gradients(model, tok, text, target=target, steps=16, tolerance=0.01,
                                                max_steps=1024)
        line, fx, fb = rows[row], float(alone.forward_x[0]), float(alone.forward_baseline[0])
        assert line["target"] == alone.target_labels[0]
        assert float(line["prediction"]) == pytest.approx(fx, rel=1e-9)
        assert float(line["baseline_score"]) == pytest.approx(fb, rel=1e-9)
        assert float(line["relative_gap"]) < 0.01
        assert records[row]["tokens"] == alone.tokens[0]
        torch.testing.assert_close(torch.tensor(records[row]["attributions"], dtype=F64),
                                   torch.tensor(alone.example_scores(0), dtype=F64), rtol=0, atol=0.01 * abs(fx - fb))
        page = (tmp_path / "out" / line["report"]).read_text()
        assert f"tiny-bert: {text}" in page and f"target {line['target']}" in page and "row 1:" not in page
    assert "reports/row5.html" in index.read_text()


def test_hf_batch_command_line_exit_codes(bert_folder, tmp_path, capsys):
    from sciattr.run import merge

    infile = tmp_path / "in.txt"
    infile.write_text("the cat\n\n")
    out = tmp_path / "out"
    assert main(["text", "--model", str(bert_folder), "--file", str(infile), "--target", "neg", "--out-dir",
                 str(out), "--quiet"]) == 0
    rows = merge(out)
    assert [(r.status, r.target if r.status == "ok" else "") for r in rows.itertuples()] == [("ok", "neg"),
                                                                                              ("error", "")]
    err = capsys.readouterr().err
    assert "row 1  error: expected a non-empty text" in err and "1 of 2 rows failed" in err
    infile.write_text("\nthe cat\tweird\n")
    assert main(["text", "--model", str(bert_folder), "--file", str(infile), "--out-dir", str(tmp_path / "out2"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no row could be attributed: row 0: expected a non-empty text" in err and "row 1: expected" in err


def test_truncate_option_keeps_the_first_tokens(bert_folder, tmp_path, capsys):
    text = " ".join(["cat"] * 30)
    assert main(["text", text, "--model", str(bert_folder), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "at most 24 tokens" in err and "--truncate" in err
    with pytest.warns(UserWarning, match="truncated from 32 to 24 tokens"):
        assert main(["text", text, "--model", str(bert_folder), "--truncate", "--out",
                     str(tmp_path / "r.html")]) == 0
    assert "truncated from 32 to 24 tokens" in (tmp_path / "r.html").read_text()
    model, tok = load_local_model(bert_folder)
    with pytest.warns(UserWarning, match="truncated"):
        cut = classifier_integrated_gradients(model, tok, text, truncation=True, steps=16)
    assert len(cut.tokens[0]) == 24 and float(cut.relative_gap[0]) < 0.01


def test_text_and_file_together_is_an_error(bert_folder, tmp_path, capsys):
    infile = tmp_path / "in.txt"
    infile.write_text("the cat\n")
    assert main(["text", "the dog", "--model", str(bert_folder), "--file", str(infile)]) == 2
    assert "not both" in capsys.readouterr().err


def test_seq2seq_cli_target_number_is_output_text_and_unknown_output_warns(bart, tokenizer):
    from sciattr.text.hf_report import _CliModel

    cli = _CliModel.__new__(_CliModel)
    cli.kind = "seq2seq"
    assert cli.normalize_target(42) == "42" and cli.normalize_target("cat") == "cat"
    cli.kind = "classifier"
    assert cli.normalize_target(1) == 1
    with pytest.warns(UserWarning, match=r"1 piece\(s\) not in the vocabulary became \[UNK\].*'zebra'"):
        res = seq2seq_integrated_gradients(bart, tokenizer, "the cat", ["the zebra"], steps=16)
    assert "[UNK]" in res.output_tokens[0]
