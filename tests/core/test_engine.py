"""Engine behaviour: batching invariance, targets, paths, adaptive steps, the result object."""

import warnings

import pytest
import torch

import sciattr
from sciattr import Attribution, CustomPath, gradient, gradient_x_input, integrated_gradients
from sciattr.core import RowIndex
from sciattr.errors import ConvergenceWarning

F64 = torch.float64


def _mlp(n_in=5, n_out=3, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, 12), torch.nn.Tanh(), torch.nn.Linear(12, n_out)).double()


@pytest.mark.parametrize("chunking", [{"batch_size": 1}, {"batch_size": 7}, {"batch_size": 1000},
                                      {"memory_budget": 2000}, {"memory_budget": "1GiB"}])
def test_result_does_not_depend_on_chunk_size(chunking):
    model = _mlp()
    x = torch.randn(9, 5, dtype=F64)
    ref = integrated_gradients(model, x, target=1, steps=20, batch_size=10**6)
    got = integrated_gradients(model, x, target=1, steps=20, **chunking)
    torch.testing.assert_close(got.attributions["input"], ref.attributions["input"], atol=1e-15, rtol=1e-13)
    torch.testing.assert_close(got.forward_x, ref.forward_x, atol=1e-15, rtol=1e-14)


def test_multi_target_equals_single_targets():
    model = _mlp()
    x = torch.randn(4, 5, dtype=F64)
    multi = integrated_gradients(model, x, target="all", steps=16)
    assert multi.attributions["input"].shape == (4, 5, 3)
    assert multi.forward_x.shape == (4, 3)
    for t in range(3):
        single = integrated_gradients(model, x, target=t, steps=16)
        torch.testing.assert_close(multi.attributions["input"][..., t], single.attributions["input"], atol=1e-15,
                                   rtol=0)
    assert multi.completeness_gap.abs().max() < 1e-10
    pairs = integrated_gradients(model, x, target=torch.tensor([[2, 0]] * 4), steps=16)
    torch.testing.assert_close(pairs.attributions["input"][..., 0], multi.attributions["input"][..., 2])


def test_multi_target_runs_forward_once_per_chunk():
    calls = []
    model = _mlp()

    def counted(x):
        calls.append((x.shape[0], x.requires_grad))
        return model(x)

    x = torch.randn(3, 5, dtype=F64)
    res = integrated_gradients(counted, x, target="all", steps=10, batch_size=10**6)
    # all targets share one forward over the 10 nodes and both end points
    assert calls == [(3 * 12, True)]
    assert res.completeness_gap.abs().max() < 1e-6
    calls.clear()
    chunked = integrated_gradients(counted, x, target="all", steps=10, batch_size=10)
    # several passes: the end points (weight 0, needed only for F) run last, without autograd
    assert calls == [(10, True), (10, True), (10, True), (6, False)]
    torch.testing.assert_close(chunked.attributions["input"], res.attributions["input"])
    torch.testing.assert_close(chunked.forward_baseline, res.forward_baseline)


def test_end_points_without_autograd_when_path_not_stored():
    model = _mlp()
    x = torch.randn(4, 5, dtype=F64)
    plain = integrated_gradients(model, x, target=1, steps=12)
    stored = integrated_gradients(model, x, target=1, steps=12, store_path=True)
    torch.testing.assert_close(plain.attributions["input"], stored.attributions["input"])
    torch.testing.assert_close(plain.forward_x, model(x)[:, 1])
    torch.testing.assert_close(plain.forward_baseline, model(torch.zeros_like(x))[:, 1])
    # the recorded path keeps the end points, with their interior gradients
    assert stored.path.alphas[0] == 0.0 and stored.path.alphas[-1] == 1.0
    grad_at_x = torch.autograd.functional.jacobian(lambda v: model(v)[:, 1].sum(), x)
    torch.testing.assert_close(stored.path.gradients["input"][-1], grad_at_x)


def test_per_example_and_callable_targets():
    model = _mlp()
    x = torch.randn(3, 5, dtype=F64)
    per = integrated_gradients(model, x, target=[2, 0, 1], steps=16)
    for i, t in enumerate([2, 0, 1]):
        single = integrated_gradients(model, x[i:i + 1], target=t, steps=16)
        torch.testing.assert_close(per.attributions["input"][i], single.attributions["input"][0])
    logp = integrated_gradients(model, x, target=lambda out: torch.log_softmax(out, -1)[:, 0], steps=32)
    assert logp.completeness_gap.abs().max() < 1e-8
    torch.testing.assert_close(logp.forward_x, torch.log_softmax(model(x), -1)[:, 0])


def test_gradient_and_gradient_x_input_values():
    w = torch.tensor([1.0, -2.0, 3.0], dtype=F64)

    def f(x):
        return (x ** 2) @ w

    x = torch.tensor([[1.0, 2.0, -1.0]], dtype=F64)
    g = gradient(f, x).attributions["input"]
    torch.testing.assert_close(g, 2 * x * w)
    gxi = gradient_x_input(f, x)
    torch.testing.assert_close(gxi.attributions["input"], 2 * x * x * w)
    # gradient x input of a quadratic is twice the IG: completeness is violated by a factor 2
    torch.testing.assert_close(gxi.per_example(), 2 * gxi.delta)
    ig = integrated_gradients(f, x, steps=4)
    torch.testing.assert_close(ig.attributions["input"], x * x * w)


def test_custom_path_eq5():
    # F(x1, x2) = x1 * x2 from 0 along gamma(a) = (a^2 x1, a x2): IG = (2/3, 1/3) x1 x2 (straight line: 1/2, 1/2)
    def f(x):
        return x[:, 0] * x[:, 1]

    x = torch.tensor([[2.0, 3.0]], dtype=F64)
    expo = torch.tensor([2.0, 1.0], dtype=F64)
    path = CustomPath(lambda x, b, a: b + a ** expo * (x - b), name="power")
    res = integrated_gradients(f, x, path=path, steps=8)
    torch.testing.assert_close(res.attributions["input"], torch.tensor([[4.0, 2.0]], dtype=F64))
    explicit = CustomPath(lambda x, b, a: b + a ** expo * (x - b), lambda x, b, a: expo * a ** (expo - 1) * (x - b))
    res2 = integrated_gradients(f, x, path=explicit, steps=8)
    torch.testing.assert_close(res2.attributions["input"], res.attributions["input"])
    straight = integrated_gradients(f, x, steps=8)
    torch.testing.assert_close(straight.attributions["input"], torch.tensor([[3.0, 3.0]], dtype=F64))


def test_store_path_curve_and_interior_gradients():
    model = _mlp(n_out=1)
    x = torch.randn(2, 5, dtype=F64)
    res = integrated_gradients(model, x, steps=8, rule="riemann_trapezoid", store_path=True)
    alphas = res.path.alphas
    assert alphas.tolist() == sorted(alphas.tolist()) and alphas[0] == 0 and alphas[-1] == 1
    for k, a in enumerate(alphas):
        xa = (a * x).requires_grad_(True)
        out = model(xa)[:, 0]
        torch.testing.assert_close(res.path.scores[:, k], out.detach())
        (g,) = torch.autograd.grad(out.sum(), xa)
        torch.testing.assert_close(res.path.gradients["input"][k], g)


def test_adaptive_steps_reach_tolerance_and_report_steps():
    def f(x):  # sharp sigmoid: needs many steps
        return torch.sigmoid(200 * (x[:, 0] + x[:, 1] - 1.0)) + x[:, 2]

    x = torch.tensor([[0.6, 0.6, 0.0], [0.0, 0.0, 1.0]], dtype=F64)
    res = integrated_gradients(f, x, steps="auto", rule="riemann_right")
    assert (res.relative_gap <= 0.05).all()
    assert res.steps[0] > 16 and res.steps[1] == 16  # only the sharp example needed more steps
    fixed = integrated_gradients(f, x[:1], steps=16, rule="riemann_right")
    assert fixed.relative_gap[0] > 0.05
    with pytest.warns(ConvergenceWarning, match="max_steps=32"):
        integrated_gradients(f, x[:1], steps=4, rule="riemann_right", tolerance=1e-9, max_steps=32)


def test_named_inputs_and_ragged_segments_match_dense():
    torch.manual_seed(1)
    w = torch.randn(3, dtype=F64)
    atoms = torch.randn(7, 3, dtype=F64)
    seg = torch.tensor([1, 0, 0, 1, 2, 2, 1])
    edges = torch.tensor([[1, 2], [0, 3], [3, 6], [4, 5]]).T
    table = RowIndex(seg[edges[0]], 3, edges.shape[1])

    def ragged(atoms, replicas):
        cols, rep = replicas.replicate(table)
        ei = replicas.remap("atoms", edges[:, cols], rep)
        h = torch.tanh(atoms @ w)
        node = h + torch.zeros_like(h).index_add(0, ei[0], h[ei[1]] ** 2)
        return torch.zeros(replicas.size, dtype=F64).index_add(0, replicas.row_replica["atoms"], node)

    res = integrated_gradients(ragged, {"atoms": atoms}, segments={"atoms": seg}, steps=32, batch_size=5)
    assert res.completeness_gap.abs().max() < 1e-12
    for m in range(3):
        rows = (seg == m).nonzero().flatten()
        local = {int(r): i for i, r in enumerate(rows)}
        pairs = [(local[int(a)], local[int(b)]) for a, b in edges.T if int(a) in local]

        def dense(x, pairs=pairs):
            h = torch.tanh(x @ w)
            total = h.sum(-1)
            for a, b in pairs:
                total = total + h[:, b] ** 2
            return total

        ref = integrated_gradients(dense, atoms[rows][None], steps=32)
        torch.testing.assert_close(res.example_rows("atoms", m), ref.attributions["input"][0], atol=1e-14, rtol=0)


def test_forward_kwargs_are_repeated_along_path():
    def f(x, scale):
        return (x.sum(-1) * scale[:, 0]) ** 2

    x = torch.randn(3, 4, dtype=F64)
    scale = torch.tensor([[1.0], [2.0], [-1.0]], dtype=F64)
    res = integrated_gradients(f, x, forward_kwargs={"scale": scale}, steps=8)
    torch.testing.assert_close(res.forward_x, f(x, scale))
    assert res.completeness_gap.abs().max() < 1e-12


def test_dtype_and_device_follow_input():
    model = _mlp().float()
    x = torch.randn(2, 5)
    res = integrated_gradients(model, x, target=0, steps=8)
    assert res.attributions["input"].dtype == torch.float32
    assert res.attributions["input"].device == x.device
    assert res.relative_gap.max() < 1e-4


def test_save_load_roundtrip_and_summary(tmp_path):
    model = _mlp()
    res = integrated_gradients(model, torch.randn(3, 5, dtype=F64), target=0, steps=8, store_path=True)
    res.meta["note"] = "unit"
    path = res.save(tmp_path / "r.pt")
    back = Attribution.load(path)
    torch.testing.assert_close(back.attributions["input"], res.attributions["input"])
    torch.testing.assert_close(back.path.scores, res.path.scores)
    assert back.meta == res.meta and back.meta["note"] == "unit" and back.method == "integrated_gradients"
    assert back.meta["settings"]["steps"] == 8 and back.meta["unconverged"] == {}
    text = res.summary()
    assert "gausslegendre" in text and text.count("\n") == 4


def test_training_mode_with_dropout_warns():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.5), torch.nn.Linear(3, 1)).double()
    with pytest.warns(UserWarning, match="training mode"):
        integrated_gradients(model, torch.randn(2, 3, dtype=F64), steps=4)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        integrated_gradients(model, torch.randn(2, 3, dtype=F64), steps=4)


def test_public_api_exports():
    assert sciattr.integrated_gradients is integrated_gradients
    assert issubclass(sciattr.InputError, sciattr.SciAttrError)


def test_adaptive_steps_with_stored_path_record_one_grid_for_every_example():
    def f(x):
        return torch.sigmoid(200 * (x[:, 0] + x[:, 1] - 1.0)) + x[:, 2]

    x = torch.tensor([[0.6, 0.6, 0.0], [0.0, 0.0, 1.0]], dtype=F64)
    res = integrated_gradients(f, x, steps="auto", rule="riemann_right", store_path=True)
    assert (res.relative_gap <= 0.05).all()
    assert res.steps[0] == res.steps[1] > 16
    # the recorded curve is F(alpha x) for both examples, the converged one included
    torch.testing.assert_close(res.path.scores, torch.stack([f(a * x) for a in res.path.alphas], 1))


def test_memory_probe_is_reused_for_the_same_model_and_input_kind():
    from sciattr.core import engine

    model = _mlp()
    calls = []
    handle = model.register_forward_hook(lambda module, args, out: calls.append((out.shape[0], out.requires_grad)))
    x = torch.randn(3, 5, dtype=F64)
    engine._PROBED.clear()
    try:
        first = integrated_gradients(model, x, target=0, steps=10)
        probed = list(calls)
        calls.clear()
        second = integrated_gradients(model, x + 1.0, target=0, steps=10)
        again = list(calls)
        calls.clear()
        other = _mlp()  # other weights: probed anew
        other.register_forward_hook(lambda module, args, out: calls.append((out.shape[0], out.requires_grad)))
        integrated_gradients(other, x, target=0, steps=10)
        fresh = list(calls)
    finally:
        handle.remove()
    # first call: a 16-replica probe, then the other 14 weighted replicas, then the end points
    assert probed == [(16, True), (14, True), (6, False)]
    # same model, same kind of input: all 30 weighted replicas and the 6 end points in one pass
    assert again == [(36, True)]
    assert fresh == [(16, True), (14, True), (6, False)] and len(engine._PROBED) == 2
    torch.testing.assert_close(second.attributions["input"],
                               integrated_gradients(model, x + 1.0, target=0, steps=10, batch_size=7).attributions["input"])
    assert first.completeness_gap.abs().max() < 1e-8


def test_to_dataframe_lists_examples_and_features_with_their_values():
    pytest.importorskip("pandas")
    w = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    x = torch.tensor([[1.0, 1.0, 2.0], [0.0, 3.0, -1.0]], dtype=F64)
    res = integrated_gradients(lambda z: z @ w, x)
    ex = res.to_dataframe()
    assert list(ex["example"]) == [0, 1] and ex["converged"].all() and list(ex["evaluations"]) == [17, 17]
    assert ex["prediction"].tolist() == pytest.approx((x @ w).tolist())
    assert ex["baseline_score"].tolist() == [0.0, 0.0] and ex["criterion"].tolist() == ["exact", "exact"]
    feat = res.to_dataframe("feature")
    assert len(feat) == 6
    assert feat["attribution"].tolist() == pytest.approx((x * w).reshape(-1).tolist(), abs=1e-14)
    assert feat["value"].tolist() == x.reshape(-1).tolist()
    with pytest.raises(sciattr.InputError, match="level must be"):
        res.to_dataframe("atom")


def test_settings_object_equals_keywords_and_is_exported():
    model = _mlp()
    x = torch.randn(2, 5, dtype=F64)
    settings = sciattr.Settings(steps=24, rule="riemann_middle")
    a = integrated_gradients(model, x, target=0, settings=settings)
    b = integrated_gradients(model, x, target=0, steps=24, rule="riemann_middle")
    torch.testing.assert_close(a.attributions["input"], b.attributions["input"], atol=0, rtol=0)
    # keywords update a given settings object
    c = integrated_gradients(model, x, target=0, settings=settings, steps=12)
    assert int(c.steps[0]) == 12 and c.rule == "riemann_middle"
    assert a.meta["settings"]["steps"] == 24
