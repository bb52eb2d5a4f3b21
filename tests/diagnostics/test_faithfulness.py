"""Ablation curves, AOPC, localization and ERASER scores against hand-computed values."""

import math

import pytest
import torch
from diagnostic_models import F64, LinearScore, RaggedLinear

from sciattr import gradient, gradient_x_input, integrated_gradients
from sciattr.diagnostics import (
    ablation_curve,
    auroc,
    compare_ablation,
    eraser_scores,
    localization,
    plot_ablation,
)
from sciattr.errors import InputError, ModelOutputError

W = torch.tensor([3.0, -1.0, 2.0, 0.5, -2.5, 1.5], dtype=F64)
X = torch.tensor(
    [[1.0, 2.0, -1.0, 4.0, 0.5, 1.0], [-2.0, 1.0, 1.0, 1.0, -1.0, 0.5], [0.5, -3.0, 2.0, -2.0, 1.0, 2.0]],
    dtype=F64,
)


def _top_sums(contrib: torch.Tensor, k_per_step: int = 1) -> torch.Tensor:
    """(n, L+1) f(x) - f(x_(k)) for a linear model: sum of the k largest contributions."""
    ordered = torch.sort(contrib, dim=1, descending=True).values
    sums = torch.cat([torch.zeros(contrib.shape[0], 1, dtype=F64), torch.cumsum(ordered, 1)], 1)
    return sums[:, ::k_per_step] if k_per_step > 1 else sums


def test_linear_aopc_has_the_closed_form():
    model = LinearScore(W, c=0.7)
    ig = integrated_gradients(model, X, steps=2)
    gxi = gradient_x_input(model, X)
    assert torch.allclose(ig.attributions["input"], gxi.attributions["input"], atol=1e-14)
    curve = ablation_curve(model, X, ig)
    drops = _top_sums(W * X)
    assert curve.method == "integrated_gradients"
    assert curve.removed[0].tolist() == list(range(7))
    assert torch.allclose(curve.drops, drops, atol=1e-13)
    assert torch.allclose(curve.aopc, drops.mean(1), atol=1e-13)
    by_hand = (drops.mean(1)).mean().item()
    assert curve.mean_aopc == pytest.approx(by_hand, abs=1e-13)
    # AOPC over the first k steps (Fig. 5) is the running mean of the drops
    assert torch.allclose(curve.aopc_curve, (torch.cumsum(drops, 1) / torch.arange(1, 8)).mean(0), atol=1e-13)


def test_steps_of_several_features_and_truncation():
    model = LinearScore(W)
    curve = ablation_curve(model, X, W * X, features_per_step=2, perturbation_steps=2)
    assert curve.removed[0].tolist() == [0, 2, 4]
    assert torch.allclose(curve.drops, _top_sums(W * X, 2)[:, :3], atol=1e-13)
    full = ablation_curve(model, X, W * X, features_per_step=4)  # ceil(6 / 4) = 2 steps, last one capped
    assert full.removed[0].tolist() == [0, 4, 6]


def test_ig_ordering_is_optimal_for_linear_and_beats_gradient_and_random():
    torch.manual_seed(1)
    w = torch.randn(12, dtype=F64)
    x = torch.randn(64, 12, dtype=F64)
    curves = compare_ablation(LinearScore(w), x, steps=4)
    assert list(curves) == ["integrated_gradients", "gradient", "gradient_x_input", "random"]
    best = _top_sums(w * x).mean(1)
    assert torch.allclose(curves["integrated_gradients"].aopc, best, atol=1e-12)
    grad_order = torch.argsort(w, descending=True)
    grad_drops = torch.cat([torch.zeros(64, 1, dtype=F64), torch.cumsum((w * x)[:, grad_order], 1)], 1)
    assert torch.allclose(curves["gradient"].aopc, grad_drops.mean(1), atol=1e-12)
    assert (
        curves["integrated_gradients"].mean_aopc
        > curves["random"].mean_aopc
        > ablation_curve(LinearScore(w), x, w * x, order="ascending").mean_aopc
    )
    assert (curves["integrated_gradients"].aopc >= curves["random"].aopc - 1e-12).all()


def test_random_ranking_is_seeded():
    model = LinearScore(W)
    a = ablation_curve(model, X, "random", seed=3)
    b = ablation_curve(model, X, "random", seed=3)
    c = ablation_curve(model, X, "random", seed=4)
    assert a.method == "random" and torch.equal(a.scores, b.scores) and not torch.equal(a.scores, c.scores)


def test_token_groups_with_a_kept_first_token():
    # embeddings (n, L, D) with one feature per token; token 0 is never removed (group -1)
    torch.manual_seed(2)
    emb = torch.randn(4, 5, 3, dtype=F64)
    v = torch.randn(3, dtype=F64)

    def model(e):
        return (e @ v).sum(-1)

    groups = torch.tensor([-1, 0, 1, 2, 3]).expand(4, 5)
    res = integrated_gradients(model, emb, steps=2)
    curve = ablation_curve(model, emb, res, groups={"input": groups})
    per_token = (emb @ v)[:, 1:]
    assert curve.removed[0].tolist() == [0, 1, 2, 3, 4]
    assert torch.allclose(curve.drops, _top_sums(per_token), atol=1e-12)
    assert torch.allclose(curve.scores[:, -1], (emb @ v)[:, 0], atol=1e-12)  # only the kept token is left


def test_ragged_atoms_and_pairs_share_features():
    # two molecules; pair rows are assigned to atoms through shared group ids
    atoms = torch.tensor([[1.0], [2.0], [3.0], [4.0], [5.0]], dtype=F64)
    pairs = torch.tensor([[10.0], [20.0], [30.0]], dtype=F64)
    seg = {"atoms": torch.tensor([0, 0, 0, 1, 1]), "pairs": torch.tensor([0, 0, 1])}

    def model(atoms, pairs, replicas):
        out = torch.zeros(replicas.size, dtype=atoms.dtype)
        out = out.index_add(0, replicas.row_replica["atoms"], atoms[:, 0])
        return out.index_add(0, replicas.row_replica["pairs"], -pairs[:, 0])

    groups = {"atoms": torch.tensor([0, 1, 2, 0, 1]), "pairs": torch.tensor([2, 0, 1])}
    # features: mol 0: f0 = 1 - 20, f1 = 2, f2 = 3 - 10 (removed as f1, f2, f0); mol 1: f0 = 4, f1 = 5 - 30
    attributions = {"atoms": atoms.clone(), "pairs": -pairs.clone()}
    curve = ablation_curve(model, {"atoms": atoms, "pairs": pairs}, attributions, groups=groups, segments=seg)
    assert curve.removed.tolist() == [[0, 1, 2, 3], [0, 1, 2, 2]]
    expected = torch.tensor([[-24.0, -26.0, -19.0, 0.0], [-21.0, -25.0, 0.0, 0.0]], dtype=F64)
    assert torch.allclose(curve.scores, expected, atol=1e-12)


def test_ablation_uses_few_batched_forwards():
    calls = []

    def model(x):
        calls.append(x.shape[0])
        return x @ W

    x = torch.randn(10, 6, dtype=F64)
    ablation_curve(model, x, W * x)
    assert calls == [10 * 7]
    calls.clear()
    ablation_curve(model, x, W * x, batch_size=30)
    assert calls == [30, 30, 10]


def test_localization_perfect_inverted_random_and_ties():
    torch.manual_seed(0)
    mask = torch.rand(8, 2000) < 0.3
    perfect = localization(mask.to(F64) + 0.1 * torch.rand(8, 2000, dtype=F64), mask)
    assert torch.allclose(perfect.auroc, torch.ones(8, dtype=F64)) and perfect.mean_precision == 1.0
    assert torch.equal(perfect.k, mask.sum(1))
    inverted = localization(-mask.to(F64), mask)
    assert torch.allclose(inverted.auroc, torch.zeros(8, dtype=F64))
    random = localization(torch.rand(8, 2000, dtype=F64), mask)
    assert abs(random.mean_auroc - 0.5) < 0.02
    assert abs(random.mean_precision - 0.3) < 0.03
    ties = localization(torch.zeros(8, 2000, dtype=F64), mask)
    assert torch.allclose(ties.auroc, torch.full((8,), 0.5, dtype=F64))


def test_auroc_and_precision_by_hand():
    scores = torch.tensor([[0.1, 0.4, 0.35, 0.8]], dtype=F64)
    labels = torch.tensor([[False, False, True, True]])
    assert auroc(scores, labels).item() == pytest.approx(0.75)
    loc = localization(scores, labels, k=1)
    assert loc.precision_at_k.item() == 1.0
    loc2 = localization(scores, labels, k=2)  # top 2: 0.8 (pos), 0.4 (neg)
    assert loc2.precision_at_k.item() == 0.5
    absolute = localization(-scores, labels, order="absolute")
    assert absolute.auroc.item() == pytest.approx(0.75)
    none = localization(scores, torch.zeros(1, 4, dtype=torch.bool))
    assert math.isnan(none.auroc.item()) and math.isnan(none.precision_at_k.item())


def test_localization_of_ragged_attribution_per_atom():
    w = torch.tensor([1.0, 1.0], dtype=F64)
    atoms = torch.tensor([[3.0, 1.0], [0.1, 0.0], [0.2, 0.1], [5.0, 0.0]], dtype=F64)
    seg = torch.tensor([0, 0, 1, 1])
    res = integrated_gradients(RaggedLinear(w), {"atoms": atoms}, segments={"atoms": seg}, steps=2)
    truth = {"atoms": torch.tensor([True, False, False, True])}  # one flag per atom row
    loc = localization(res, truth, groups={"atoms": torch.tensor([0, 1, 0, 1])})
    assert loc.auroc.tolist() == [1.0, 1.0] and loc.precision_at_k.tolist() == [1.0, 1.0]
    # an input left out of the mask has no positives; its features still count as negatives
    pairs = torch.tensor([[9.0], [0.0]], dtype=F64)
    both = {"atoms": res.attributions["atoms"], "pairs": pairs}
    seg = {"atoms": res.segments["atoms"], "pairs": torch.tensor([0, 1])}
    mixed = localization(
        both, truth, groups={"atoms": torch.tensor([0, 1, 0, 1]), "pairs": torch.tensor([2, 2])}, segments=seg
    )
    assert mixed.auroc.tolist() == [0.5, 1.0]  # molecule 0: the pair (9) outranks the true atom (4)
    with pytest.raises(InputError, match="mask only"):
        localization(both, {"bonds": torch.ones(2, dtype=torch.bool)}, segments=seg)


def test_eraser_comprehensiveness_and_sufficiency_for_linear():
    torch.manual_seed(5)
    w = torch.randn(30, dtype=F64)
    x = torch.randn(3, 30, dtype=F64)
    scores = eraser_scores(LinearScore(w), x, w * x)
    contrib = w * x
    top = _top_sums(contrib)  # (n, 11)
    total = contrib.sum(1, keepdim=True)
    k = [1, 2, 3, 6, 15]  # ceil(k% of 30 features), at least one
    assert torch.allclose(scores.comprehensiveness, top[:, k], atol=1e-12)
    assert torch.allclose(scores.sufficiency, total - top[:, k], atol=1e-12)
    assert torch.allclose(scores.aggregate_comprehensiveness, top[:, k].mean(1), atol=1e-12)
    assert "comprehensiveness" in scores.summary()


def test_bad_inputs_are_refused(tmp_path):
    model = LinearScore(W)
    with pytest.raises(InputError, match="shape"):
        ablation_curve(model, X, torch.zeros(3, 5, dtype=F64))
    with pytest.raises(InputError, match="random"):
        ablation_curve(model, X, "shuffled")
    with pytest.raises(InputError, match="order"):
        ablation_curve(model, X, W * X, order="up")
    with pytest.raises(InputError, match="methods"):
        compare_ablation(model, X, methods=("lrp",))
    with pytest.raises(InputError, match="one target"):
        ablation_curve(lambda x: torch.stack([x @ W, -x @ W], 1), X, W * X, target="all")
    with pytest.raises(ModelOutputError, match="finite"):
        ablation_curve(lambda x: torch.log(x @ W), X, W * X)
    with pytest.raises(InputError, match="fractions"):
        eraser_scores(model, X, W * X, fractions=(0.0, 0.5))
    with pytest.raises(InputError, match="groups"):
        ablation_curve(model, X, W * X, groups={"input": torch.zeros(3, 2, dtype=torch.long)})
    with pytest.raises(InputError, match="AblationCurve"):
        plot_ablation({}, tmp_path / "a.png")


def test_ablation_plot_is_written(tmp_path):
    curves = {
        "ig": ablation_curve(LinearScore(W), X, W * X),
        "gradient": ablation_curve(LinearScore(W), X, gradient(LinearScore(W), X)),
    }
    path = plot_ablation(curves, tmp_path / "ablation.svg", title="linear")
    assert b"<svg" in path.read_bytes()[:500]


def test_named_inputs_with_per_example_forward_kwargs():
    torch.manual_seed(6)
    emb = torch.randn(3, 4, 2, dtype=F64)
    keep = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], dtype=F64)  # padding masked out
    v = torch.tensor([1.0, -0.5], dtype=F64)

    def model(embeddings, attention_mask):
        return ((embeddings @ v) * attention_mask).sum(-1)

    groups = torch.arange(4).expand(3, 4).clone()
    groups[keep == 0] = -1
    curve = ablation_curve(
        model,
        {"embeddings": emb},
        {"embeddings": emb * v},
        groups={"embeddings": groups},
        forward_kwargs={"attention_mask": keep},
    )
    assert curve.removed.tolist() == [[0, 1, 2, 3, 3], [0, 1, 2, 2, 2], [0, 1, 2, 3, 4]]
    token = (emb @ v) * keep
    for e in range(3):
        assert torch.allclose(
            curve.drops[e, : int(keep[e].sum()) + 1], _top_sums(token[e : e + 1, keep[e] > 0])[0], atol=1e-12
        )
