"""The embedding adapter: completeness, padding invariance, baselines, call modes, Captum parity."""

import pytest
import torch

from sciattr.errors import InputError, ModelOutputError, TargetError
from sciattr.text.classifier import LSTMTopicClassifier
from sciattr.text.embedding import EmbeddingModel, embedding_integrated_gradients, pad_batch
from sciattr.text.lstm_lm import LSTMLanguageModel

F64 = torch.float64
VOCAB = 23
SENTENCES = [[3, 7, 9, 4, 12], [5, 6, 2], [8, 8, 1, 19, 22, 11, 13]]


def tiny_classifier() -> LSTMTopicClassifier:
    torch.manual_seed(1)
    return LSTMTopicClassifier(VOCAB, ["a", "b", "c"], emb_dim=6, hidden_dim=5, dropout=0.0).to(F64).eval()


def tiny_lm() -> LSTMLanguageModel:
    torch.manual_seed(2)
    model = LSTMLanguageModel(VOCAB, 6, 6, num_layers=2, dropout=0.0)
    with torch.no_grad():
        model.embed.weight.mul_(10)  # make the random model less flat
    return model.to(F64).eval()


def spec(model, call: str) -> EmbeddingModel:
    return EmbeddingModel(model, model.embed, call=call, embeddings_argument="inputs_embeds",
                          ids_argument="input_ids", mask_argument="attention_mask")


def padded(extra: int):
    ids, mask = pad_batch(SENTENCES, pad_id=0)
    zeros = torch.zeros(ids.shape[0], extra, dtype=torch.long)
    return torch.cat([ids, zeros], 1), torch.cat([mask, zeros], 1)


@pytest.mark.parametrize("call", ["ids", "embeddings"])
@pytest.mark.parametrize("score", ["logit", "prob", "log_prob"])
def test_completeness_classifier(call, score):
    ids, mask = padded(0)
    res = embedding_integrated_gradients(spec(tiny_classifier(), call), ids, attention_mask=mask,
                                         target=[0, 1, 2], score=score, steps=48)
    assert res.attributions["embeddings"].shape == (3, 7, 6)
    assert float(res.relative_gap.max()) < 1e-6
    # the sum over tokens is the score difference
    totals = torch.tensor([res.total(i) for i in range(3)], dtype=F64)
    torch.testing.assert_close(totals, res.forward_x - res.forward_baseline, rtol=1e-6, atol=1e-12)


def test_completeness_language_model_next_token():
    ids, mask = padded(0)
    lm = tiny_lm()
    fixed = torch.zeros_like(ids, dtype=torch.bool)
    fixed[:, 0] = True
    res = embedding_integrated_gradients(spec(lm, "embeddings"), ids, attention_mask=mask, target=[4, 5, 6],
                                         score="log_prob", position="last", fixed=fixed, steps=64)
    assert float(res.relative_gap.max()) < 1e-3
    assert torch.all(res.token_scores()[:, 0] == 0)  # the fixed first token
    with torch.no_grad():
        logp = torch.log_softmax(lm(ids), -1)
    last = mask.sum(1) - 1
    expected = logp[torch.arange(3), last, torch.tensor([4, 5, 6])]
    torch.testing.assert_close(res.forward_x, expected)


@pytest.mark.parametrize("call", ["ids", "embeddings"])
@pytest.mark.parametrize("kind", ["classifier", "lm"])
def test_padding_never_changes_attributions(call, kind):
    model = tiny_classifier() if kind == "classifier" else tiny_lm()
    options = {"target": 1, "score": "prob", "steps": 16}
    if kind == "lm":
        options["position"] = "last"
    short_ids, short_mask = padded(0)
    long_ids, long_mask = padded(5)
    long_ids[long_mask == 0] = 17  # a padding id with a non-zero embedding must not matter either
    a = embedding_integrated_gradients(spec(model, call), short_ids, attention_mask=short_mask, **options)
    b = embedding_integrated_gradients(spec(model, call), long_ids, attention_mask=long_mask, **options)
    width = short_ids.shape[1]
    torch.testing.assert_close(b.attributions["embeddings"][:, :width], a.attributions["embeddings"],
                               rtol=1e-12, atol=1e-15)
    assert torch.all(b.attributions["embeddings"][:, width:] == 0)
    torch.testing.assert_close(b.forward_x, a.forward_x, rtol=1e-13, atol=0)


def test_batch_is_one_engine_pass_and_matches_single_sentences():
    model = tiny_classifier()
    calls = []
    handle = model.register_forward_hook(lambda module, args, out: calls.append((out.shape[0], out.requires_grad)))
    ids, mask = padded(0)
    try:
        res = embedding_integrated_gradients(model, ids, attention_mask=mask, target=2, steps=10,
                                             batch_size=10_000)
    finally:
        handle.remove()
    n = ids.shape[0]
    # every sentence at every step (and both ends) in one forward
    assert calls == [(n * 12, True)]
    for i, sentence in enumerate(SENTENCES):
        one = embedding_integrated_gradients(model, torch.tensor([sentence]), target=2, steps=10)
        torch.testing.assert_close(one.attributions["embeddings"][0],
                                   res.attributions["embeddings"][i, :len(sentence)])


def test_token_baseline_and_excluded_special_tokens():
    model = tiny_classifier()
    ids, mask = padded(0)
    special = 8
    res = embedding_integrated_gradients(model, ids, attention_mask=mask, target=0, baselines=21,
                                         special_ids=[special], exclude_special=True, steps=32)
    assert torch.all(res.token_scores()[ids == special] == 0)
    # F(baseline) is the model at the baseline token everywhere except excluded/padded positions
    base_ids = torch.where((ids == special) | (mask == 0), ids, torch.full_like(ids, 21))
    with torch.no_grad():
        expected = model(base_ids, mask)[:, 0]
    torch.testing.assert_close(res.forward_baseline, expected)
    assert float(res.relative_gap.max()) < 1e-6
    kept = embedding_integrated_gradients(model, ids, attention_mask=mask, target=0, special_ids=[special],
                                          steps=8)
    assert torch.all(kept.token_scores()[ids == special] != 0)


def test_callable_target_and_predicted():
    model = tiny_classifier()
    ids, mask = padded(0)

    def margin(logits):
        return logits[:, 1] - logits[:, 0]

    res = embedding_integrated_gradients(model, ids, attention_mask=mask, target=margin, steps=32)
    with torch.no_grad():
        out = model(ids, mask)
    torch.testing.assert_close(res.forward_x, out[:, 1] - out[:, 0])
    pred = embedding_integrated_gradients(model, ids, attention_mask=mask, target="predicted", steps=4)
    assert pred.meta["units"] == out.argmax(1).tolist()


def test_hook_mode_restores_the_model():
    model = tiny_classifier()
    ids, mask = padded(0)
    embedding_integrated_gradients(model, ids, attention_mask=mask, target=0, steps=4)
    assert not model.embed._forward_hooks


def test_gradient_method_has_no_path():
    model = tiny_classifier()
    ids, mask = padded(0)
    grad = embedding_integrated_gradients(model, ids, attention_mask=mask, target=0, method="gradient")
    assert grad.method == "gradient"
    assert torch.all(grad.attributions["embeddings"][mask == 0] == 0)


@pytest.mark.parametrize("bad, error", [
    ({"input_ids": torch.randn(2, 3)}, InputError),
    ({"input_ids": torch.tensor([[1, 2], [3, VOCAB]])}, InputError),
    ({"input_ids": torch.tensor([[1, 2]]), "attention_mask": torch.tensor([[1, 1, 0]])}, InputError),
    ({"input_ids": torch.tensor([[1, 2]]), "attention_mask": torch.tensor([[0, 0]])}, InputError),
    ({"input_ids": torch.zeros(1, 0, dtype=torch.long)}, InputError),
    ({"input_ids": torch.tensor([[1, 2]]), "target": 7}, TargetError),
    ({"input_ids": torch.tensor([[1, 2]]), "target": 0, "score": "softmax"}, InputError),
    ({"input_ids": torch.tensor([[1, 2]]), "target": 0, "position": "last"}, ModelOutputError),
    ({"input_ids": torch.tensor([[1, 2]]), "target": 0, "baseline": "pad"}, InputError),
])
def test_bad_arguments(bad, error):
    with pytest.raises(error):
        embedding_integrated_gradients(tiny_classifier(), **bad)


def test_matches_captum_layer_integrated_gradients():
    captum_attr = pytest.importorskip("captum.attr")
    model = tiny_classifier()
    with torch.no_grad():
        # token 0 embeds to zero: Captum's baseline ids map to our zero baseline
        model.embed.weight[0].zero_()
    ids, mask = padded(0)
    ids[ids == 0] = 1
    target = torch.tensor([0, 2, 1])
    ours = embedding_integrated_gradients(model, ids, attention_mask=mask, target=target, steps=20)
    lig = captum_attr.LayerIntegratedGradients(model, model.embed)
    theirs = lig.attribute(ids, baselines=torch.zeros_like(ids), target=target, n_steps=20,
                           method="gausslegendre", additional_forward_args=(mask,))
    theirs = theirs * mask[..., None]  # Captum also scales padded positions; ours keeps them fixed
    scale = float(theirs.abs().max())
    torch.testing.assert_close(ours.attributions["embeddings"], theirs, atol=1e-6 * scale, rtol=1e-5)
