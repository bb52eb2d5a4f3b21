"""The batched attribution engine: integrated gradients, gradients and gradient x input.

One function does the work (:func:`attribute`); the named methods are thin wrappers. The
(example x path-node) grid is flattened and cut into chunks bounded by ``batch_size`` replicas
or a ``memory_budget``; each chunk is one forward and one backward pass (one backward per
target when several targets are attributed together). ``F(x)`` and ``F(x')``, needed for the
completeness check but not for the integral, join the path nodes when everything fits in one
pass (or when ``store_path=True`` records their gradients); otherwise they are evaluated last,
in forward passes without autograd. Nothing here depends on the device: tensors stay where the
inputs are.
"""

from __future__ import annotations

import collections
import contextlib
import math
import warnings
from collections.abc import Callable, Mapping

import torch

from sciattr.core.baselines import resolve_baseline
from sciattr.core.batching import (
    Replicas,
    RowIndex,
    measure_saved_bytes,
    parameter_storages,
    parse_memory,
    plan_chunks,
)
from sciattr.core.paths import StraightLine, resolve_path
from sciattr.core.quadrature import quadrature
from sciattr.core.targets import resolve_target
from sciattr.errors import ConvergenceWarning, InputError, ModelOutputError, describe
from sciattr.result import Attribution, PathRecord

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "attribute",
    "gradient",
    "gradient_x_input",
    "integrated_gradients",
    "normalize_inputs",
]

#: Default bound on autograd memory per chunk when neither batch_size nor memory_budget is given:
#: on a CPU, chunks that stay near the caches run faster than one huge pass; a GPU wants big passes.
DEFAULT_MEMORY_BUDGET = {"cpu": 32 * 2**20, "cuda": 4 * 2**30}


def default_memory_budget(device: torch.device) -> int:
    """Bytes of autograd memory per chunk used when no ``batch_size``/``memory_budget`` is given."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(min(DEFAULT_MEMORY_BUDGET["cuda"], 0.5 * free))
    return DEFAULT_MEMORY_BUDGET.get(device.type, DEFAULT_MEMORY_BUDGET["cpu"])

DEFAULT_INPUT_NAME = "input"

Inputs = torch.Tensor | Mapping[str, torch.Tensor]


def normalize_inputs(inputs: Inputs) -> tuple[dict[str, torch.Tensor], bool]:
    """Return ``({name: tensor}, bare)``; a bare tensor becomes ``{"input": tensor}``."""
    if isinstance(inputs, torch.Tensor):
        named, bare = {DEFAULT_INPUT_NAME: inputs}, True
    elif isinstance(inputs, Mapping):
        if not inputs:
            raise InputError("inputs must contain at least one tensor; got an empty mapping")
        named, bare = dict(inputs), False
    else:
        raise InputError(f"inputs must be a tensor or a mapping name -> tensor; got {describe(inputs)}")
    for name, x in named.items():
        if not isinstance(name, str):
            raise InputError(f"input names must be strings; got {name!r}")
        if not isinstance(x, torch.Tensor):
            raise InputError(f"input {name!r} must be a tensor; got {describe(x)}")
        if not x.is_floating_point():
            raise InputError(
                f"input {name!r} must be a floating-point tensor (features or embeddings); got dtype {x.dtype}. "
                f"Token ids are attributed through their embeddings (sciattr.text)"
            )
        if x.dim() == 0:
            raise InputError(f"input {name!r} must have a leading example (or row) dimension; got a scalar")
        if not torch.isfinite(x).all():
            bad = (~torch.isfinite(x)).reshape(x.shape[0], -1).any(1).nonzero().flatten().tolist()
            raise InputError(f"input {name!r} contains non-finite values in rows {bad[:10]}")
    devices = {x.device for x in named.values()}
    if len(devices) > 1:
        raise InputError(f"all inputs must be on one device; got {sorted(map(str, devices))}")
    return {k: v.detach() for k, v in named.items()}, bare


def _example_count(named, segments) -> int:
    if segments is None:
        sizes = {name: x.shape[0] for name, x in named.items()}
        if len(set(sizes.values())) != 1:
            raise InputError(f"all inputs must have the same number of examples (first dimension); got {sizes}")
        return next(iter(sizes.values()))
    if not isinstance(segments, Mapping):
        raise InputError(f"segments must be a mapping name -> (rows,) example index; got {describe(segments)}")
    missing = set(named) - set(segments)
    if missing:
        raise InputError(f"segments missing for inputs {sorted(missing)}")
    n = 0
    for name, seg in segments.items():
        if name not in named:
            raise InputError(f"segments given for unknown input {name!r}; inputs are {list(named)}")
        if not isinstance(seg, torch.Tensor) or seg.dtype not in (torch.int64, torch.int32) or seg.dim() != 1:
            raise InputError(f"segments[{name!r}] must be a 1-D integer tensor; got {describe(seg)}")
        if seg.shape[0] != named[name].shape[0]:
            raise InputError(
                f"segments[{name!r}] must have one entry per row ({named[name].shape[0]}); got {seg.shape[0]}"
            )
        if seg.numel():
            if int(seg.min()) < 0:
                raise InputError(f"segments[{name!r}] must be non-negative")
            n = max(n, int(seg.max()) + 1)
    return n


def _gather_kwargs(forward_kwargs, n_examples, example_ids, ragged):
    if not forward_kwargs:
        return {}
    if ragged:
        return dict(forward_kwargs)
    out = {}
    for key, value in forward_kwargs.items():
        if isinstance(value, torch.Tensor):
            if value.dim() == 0 or value.shape[0] != n_examples:
                raise InputError(
                    f"forward_kwargs[{key!r}] must have one row per example ({n_examples}) so it can be "
                    f"repeated along the path; got {describe(value)}. Bind constants with functools.partial"
                )
            out[key] = value[example_ids.to(value.device)]
        else:
            out[key] = value
    return out


@contextlib.contextmanager
def _safe_backward(model, device):
    """cuDNN refuses RNN backward in eval mode; fall back to the native kernels there."""
    needs = (device.type == "cuda" and isinstance(model, torch.nn.Module)
             and any(isinstance(m, torch.nn.RNNBase) for m in model.modules()))
    with torch.enable_grad(), (torch.backends.cudnn.flags(enabled=False) if needs else contextlib.nullcontext()):
        yield


def _warn_training(model):
    if isinstance(model, torch.nn.Module) and model.training:
        stochastic = (torch.nn.Dropout, torch.nn.modules.batchnorm._BatchNorm)
        if any(isinstance(m, stochastic) for m in model.modules()):
            warnings.warn("the model is in training mode and has dropout or batch-norm layers: attributions "
                          "will not be deterministic and completeness will not hold; call model.eval()",
                          stacklevel=3)


class _Problem:
    """Validated inputs of one attribution call."""

    def __init__(self, model, inputs, baselines, target, path, forward_kwargs, segments, method_name):
        self.model = model
        self.named, self.bare = normalize_inputs(inputs)
        self.ragged = segments is not None
        if self.ragged and self.bare:
            raise InputError("segments need named inputs (a mapping name -> tensor)")
        self.n = _example_count(self.named, segments)
        x0 = next(iter(self.named.values()))
        self.device, self.dtype = x0.device, x0.dtype
        if not isinstance(baselines, Mapping) or isinstance(baselines, torch.Tensor):
            if self.bare or not isinstance(baselines, torch.Tensor):
                baselines = {name: baselines for name in self.named}
            else:
                raise InputError("with named inputs, a baseline tensor must be given per name in a dict")
        unknown = set(baselines) - set(self.named)
        if unknown:
            raise InputError(f"baselines given for unknown inputs {sorted(unknown)}; inputs are {list(self.named)}")
        self.baselines = {name: resolve_baseline(baselines.get(name), x, name) for name, x in self.named.items()}
        self.paths = resolve_path(path, list(self.named))
        # inputs whose path is the straight line from an all-zero baseline (gamma(a) = a x)
        self.zero_line = {name for name, b in self.baselines.items()
                          if isinstance(self.paths[name], StraightLine) and self.paths[name].constant_velocity
                          and not bool(b.any())}
        self.selector = resolve_target(target, self.n)
        self.segments = None
        if self.ragged:
            self.segments = {k: v.to(self.device).long() for k, v in segments.items()}
        self.index = {name: RowIndex(None if self.segments is None else self.segments[name], self.n,
                                     x.shape[0], self.device) for name, x in self.named.items()}
        self.forward_kwargs = dict(forward_kwargs or {})
        self.method_name = method_name
        # elements per example, a proxy for memory per replica
        cost = torch.zeros(self.n, dtype=torch.float64, device=self.device)
        for name, x in self.named.items():
            per_row = x[0].numel() if x.shape[0] else 0
            cost += self.index[name].counts.double() * per_row
        self.cost = cost.cpu()

    def call(self, leaves: dict[str, torch.Tensor], replicas: Replicas):
        kwargs = _gather_kwargs(self.forward_kwargs, self.n, replicas.example, self.ragged)
        if self.bare:
            return self.model(leaves[DEFAULT_INPUT_NAME], **kwargs)
        if self.ragged:
            return self.model(**leaves, replicas=replicas, **kwargs)
        return self.model(**leaves, **kwargs)


def _target_gradients(scores: torch.Tensor, leaves: list, row_weights: torch.Tensor | None):
    """Gradients of every column of ``scores`` (rows, T) with respect to ``leaves``, one list per target.

    Replicas are independent, so seeding the backward pass with ``row_weights`` (the quadrature
    weight of each replica) returns weighted gradients without a separate multiplication;
    ``None`` seeds with ones (plain gradients). All targets share one forward pass; their backward
    passes run one after another on the retained graph. (Batching them with ``is_grads_batched``
    was measured slower on CPU for MLPs and is unsupported for fused RNN kernels.)
    """
    T = scores.shape[1]
    seed = torch.ones_like(scores[:, 0]) if row_weights is None else row_weights.to(scores.dtype)
    return [torch.autograd.grad(scores[:, t], leaves, grad_outputs=seed, retain_graph=t < T - 1,
                                allow_unused=True)
            for t in range(T)]


def _nodes(method, steps, dtype, device, need_ends: bool):
    alphas, weights = quadrature(method, steps, dtype, device)
    extra = []
    if need_ends:
        for end in (0.0, 1.0):
            if not bool((alphas == end).any()):
                extra.append(end)
    if extra:
        alphas = torch.cat([alphas, torch.tensor(extra, dtype=dtype, device=device)])
        weights = torch.cat([weights, torch.zeros(len(extra), dtype=dtype, device=device)])
    return alphas, weights


#: Bytes autograd saved per unit of input cost, by model weights and input kind (most recent last).
#: Only chunk sizes depend on it, never results.
_PROBED: collections.OrderedDict = collections.OrderedDict()
_PROBED_MAX = 64


def _probe_key(problem: _Problem, weights: frozenset):
    """Identity of "this model on inputs like these" for reusing a memory probe across calls:
    the storages of the model's weights (also when an adapter wraps it in a new object per call),
    the kind of callable, and each input's per-row shape, dtype and device. ``None`` (no reuse)
    when the weights are not known."""
    if not weights:
        return None
    inputs = tuple((name, tuple(x.shape[1:]), x.dtype, x.device) for name, x in problem.named.items())
    return weights, type(problem.model).__qualname__, inputs, problem.method_name


def _run(problem: _Problem, examples: torch.Tensor, alphas, weights, batch_size,
         budget, store_path: bool):
    """Integrate over the given examples; returns accumulators over all rows (only those rows filled)."""
    named, base, dev = problem.named, problem.baselines, problem.device
    K = alphas.shape[0]
    n_sel = examples.shape[0]
    # Nodes of weight zero (the end points added for the completeness check) need only F: when
    # the weighted nodes take several passes they are evaluated afterwards in forward passes
    # without autograd (unless the interior gradients are recorded there too).
    graded = torch.ones(K, dtype=torch.bool, device=dev) if store_path else weights != 0
    grad_nodes, plain_nodes = graded.nonzero().flatten(), (~graded).nonzero().flatten()
    grid_ex = examples.repeat_interleave(grad_nodes.shape[0])
    grid_node = grad_nodes.repeat(n_sel)
    cost = problem.cost[grid_ex.cpu()]
    T = None
    acc: dict[str, torch.Tensor] = {}
    scores_all = None
    interior: dict[str, torch.Tensor] = {}

    def process(start, stop, measure=False, exclude=frozenset(), grid=None, with_grad=True):
        nonlocal T, scores_all
        ex, node = (grid_ex, grid_node) if grid is None else grid
        ex, node = ex[start:stop], node[start:stop]
        alpha = alphas[node]
        reps = Replicas(example=ex, alpha=alpha)
        leaves, rows_of, rep_of, vel = {}, {}, {}, {}
        for name, x in named.items():
            rows, rep, first = problem.index[name].gather(ex)
            reps.rows[name], reps.row_replica[name], reps.first[name] = rows, rep, first
            reps.index[name] = problem.index[name]
            a = alpha.index_select(0, rep).reshape((-1,) + (1,) * (x.dim() - 1))
            path = problem.paths[name]
            xr = x.index_select(0, rows)
            # the straight line from zeros needs no baseline rows: x' + a (x - x') = a x
            br = None if name in problem.zero_line else base[name].index_select(0, rows)
            point = xr * a.to(xr.dtype) if br is None else path.point(xr, br, a)
            if not getattr(path, "constant_velocity", False):
                vel[name] = path.velocity(xr, br, a).detach()
            leaves[name] = point.detach().requires_grad_(with_grad)
            rows_of[name], rep_of[name] = rows, rep
        ctx = measure_saved_bytes(exclude) if measure else contextlib.nullcontext()
        with ctx as meter, torch.set_grad_enabled(with_grad):
            output = problem.call(leaves, reps)
            scores = problem.selector(output, ex)
        if T is None:
            T = scores.shape[1]
            if problem.selector.multi is False and T != 1:
                raise ModelOutputError(f"expected one score per example; the target gave {T}")
            scores_all = torch.zeros(problem.n, K, T, dtype=scores.dtype, device=dev)
            for name, x in named.items():
                acc[name] = torch.zeros((T,) + tuple(x.shape), dtype=x.dtype, device=dev)
                if store_path:
                    interior[name] = torch.zeros((T, K) + tuple(x.shape), dtype=x.dtype, device=dev)
        elif scores.shape[1] != T:
            raise ModelOutputError(f"the target gave {scores.shape[1]} scores per example; earlier {T}")
        if not torch.isfinite(scores).all():
            bad = ex[~torch.isfinite(scores).all(1)].unique().tolist()
            raise ModelOutputError(f"the model output is not finite for examples {bad[:10]} "
                                   f"(at alpha in {sorted(set(alpha[~torch.isfinite(scores).all(1)].tolist()))[:5]})")
        scores_all[ex, node] = scores.detach()
        if not with_grad:
            return None
        w = weights[node]
        names = list(leaves)
        # with the path stored, plain gradients are kept and weighted afterwards
        seeded = None if store_path else w
        for t, grads in enumerate(_target_gradients(scores, [leaves[k] for k in names], seeded)):
            for name, g in zip(names, grads):
                if g is None:
                    raise InputError(
                        f"the model output does not depend differentiably on input {name!r}: expected a "
                        f"floating-point path from {name!r} to the score, got none (was it detached, "
                        f"rounded or used as an index?)"
                    )
                x = named[name]
                if seeded is None:
                    contrib = g * w.index_select(0, rep_of[name]).reshape((-1,) + (1,) * (x.dim() - 1)).to(g.dtype)
                else:
                    contrib = g
                if name in vel:
                    contrib = contrib * vel[name]
                acc[name][t].index_add_(0, rows_of[name], contrib)
                if store_path:
                    interior[name][t].index_put_((node[rep_of[name]], rows_of[name]), g.detach())
        return meter.bytes if measure else None

    total = grid_ex.shape[0]
    max_cost = None
    if batch_size is not None:
        chunks = plan_chunks(cost, batch_size, None if budget is None else math.inf)
        if budget is not None:
            chunks = None
    else:
        chunks = None
    weights_known = parameter_storages(problem.model) if chunks is None else frozenset()
    key = _probe_key(problem, weights_known)
    known = _PROBED.get(key) if chunks is None and key is not None else None
    if known is not None:
        # this model has been probed on inputs of this kind: its bytes per unit of input are known
        with contextlib.suppress(KeyError):  # another thread may have evicted it meanwhile
            _PROBED.move_to_end(key)
        max_cost = budget / (2.0 * known)
        chunks = plan_chunks(cost, batch_size, max_cost)
    if plain_nodes.numel() and chunks is not None and len(chunks) == 1:
        # everything fits in one pass: the end points ride along (a separate forward-only pass
        # would cost more than their share of the backward)
        every = (examples.repeat_interleave(K), torch.arange(K, device=dev).repeat(n_sel))
        if len(plan_chunks(problem.cost[every[0].cpu()], batch_size, max_cost)) == 1:
            process(0, every[0].shape[0], grid=every)
            return acc, scores_all, interior, T
    if chunks is None:
        # A probe chunk measures the bytes autograd saves per unit of input. The model's weights do
        # not grow with the chunk: they are excluded where the model's modules are known; otherwise
        # a second probe is taken and the difference of the two is used.
        cap = total if batch_size is None else min(total, batch_size)
        stop1 = min(16 if weights_known else 2, cap)
        saved1 = process(0, stop1, measure=True, exclude=weights_known)
        c1 = float(cost[:stop1].sum())
        stop2 = stop1 if weights_known else min(stop1 + 8, total, stop1 + cap)
        if stop2 > stop1:
            saved2 = process(stop1, stop2, measure=True)
            c2 = float(cost[stop1:stop2].sum())
            marginal = (saved2 - saved1) / (c2 - c1) if c2 > c1 and saved2 > saved1 else saved2 / max(c2, 1.0)
        else:
            marginal = saved1 / max(c1, 1.0)
        per_cost = max(marginal, 1e-3)
        if key is not None:
            _PROBED[key] = per_cost
            while len(_PROBED) > _PROBED_MAX:
                _PROBED.popitem(last=False)
        # saved activations + gradients of the leaves + the outputs: keep a 2x margin
        max_cost = budget / (2.0 * per_cost)
        rest = plan_chunks(cost[stop2:], batch_size, max_cost)
        chunks = [(s + stop2, e + stop2) for s, e in rest]
    for start, stop in chunks:
        process(start, stop)
    if plain_nodes.numel():
        plain = (examples.repeat_interleave(plain_nodes.shape[0]), plain_nodes.repeat(n_sel))
        # without saved activations a pass holds less; chunks of the same cost are safe
        for start, stop in plan_chunks(problem.cost[plain[0].cpu()], batch_size, max_cost):
            process(start, stop, grid=plain, with_grad=False)
    return acc, scores_all, interior, T


def attribute(
    model: Callable,
    inputs: Inputs,
    *,
    method: str = "integrated_gradients",
    baselines=None,
    target=None,
    steps: int | str = 50,
    rule="gausslegendre",
    path=None,
    tolerance: float | None = None,
    max_steps: int = 1024,
    batch_size: int | None = None,
    memory_budget=None,
    store_path: bool = False,
    forward_kwargs: Mapping | None = None,
    segments: Mapping[str, torch.Tensor] | None = None,
) -> Attribution:
    """Attribute ``model``'s score(s) to its named inputs.

    Parameters
    ----------
    model:
        A callable (usually an ``nn.Module``). Called as ``model(x)`` for a bare tensor input,
        ``model(**inputs)`` for named inputs, and ``model(**inputs, replicas=...)`` when
        ``segments`` is given (ragged inputs; see :class:`sciattr.core.batching.Replicas`).
    inputs:
        A tensor ``(n, ...)`` or a mapping name -> tensor. Dense inputs share the leading
        example dimension ``n``; ragged inputs have rows assigned to examples by ``segments``.
    method:
        ``"integrated_gradients"``, ``"gradient"`` (saliency) or ``"gradient_x_input"``.
    baselines:
        See :mod:`sciattr.core.baselines`; default ``"zeros"``.
    target:
        See :mod:`sciattr.core.targets`.
    steps:
        Quadrature nodes, or ``"auto"`` for adaptive steps with ``tolerance=0.05``.
    rule:
        Quadrature rule name (``"gausslegendre"``, ``"riemann_left"``, ``"riemann_right"``,
        ``"riemann_middle"``, ``"riemann_trapezoid"``) or an explicit ``(alphas, weights)`` pair.
    path:
        ``None`` for the straight line, a path object, a callable ``gamma(x, baseline, alpha)``
        or a dict name -> path.
    tolerance:
        When given, steps are doubled (from ``steps``) for the examples whose
        ``|completeness_gap| > tolerance * |F(x) - F(x')|`` until ``max_steps``.
    batch_size, memory_budget:
        Bound the replicas (example x node) per forward pass, or the autograd memory per pass
        (bytes or a string like ``"2GiB"``; default 32 MiB on a CPU, up to 4 GiB on a GPU). A
        budget is turned into replicas per pass by a small probe pass that measures the bytes
        autograd saves; the measurement is remembered for the model's weights and the kind of
        input, so later calls skip the probe. Results do not depend on the chunking (up to
        floating-point rounding).
    store_path:
        Record ``F(gamma(alpha))`` and the interior gradients at every node in ``result.path``
        (with adaptive steps, every example is then refined together so they share one grid).
    forward_kwargs:
        Extra per-example tensors (leading dimension ``n``) passed to the model, repeated along
        the path (e.g. ``attention_mask``).
    segments:
        name -> ``(rows,)`` example index of each row, for ragged inputs.

    Returns
    -------
    Attribution
    """
    methods = {"integrated_gradients", "gradient", "gradient_x_input"}
    if method not in methods:
        raise InputError(f"method must be one of {sorted(methods)}; got {method!r}")
    if steps == "auto":
        steps = 16
        tolerance = 0.05 if tolerance is None else tolerance
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps must be an integer >= 1 or 'auto'; got {describe(steps)}")
    if tolerance is not None and (not isinstance(tolerance, (int, float)) or tolerance <= 0):
        raise InputError(f"tolerance must be a positive number; got {describe(tolerance)}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise InputError(f"max_steps must be a positive integer; got {describe(max_steps)}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise InputError(f"batch_size must be a positive integer; got {describe(batch_size)}")
    budget = parse_memory(memory_budget)
    problem = _Problem(model, inputs, baselines, target, path, forward_kwargs, segments, method)
    if batch_size is None and budget is None:
        budget = default_memory_budget(problem.device)
    _warn_training(model)
    dev, dtype = problem.device, problem.dtype
    if problem.n == 0:
        raise InputError("inputs contain no examples")

    if method == "integrated_gradients":
        rule_name = rule if isinstance(rule, str) else "custom"

        def nodes(k):
            return _nodes(rule, k, dtype, dev, need_ends=True)
    else:
        rule_name = "point"
        tolerance = None

        def nodes(k):
            return (torch.tensor([1.0, 0.0], dtype=dtype, device=dev),
                    torch.tensor([1.0, 0.0], dtype=dtype, device=dev))
    scale = method != "gradient"

    def run(examples, k):
        alphas, weights = nodes(k)
        with _safe_backward(model, dev):
            acc, scores, interior, T = _run(problem, examples, alphas, weights, batch_size, budget,
                                            store_path)
        return alphas, acc, scores, interior, T

    all_examples = torch.arange(problem.n, device=dev)
    alphas, acc, scores, interior, T = run(all_examples, steps)
    steps_used = torch.full((problem.n,), steps, dtype=torch.long)

    def finish(acc_, scores_, alphas_):
        attributions = {}
        for name, a in acc_.items():
            x, b = problem.named[name], problem.baselines[name]
            if scale and getattr(problem.paths[name], "constant_velocity", False):
                a = a * (x - b)
            attributions[name] = a
        end1 = (alphas_ == 1.0).nonzero()[0, 0]
        end0 = (alphas_ == 0.0).nonzero()[0, 0]
        return attributions, scores_[:, end1], scores_[:, end0]

    attributions, fx, fb = finish(acc, scores, alphas)

    def row_sums(attrs):
        total = torch.zeros(problem.n, T, dtype=fx.dtype, device=dev)
        for name, a in attrs.items():
            per_row = a.reshape(T, a.shape[1], -1).sum(-1).T  # (rows, T)
            if problem.segments is None:
                total += per_row
            else:
                total.index_add_(0, problem.segments[name], per_row.to(total.dtype))
        return total

    if tolerance is not None and method == "integrated_gradients":
        k = steps
        while True:
            gap = (row_sums(attributions) - (fx - fb)).abs()
            scale_ = (fx - fb).abs()
            floor = 64 * torch.finfo(fx.dtype).eps * torch.maximum(fx.abs(), fb.abs()).clamp_min(1.0)
            bad = ((gap > tolerance * scale_) & (gap > floor)).any(1).nonzero().flatten()
            if bad.numel() == 0 or 2 * k > max_steps:
                break
            k *= 2
            # a recorded path must share one grid across examples, so then every example is refined
            redo = all_examples if store_path else bad
            alphas_k, acc_k, scores_k, interior_k, _ = run(redo, k)
            attrs_k, _, _ = finish(acc_k, scores_k, alphas_k)
            for name in attributions:
                if problem.segments is None:
                    rows = redo
                else:
                    rows = torch.isin(problem.segments[name], redo).nonzero().flatten()
                attributions[name][:, rows] = attrs_k[name][:, rows]
            steps_used[redo.cpu()] = k
            if store_path:
                scores, alphas, interior = scores_k, alphas_k, interior_k
        if bad.numel():
            warnings.warn(
                f"completeness gap above tolerance {tolerance:.3g} for {bad.numel()} example(s) "
                f"{bad.tolist()[:10]} at max_steps={max_steps}; the model may be non-smooth there "
                f"(relative gaps {(gap[bad] / scale_[bad].clamp_min(1e-300)).max(1).values.tolist()[:5]})",
                ConvergenceWarning, stacklevel=2)

    multi = problem.selector.multi or (problem.selector.multi is None and T > 1)
    if problem.selector.kind == "all":
        multi = True

    def shape_t(t):  # (T, *shape) -> shape (+ trailing T)
        return t.movedim(0, -1) if multi else t[0]

    record = None
    if store_path:
        order = torch.argsort(alphas)
        record = PathRecord(
            alphas=alphas[order],
            scores=scores[:, order] if multi else scores[:, order, 0],
            gradients={name: (g[:, order].movedim(0, -1) if multi else g[0, order])
                       for name, g in interior.items() if g is not None},
        )
    result = Attribution(
        attributions={name: shape_t(a) for name, a in attributions.items()},
        inputs=problem.named,
        baselines=problem.baselines,
        forward_x=fx if multi else fx[:, 0],
        forward_baseline=fb if multi else fb[:, 0],
        method=method,
        rule=rule_name,
        steps=steps_used,
        target=problem.selector.description,
        multi_target=multi,
        segments=problem.segments,
        path=record,
    )
    return result


def integrated_gradients(model, inputs, **options) -> Attribution:
    """Integrated gradients (Sundararajan, Taly & Yan 2017) of ``model`` at ``inputs``.

    ``attr_i = (x_i - x'_i) * integral_0^1 dF(x' + a (x - x'))/dx_i da`` -- or along any path.
    Keyword options are those of :func:`attribute`.

    Example
    -------
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Softplus(), torch.nn.Linear(2, 1))
    >>> res = integrated_gradients(model, torch.randn(4, 3), steps=32)
    >>> bool(res.relative_gap.max() < 1e-3)
    True
    """
    return attribute(model, inputs, method="integrated_gradients", **options)


def gradient(model, inputs, **options) -> Attribution:
    """Plain gradients dF/dx at the input (saliency), as an :class:`Attribution`."""
    return attribute(model, inputs, method="gradient", **options)


def gradient_x_input(model, inputs, **options) -> Attribution:
    """Gradient x (input - baseline) at the input, as an :class:`Attribution`."""
    return attribute(model, inputs, method="gradient_x_input", **options)
