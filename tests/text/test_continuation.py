"""Whole continuations of a tiny random GPT-2 (float64, built from a config, no downloads)."""

import re

import pytest
import torch

from sciattr.errors import InputError

transformers = pytest.importorskip("transformers")

from sciattr.text.continuation import continuation_integrated_gradients, word_ids_of
from sciattr.text.embedding import embedding_integrated_gradients
from sciattr.text.render import write_html

F64 = torch.float64
WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "ran", "fast", "slow", "big", "small", "red", "blue", "un",
         "##happy", "##ly", "quick", "brown", "fox", "jumps", "over", "lazy"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
GL = {"steps": 32, "rule": "gausslegendre"}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vocab")
    (folder / "vocab.txt").write_text("\n".join(SPECIALS + WORDS) + "\n")
    return transformers.BertTokenizer(str(folder / "vocab.txt"))


@pytest.fixture(scope="module")
def gpt2(tokenizer):
    config = transformers.GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=2, n_head=2, n_positions=24,
                                     bos_token_id=2, eos_token_id=3)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config).to(F64).eval()


def test_each_row_equals_its_own_integrated_gradients_call(gpt2):
    prompt, continuation = [7, 8, 9, 10], [11, 12, 13, 22]
    res = continuation_integrated_gradients(gpt2, prompt, continuation, **GL)
    assert res.matrix(0).shape == (4, 7)
    for t, token in enumerate(continuation):
        ids = torch.tensor([prompt + continuation[:t]])
        fixed = torch.zeros_like(ids, dtype=torch.bool)
        fixed[0, 0] = True
        alone = embedding_integrated_gradients(gpt2, ids, target=token, score="log_prob", position="last",
                                               fixed=fixed, **GL)
        width = len(prompt) + t
        torch.testing.assert_close(res.matrix(0)[t, :width], torch.tensor(alone.example_scores(0), dtype=F64),
                                   rtol=0, atol=1e-13)
        assert float(res.matrix(0)[t, width:].abs().sum()) == 0.0  # causal: later inputs give exactly 0
        assert float(res.forward_x[0, t]) == pytest.approx(float(alone.forward_x[0]), abs=1e-13)
        assert float(res.forward_baseline[0, t]) == pytest.approx(float(alone.forward_baseline[0]), abs=1e-13)
    assert float(res.matrix(0)[:, 0].abs().max()) == 0.0  # the first token is kept
    # completeness per output token
    torch.testing.assert_close(res.matrix(0).sum(1), res.forward_x[0] - res.forward_baseline[0], rtol=0, atol=1e-12)
    assert float(res.output_gaps(0).max()) < 1e-10


def test_batched_strategies_agree_and_greedy_generation(gpt2):
    prompts = [[7, 8, 9], [5, 6, 20, 21, 22]]
    ref = continuation_integrated_gradients(gpt2, prompts, max_new_tokens=3, strategy="per_token", steps=16)
    res = continuation_integrated_gradients(gpt2, prompts, max_new_tokens=3, steps=16)
    for i in range(2):
        torch.testing.assert_close(res.matrix(i), ref.matrix(i), rtol=0, atol=1e-13)
    with torch.no_grad():
        greedy = gpt2.generate(torch.tensor([prompts[0]]), max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert [int(t) for t in res.output_tokens[0]] == greedy[0, 3:].tolist()
    assert res.matrix(1).shape == (3, 7)


def test_captum_llm_gradient_attribution_agrees_under_its_conventions(gpt2, tokenizer):
    captum = pytest.importorskip("captum.attr")
    llm = captum.LLMGradientAttribution(captum.LayerIntegratedGradients(gpt2, gpt2.transformer.wte), tokenizer)
    continuation = torch.tensor([11, 12, 13])
    prompt = tokenizer.encode("the cat sat")
    inp = captum.TextTokenInput("the cat sat", tokenizer)
    # Captum: token id 0 as the baseline of every prompt token (the first included), earlier output
    # tokens appended unchanged (not attributed), 50 Gauss-Legendre nodes
    theirs = llm.attribute(inp, target=continuation).token_attr
    ours = continuation_integrated_gradients(gpt2, prompt, continuation.tolist(), tokenizer=tokenizer, baselines=0,
                                             keep_first=False, keep_special=False, scale_continuation=False,
                                             steps=50, rule="gausslegendre")
    P = len(prompt)
    torch.testing.assert_close(ours.matrix(0)[:, :P], theirs.to(F64), rtol=0, atol=1e-10)
    # the first token kept in the baseline (sciattr's default): Captum's attributed input is a 0/1
    # mask over the prompt tokens (0: the baseline id), so the baseline mask [1, 0, 0, ...] keeps x_0
    first_kept = torch.tensor([[1] + [0] * (P - 1)])
    theirs_kept = llm.attribute(inp, target=continuation, baselines=first_kept).token_attr
    ours_kept = continuation_integrated_gradients(gpt2, prompt, continuation.tolist(), tokenizer=tokenizer,
                                                  baselines=0, keep_special=False, scale_continuation=False,
                                                  steps=50, rule="gausslegendre")
    torch.testing.assert_close(ours_kept.matrix(0)[:, :P], theirs_kept.to(F64), rtol=0, atol=1e-10)
    assert float(theirs_kept[:, 0].abs().max()) < 1e-12
    # Captum's rows leave out the earlier output tokens, so they do not add up to the score change;
    # sciattr's default scales them too and each row completes
    full = continuation_integrated_gradients(gpt2, prompt, continuation.tolist(), tokenizer=tokenizer, baselines=0,
                                             keep_special=False, steps=50, rule="gausslegendre")
    assert float(full.output_gaps(0).max()) < 1e-3
    assert float(full.matrix(0)[2, P:].abs().sum()) > 0


def test_words_html_and_dataframe(gpt2, tokenizer, tmp_path):
    assert word_ids_of(tokenizer, tokenizer.convert_tokens_to_ids(["the", "un", "##happy", "cat"])) == [0, 1, 1, 2]
    res = continuation_integrated_gradients(gpt2, ["the cat sat", "a dog"], ["un ##happy cat".replace(" ##", ""),
                                                                             "ran fast"],
                                            tokenizer=tokenizer, **GL)
    assert res.output_tokens[0] == ["un", "##happy", "cat"]
    out_words, in_words, values = res.word_matrix(0)
    assert out_words == ["unhappy", "cat"] and in_words == ["[CLS]", "the", "cat", "sat", "[SEP]", "unhappy"]
    m = res.matrix(0)
    # rows summed over the word's tokens, columns over the word's tokens: totals are unchanged
    assert float(values.sum()) == pytest.approx(float(m.sum()), abs=1e-12)
    torch.testing.assert_close(values[0, :5], m[:2, :5].sum(0), rtol=0, atol=1e-14)
    assert float(values[1, 5]) == pytest.approx(float(m[2, 5] + m[2, 6]), abs=1e-14)
    token_page = write_html(res, tmp_path / "tokens.html", level="token").read_text()
    word_page = write_html(res, tmp_path / "words.html", level="word").read_text()
    assert ">##happy<" in token_page and ">unhappy<" in word_page and ">##happy<" not in word_page
    rows = re.findall(r'<td class="out"><b>([^<]*)</b></td><td>(.*?)</td>', word_page)
    assert [r[0] for r in rows] == ["unhappy", "cat", "ran", "fast"]
    # "##happy" is read after "un": the output word "unhappy" depends on its own first piece
    assert rows[0][1].count('class="tok') == 6 and rows[1][1].count('class="tok') == 6
    assert float(values[0, 5]) == pytest.approx(float(m[1, 5]), abs=1e-14)
    with pytest.raises(InputError, match="level"):
        write_html(res, tmp_path / "x.html", level="sentence")
    pd = pytest.importorskip("pandas")
    frame = res.to_dataframe("token")
    assert list(frame["row"].unique()) == [0, 1]
    first = frame[(frame.row == 0) & (frame.output_position == 1)]
    assert list(first["token"]) == ["[CLS]", "the", "cat", "sat", "[SEP]", "un"]
    assert first["attribution"].sum() == pytest.approx(float(m[1].sum()), abs=1e-12)
    examples = res.to_dataframe("example")
    assert examples.loc[0, "output"] == "un ##happy cat"
    assert examples.loc[0, "prediction"] == pytest.approx(float(res.forward_x[0, :3].sum()), abs=1e-12)
    words = res.to_dataframe("word")
    assert set(words.columns) >= {"row", "output_word", "word", "attribution"}
    assert isinstance(pd.DataFrame, type)


def test_bad_rows_are_reported_and_series_ids_kept(gpt2, tokenizer):
    pd = pytest.importorskip("pandas")
    prompts = pd.Series(["the cat", "", "a dog"], index=["x", "y", "z"])
    res = continuation_integrated_gradients(gpt2, prompts, ["sat", "ran", [99]], tokenizer=tokenizer, steps=8)
    assert res.rows == [0] and [e["row"] for e in res.errors] == [1, 2]
    assert "non-empty" in res.errors[0]["message"] and "token ids in [0, 27]" in res.errors[1]["message"]
    frame = res.to_dataframe("example")
    assert list(frame["id"]) == ["x", "y", "z"] and list(frame["status"]) == ["ok", "error", "error"]
    with pytest.raises(InputError, match="one continuation per prompt"):
        continuation_integrated_gradients(gpt2, [[5, 6], [7, 8]], [[9]], steps=8)
    with pytest.raises(InputError, match="use 'baselines'"):
        continuation_integrated_gradients(gpt2, [5, 6], [9], baseline=0)
    with pytest.raises(InputError, match="tokenizer"):
        continuation_integrated_gradients(gpt2, "the cat", [9])
