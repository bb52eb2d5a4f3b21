"""The batched attribution engine: integrated gradients, gradients and gradient x input.

One function does the work (:func:`attribute`); the named methods are thin wrappers. Planning
and execution are separate: a *level* decides which path nodes each example needs (the first
level, then refinements that add only the new nodes of a nested rule), a :class:`_Grid` lists
the replicas (example x node) with their backward seed and accumulator class, and the
:class:`_Executor` cuts grids into passes bounded by ``batch_size`` replicas or a
``memory_budget`` and runs each as one forward and one backward (one backward per target when
several targets are attributed together). ``F(x)`` and ``F(x')`` are end points of the nested
rules; for the others they join the path nodes when everything fits in one pass and are
otherwise evaluated in forward passes without autograd. Nothing here depends on the device:
tensors stay where the inputs are.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

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
from sciattr.errors import ConvergenceWarning, InputError, ModelOutputError, SciAttrError, describe
from sciattr.result import Attribution, PathRecord
from sciattr.settings import Settings, resolve_settings

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
        if x.shape[0] > 0 and x.numel() == 0:
            raise InputError(f"input {name!r} must have at least one feature per row; got shape {tuple(x.shape)}")
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


@contextlib.contextmanager
def model_as_found(model):
    """Leave a model exactly as it was found: a model in training mode updates buffers such as
    batch-norm running statistics on every forward; they are restored afterwards (also on error)."""
    saved = []
    if isinstance(model, torch.nn.Module) and model.training:
        saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield
    finally:
        if saved:
            with torch.no_grad():
                for buf, value in saved:
                    buf.copy_(value)


def _check_model_dtype(model, dtype: torch.dtype) -> None:
    if not isinstance(model, torch.nn.Module):
        return
    p = next((p for p in model.parameters() if p.is_floating_point()), None)
    if p is not None and p.dtype != dtype:
        raise InputError(f"expected inputs of the model's dtype {p.dtype}; got {dtype}. Convert the inputs "
                         f"(x.to({p.dtype})) or the model (model.to({dtype}))")


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
        dtypes = {x.dtype for x in self.named.values()}
        if len(dtypes) > 1:
            raise InputError(f"all inputs must have one floating-point dtype; got {sorted(map(str, dtypes))}")
        _check_model_dtype(model, self.dtype)
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
        # the example each row belongs to
        self.row_example = {name: (torch.arange(x.shape[0], device=self.device) if self.segments is None
                                   else self.segments[name]) for name, x in self.named.items()}
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
        try:
            if self.bare:
                return self.model(leaves[DEFAULT_INPUT_NAME], **kwargs)
            if self.ragged:
                return self.model(**leaves, replicas=replicas, **kwargs)
            return self.model(**leaves, **kwargs)
        except SciAttrError:
            raise
        except (RuntimeError, TypeError, ValueError, IndexError, KeyError) as exc:
            shapes = {k: tuple(v.shape) for k, v in leaves.items()}
            raise ModelOutputError(f"the model raised {type(exc).__name__} on inputs {shapes}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''}"[:600]) from exc

    def rows_of(self, name: str, examples: torch.Tensor) -> torch.Tensor:
        """Rows of input ``name`` that belong to ``examples``."""
        if self.segments is None:
            return examples
        return torch.isin(self.segments[name], examples).nonzero().flatten()


def _target_gradients(scores: torch.Tensor, leaves: list, seed: torch.Tensor):
    """Gradients of every column of ``scores`` (rows, T) with respect to ``leaves``, one list per target.

    Replicas are independent, so seeding the backward pass with ``seed`` (the quadrature weight of
    each replica, or ones) returns weighted gradients without a separate multiplication. All
    targets share one forward pass; their backward passes run one after another on the retained
    graph. (Batching them with ``is_grads_batched`` was measured slower on CPU for MLPs and is
    unsupported for fused RNN kernels.)
    """
    T = scores.shape[1]
    seed = seed.to(scores.dtype)
    return [torch.autograd.grad(scores[:, t], leaves, grad_outputs=seed, retain_graph=t < T - 1,
                                allow_unused=True)
            for t in range(T)]


# ---------------------------------------------------------------------------------------------- rules
#: Rules whose nodes nest under doubling, with the weight of the end points alpha = 0 and alpha = 1
#: relative to an interior node (interior nodes weigh 1/N with N intervals).
NESTED_RULES = {"trapezoid": (0.5, 0.5), "riemann_trapezoid": (0.5, 0.5),
                "riemann_left": (1.0, 0.0), "riemann_right": (0.0, 1.0)}

# accumulator classes of a nested rule: the end points, the interior nodes of the coarser level
# ("old") and the nodes the last level added ("new"); a non-nested rule keeps one weighted sum
END0, END1, OLD, NEW = 0, 1, 2, 3
WEIGHTED = 0
SKIP = -1  # forward only (an end point with weight zero)


@dataclass
class _Grid:
    """Replicas to evaluate: example, path position, backward seed and accumulator class of each.

    ``record`` (optional) is the position of each replica's node in the recorded path."""

    example: torch.Tensor
    alpha: torch.Tensor
    seed: torch.Tensor
    cls: torch.Tensor
    record: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.example.shape[0])

    def part(self, mask: torch.Tensor) -> _Grid:
        return _Grid(self.example[mask], self.alpha[mask], self.seed[mask], self.cls[mask],
                     None if self.record is None else self.record[mask])

    def slice(self, start: int, stop: int) -> _Grid:
        return _Grid(self.example[start:stop], self.alpha[start:stop], self.seed[start:stop],
                     self.cls[start:stop], None if self.record is None else self.record[start:stop])

    @staticmethod
    def cross(examples: torch.Tensor, alphas, seeds, classes, record=None) -> _Grid:
        k = alphas.shape[0]
        return _Grid(examples.repeat_interleave(k), alphas.repeat(examples.shape[0]),
                     seeds.repeat(examples.shape[0]), classes.repeat(examples.shape[0]),
                     None if record is None else record.repeat(examples.shape[0]))


class _Level:
    """The nodes of one refinement level for a rule: which alphas, which seed and accumulator class."""

    def __init__(self, rule, dtype, device):
        self.rule, self.dtype, self.device = rule, dtype, device
        self.nested = isinstance(rule, str) and rule.lower() in NESTED_RULES
        self.ends = NESTED_RULES[rule.lower()] if self.nested else None

    def _t(self, values) -> torch.Tensor:
        return torch.as_tensor(values, dtype=torch.float64).to(dtype=self.dtype, device=self.device)

    def first(self, k: int, with_ends: bool = True):
        """Nodes of the first level with ``k`` intervals: (alphas, seeds, classes)."""
        if self.nested:
            j = torch.arange(k + 1, dtype=torch.float64)
            cls = torch.where(j % 2 == 0, OLD, NEW)
            cls[0], cls[-1] = END0, END1
            seeds = torch.ones(k + 1, dtype=torch.float64)
            c0, c1 = self.ends
            if c0 == 0:
                cls[0], seeds[0] = SKIP, 0.0
            if c1 == 0:
                cls[-1], seeds[-1] = SKIP, 0.0
            return self._t(j / k), self._t(seeds), cls.to(self.device)
        alphas, weights = quadrature(self.rule, k, self.dtype, self.device)
        cls = torch.full((alphas.shape[0],), WEIGHTED, dtype=torch.long, device=self.device)
        if with_ends:
            extra = [end for end in (0.0, 1.0) if not bool((alphas == end).any())]
            if extra:
                alphas = torch.cat([alphas, self._t(extra)])
                weights = torch.cat([weights, self._t([0.0] * len(extra))])
                cls = torch.cat([cls, torch.full((len(extra),), SKIP, dtype=torch.long, device=self.device)])
        cls = torch.where(weights == 0, SKIP, cls)
        return alphas, weights, cls

    def refine(self, k: int):
        """Nodes added when going from ``k`` to ``2k`` intervals (all nodes for a non-nested rule)."""
        if self.nested:
            j = torch.arange(k, dtype=torch.float64)
            return (self._t((2 * j + 1) / (2 * k)), self._t(torch.ones(k)),
                    torch.full((k,), NEW, dtype=torch.long, device=self.device))
        return self.first(2 * k, with_ends=False)

    def n_classes(self) -> int:
        return 4 if self.nested else 1


def _node_count(level: _Level, k: int) -> int:
    """Distinct nodes of the first level with ``k`` intervals, end points included."""
    alphas, _, _ = level.first(k)
    return int(alphas.shape[0])


# ---------------------------------------------------------------------------------------------- passes
class _Accumulators:
    """Per-class sums of (seeded) gradients for every row, F at the end points, and the path record."""

    def __init__(self, problem: _Problem, n_classes: int, store_path: bool):
        self.problem, self.C, self.store_path = problem, n_classes, store_path
        self.T = 0  # scores per example; 0 until the first pass
        self.sums: dict[str, torch.Tensor] = {}
        self.f0 = self.f1 = torch.empty(0)
        self.record_alphas: list[torch.Tensor] = []
        self.record_scores: list[torch.Tensor | None] = []
        self.record_grads: dict[str, list[torch.Tensor | None]] = {}

    def start(self, T: int, dtype) -> None:
        p = self.problem
        if self.T == 0:
            self.T = T
            self.f0 = torch.full((p.n, T), torch.nan, dtype=dtype, device=p.device)
            self.f1 = torch.full((p.n, T), torch.nan, dtype=dtype, device=p.device)
            for name, x in p.named.items():
                self.sums[name] = torch.zeros((T, self.C) + tuple(x.shape), dtype=x.dtype, device=p.device)
        elif T != self.T:
            raise ModelOutputError(f"the target gave {T} scores per example; earlier {self.T}")

    def open_record(self, alphas: torch.Tensor) -> None:
        """Start recording a block of nodes (store_path): every example at every one of ``alphas``."""
        p = self.problem
        self.record_alphas.append(alphas)
        self.record_scores.append(None)
        for name in p.named:
            self.record_grads.setdefault(name, []).append(None)

    def reset(self, examples: torch.Tensor, classes) -> None:
        for name, s in self.sums.items():
            rows = self.problem.rows_of(name, examples)
            for c in classes:
                s[:, c, rows] = 0

    def promote(self, examples: torch.Tensor) -> None:
        """Nested refinement: the newest nodes become part of the coarser level."""
        for name, s in self.sums.items():
            rows = self.problem.rows_of(name, examples)
            s[:, OLD, rows] += s[:, NEW, rows]
            s[:, NEW, rows] = 0


def _evaluate(problem: _Problem, grid: _Grid, acc: _Accumulators, with_grad: bool, labels,
              measure: bool = False, exclude=frozenset()):
    """One forward (and backward) pass over ``grid``; adds into ``acc``. Returns saved bytes if measuring."""
    named, base = problem.named, problem.baselines
    ex, alpha = grid.example, grid.alpha
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
    T = scores.shape[1]
    if problem.selector.multi is False and T != 1:
        raise ModelOutputError(f"expected one score per example; the target gave {T}")
    acc.start(T, scores.dtype)
    finite = torch.isfinite(scores).all(1)
    if not bool(finite.all()):
        bad = ex[~finite].unique().tolist()
        raise ModelOutputError(f"the model output is not finite for example(s) {_names(bad, labels)} "
                               f"(at alpha in {sorted(set(alpha[~finite].tolist()))[:5]})")
    det = scores.detach()
    for end, store in ((0.0, acc.f0), (1.0, acc.f1)):
        at = alpha == end
        if bool(at.any()):
            store[ex[at]] = det[at]
    if acc.store_path and grid.record is not None:
        block = acc.record_scores
        recorded = block[-1]
        if recorded is None:
            recorded = block[-1] = torch.zeros((problem.n, acc.record_alphas[-1].shape[0], T), dtype=det.dtype,
                                               device=problem.device)
        recorded[ex, grid.record] = det
    if not with_grad:
        return None
    if not scores.requires_grad:
        raise ModelOutputError("the score does not depend differentiably on the inputs: the model output has "
                               "no gradient path to them (was it computed under torch.no_grad, detached, or "
                               "from integer operations?)")
    names = list(leaves)
    graded = grid.cls != SKIP
    seed = grid.seed if not acc.store_path else torch.ones_like(grid.seed)
    for t, grads in enumerate(_target_gradients(scores, [leaves[k] for k in names], seed)):
        for name, g in zip(names, grads):
            if g is None:
                raise InputError(
                    f"the model output does not depend differentiably on input {name!r}: expected a "
                    f"floating-point path from {name!r} to the score, got none (was it detached, "
                    f"rounded or used as an index?)"
                )
            x = named[name]
            rep = rep_of[name]
            ok_rows = graded.index_select(0, rep)
            bad_rows = ok_rows & ~torch.isfinite(g.reshape(g.shape[0], -1)).all(1)
            if bool(bad_rows.any()):
                bad_rep = rep[bad_rows]
                _poisoned_by_other_outputs(output, bad_rep, ex, alpha, labels)
                raise ModelOutputError(
                    f"the gradient of the score with respect to {name!r} is not finite for example(s) "
                    f"{_names(ex[bad_rep].unique().tolist(), labels)} at alpha in "
                    f"{sorted(set(alpha[bad_rep].tolist()))[:5]} although the output is finite (e.g. sqrt or "
                    f"norm at zero); a rule that does not evaluate the end points (rule='riemann_middle' or "
                    f"'gausslegendre') or another baseline avoids alpha = 0")
            if acc.store_path:
                w = grid.seed.index_select(0, rep).reshape((-1,) + (1,) * (x.dim() - 1)).to(g.dtype)
                contrib = g * w
            else:
                contrib = g
            if name in vel:
                contrib = contrib * vel[name]
            cls = grid.cls.index_select(0, rep)
            keep = cls != SKIP
            if not bool(keep.all()):
                contrib, rows_k, cls = contrib[keep], rows_of[name][keep], cls[keep]
            else:
                rows_k = rows_of[name]
            flat = acc.sums[name][t].reshape((-1,) + tuple(x.shape[1:]))  # a view: (C * rows, ...)
            flat.index_add_(0, cls * x.shape[0] + rows_k, contrib.to(flat.dtype))
            if acc.store_path and grid.record is not None:
                block = acc.record_grads[name]
                if block[-1] is None:
                    k = acc.record_alphas[-1].shape[0]
                    block[-1] = torch.zeros((acc.T, k) + tuple(x.shape), dtype=x.dtype, device=problem.device)
                recorded = block[-1]
                if recorded is not None:
                    recorded[t].index_put_((grid.record.index_select(0, rep), rows_of[name]), g.detach())
    return meter.bytes if measure and meter is not None else None


def _poisoned_by_other_outputs(output, bad_rep, ex, alpha, labels) -> None:
    """Raise when the target's gradient is NaN because *another* output value is not finite there.

    Autograd sends a zero seed through every output; where a non-target output is infinite its
    backward multiplies 0 by an infinite derivative (``log(0)``, ``1/0``) and the NaN flows into
    the target's gradient. Nothing outside the model can undo that, so it is named precisely."""
    if not isinstance(output, torch.Tensor) or output.dim() < 2 or output.shape[0] != ex.shape[0]:
        return
    out = output.detach()[bad_rep].reshape(bad_rep.shape[0], -1)
    cols = (~torch.isfinite(out)).any(0).nonzero().flatten().tolist()
    if cols:
        raise ModelOutputError(
            f"the model output column(s) {cols[:10]} (not the target) are not finite for example(s) "
            f"{_names(ex[bad_rep].unique().tolist(), labels)} at alpha in {sorted(set(alpha[bad_rep].tolist()))[:5]}; "
            f"autograd multiplies their zero seed by an infinite derivative, which makes the target's gradient NaN: "
            f"keep every output finite along the path (e.g. clamp the argument of a log) or choose another baseline")


#: Bytes autograd saved per unit of input cost, by model weights and input kind (most recent last).
#: Only chunk sizes depend on it; results only through the order of floating-point sums (last bits).
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


class _Executor:
    """Cuts grids into passes bounded by ``batch_size`` replicas or a memory budget, and runs them.

    The budget becomes a bound on input cost per pass through a probe: the first pass of a call
    measures the bytes autograd saves (the model's weights excluded), once per model and kind of
    input (remembered across calls)."""

    def __init__(self, problem: _Problem, batch_size, budget, labels):
        self.problem, self.batch_size, self.budget, self.labels = problem, batch_size, budget, labels
        self.max_cost = None if budget is None else self._known()

    def _known(self):
        self.weights = parameter_storages(self.problem.model)
        self.key = _probe_key(self.problem, self.weights)
        known = _PROBED.get(self.key) if self.key is not None else None
        if known is None:
            return None
        with contextlib.suppress(KeyError):  # another thread may have evicted it meanwhile
            _PROBED.move_to_end(self.key)
        return self.budget / (2.0 * known)

    @property
    def planned(self) -> bool:
        return self.budget is None or self.max_cost is not None

    def chunks(self, grid: _Grid) -> list[tuple[int, int]]:
        cost = self.problem.cost[grid.example.cpu()]
        limit = None if self.budget is None else self.max_cost
        return plan_chunks(cost, self.batch_size, limit)

    def fits_in_one(self, grid: _Grid) -> bool:
        return self.planned and len(self.chunks(grid)) <= 1

    def run(self, grid: _Grid, acc: _Accumulators, with_grad: bool = True) -> None:
        if len(grid) == 0:
            return
        start = 0
        if not self.planned and with_grad:
            start = self._probe(grid, acc)
        rest = grid.slice(start, len(grid))
        for s, e in self.chunks(rest):
            _evaluate(self.problem, rest.slice(s, e), acc, with_grad, self.labels)

    def _probe(self, grid: _Grid, acc: _Accumulators) -> int:
        # A probe chunk measures the bytes autograd saves per unit of input. The model's weights do
        # not grow with the chunk: they are excluded where the model's modules are known; otherwise
        # a second probe is taken and the difference of the two is used.
        total = len(grid)
        cost = self.problem.cost[grid.example.cpu()]
        cap = total if self.batch_size is None else min(total, self.batch_size)
        stop1 = min(16 if self.weights else 2, cap)
        saved1 = _evaluate(self.problem, grid.slice(0, stop1), acc, True, self.labels, measure=True,
                           exclude=self.weights)
        c1 = float(cost[:stop1].sum())
        stop2 = stop1 if self.weights else min(stop1 + 8, total, stop1 + cap)
        if stop2 > stop1:
            saved2 = _evaluate(self.problem, grid.slice(stop1, stop2), acc, True, self.labels, measure=True)
            c2 = float(cost[stop1:stop2].sum())
            marginal = (saved2 - saved1) / (c2 - c1) if c2 > c1 and saved2 > saved1 else saved2 / max(c2, 1.0)
        else:
            marginal = saved1 / max(c1, 1.0)
        per_cost = max(marginal, 1e-3)
        if self.key is not None:
            _PROBED[self.key] = per_cost
            while len(_PROBED) > _PROBED_MAX:
                _PROBED.popitem(last=False)
        # saved activations + gradients of the leaves + the outputs: keep a 2x margin
        self.max_cost = self.budget / (2.0 * per_cost)
        return stop2


def _run_grid(executor: _Executor, grid: _Grid, acc: _Accumulators) -> None:
    """Evaluate a grid: nodes with a gradient in backward passes, forward-only nodes (weight-zero
    end points) in passes without autograd -- or together in one pass when everything fits."""
    graded = grid.cls != SKIP
    if acc.store_path or bool(graded.all()):
        executor.run(grid, acc)
        return
    if executor.fits_in_one(grid):
        # one pass: the end points ride along (a separate forward-only pass would cost more than
        # their share of the backward)
        executor.run(grid, acc)
        return
    executor.run(grid.part(graded), acc)
    executor.run(grid.part(~graded), acc, with_grad=False)


# ---------------------------------------------------------------------------------------------- levels
def _names(examples, labels) -> str:
    shown = [labels[i] if labels is not None else i for i in examples[:10]]
    more = f" and {len(examples) - 10} more" if len(examples) > 10 else ""
    return f"{shown}{more}"


class _Integral:
    """Turns accumulated gradient sums into attributions, gaps and error estimates per example."""

    def __init__(self, problem: _Problem, level: _Level, acc: _Accumulators, scale_by_input: bool):
        self.p, self.level, self.acc, self.scale_by_input = problem, level, acc, scale_by_input

    def _per_row(self, values: torch.Tensor, name: str, dims: int) -> torch.Tensor:
        ex = self.p.row_example[name]
        return values.index_select(0, ex).reshape((-1,) + (1,) * dims)

    def _finish(self, name: str, raw: torch.Tensor) -> torch.Tensor:
        """``raw`` (T, rows, ...) integrated gradients -> attributions (times (x - x') on straight lines)."""
        if self.scale_by_input and getattr(self.p.paths[name], "constant_velocity", False):
            return raw * (self.p.named[name] - self.p.baselines[name])
        return raw

    def attributions(self, steps: torch.Tensor) -> dict[str, torch.Tensor]:
        """Attributions at each example's current level (``steps`` intervals)."""
        out = {}
        for name, s in self.acc.sums.items():
            x = self.p.named[name]
            if self.level.nested:
                c0, c1 = self.level.ends
                k = steps.to(device=x.device, dtype=x.dtype)
                ends = c0 * s[:, END0] + c1 * s[:, END1]
                raw = (s[:, OLD] + s[:, NEW] + ends) * self._per_row(1.0 / k, name, x.dim() - 1)
            else:
                raw = s[:, WEIGHTED]
            out[name] = self._finish(name, raw)
        return out

    def coarse_attributions(self, steps: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """Nested rules: the attributions of the level below (half the intervals), free of extra passes."""
        if not self.level.nested:
            return None
        out = {}
        for name, s in self.acc.sums.items():
            x = self.p.named[name]
            c0, c1 = self.level.ends
            k = steps.to(device=x.device, dtype=x.dtype)
            raw = (s[:, OLD] + c0 * s[:, END0] + c1 * s[:, END1]) * self._per_row(2.0 / k, name, x.dim() - 1)
            out[name] = self._finish(name, raw)
        return out

    def sums(self, attrs: dict[str, torch.Tensor], absolute: bool = False) -> torch.Tensor:
        """Per-example (n, T) sum of attributions (or of their magnitudes)."""
        total = torch.zeros(self.p.n, self.acc.T, dtype=self.acc.f0.dtype, device=self.p.device)
        for name, a in attrs.items():
            a = a.abs() if absolute else a
            per_row = a.reshape(a.shape[0], a.shape[1], -1).sum(-1).T  # (rows, T)
            total.index_add_(0, self.p.row_example[name], per_row.to(total.dtype))
        return total

    def difference(self, a: dict, b: dict) -> torch.Tensor:
        """Per-example sum over features of ``|a - b|``, the largest over targets: (n,)."""
        return self.sums({k: a[k] - b[k] for k in a}, absolute=True).max(1).values


def _check(integral: _Integral, attrs, tolerance: float):
    """Per example: (met (n,), criterion codes (n,), |gap| / scale (n,)) under the well-posed rule."""
    acc = integral.acc
    delta = acc.f1 - acc.f0
    gap = (integral.sums(attrs) - delta).abs()
    scale = torch.maximum(delta.abs(), integral.sums(attrs, absolute=True))
    floor = 64 * torch.finfo(delta.dtype).eps * torch.maximum(acc.f1.abs(), acc.f0.abs()).clamp_min(1.0)
    by_delta = (gap <= tolerance * delta.abs()).all(1)
    by_scale = (gap <= tolerance * scale).all(1)
    exact = (gap <= floor).all(1)
    code = torch.where(exact, 3, torch.where(by_delta, 1, torch.where(by_scale, 2, 0)))
    rel = torch.where(scale > 0, gap / scale.clamp_min(torch.finfo(scale.dtype).tiny),
                      torch.where(gap > 0, torch.inf, 0.0)).max(1).values
    return code > 0, code, rel


CRITERIA = {0: "", 1: "delta", 2: "scale", 3: "exact", 4: "n/a"}


def _integrate(problem: _Problem, s: Settings, batch_size, budget, labels):
    """Run the levels: the first for every example, then refinements for those above tolerance."""
    dev, dtype, n = problem.device, problem.dtype, problem.n
    method = s.method
    if method == "integrated_gradients":
        level = _Level(s.resolved_rule, dtype, dev)
        k = s.first_steps
    else:
        level = _Level(((1.0, 0.0), (1.0, 0.0)), dtype, dev)  # the input itself (and F at the baseline)
        k = 1
    acc = _Accumulators(problem, level.n_classes(), s.store_path)
    executor = _Executor(problem, batch_size, budget, labels)
    integral = _Integral(problem, level, acc, scale_by_input=method != "gradient")
    everyone = torch.arange(n, device=dev)

    alphas, seeds, cls = level.first(k)
    if s.store_path:
        acc.open_record(alphas)
    _run_grid(executor, _Grid.cross(everyone, alphas, seeds, cls,
                                    torch.arange(alphas.shape[0], device=dev) if s.store_path else None), acc)
    steps = torch.full((n,), k, dtype=torch.long, device=dev)
    evaluations = torch.full((n,), alphas.shape[0], dtype=torch.long, device=dev)
    estimate = torch.full((n,), torch.nan, dtype=acc.f0.dtype, device=dev)
    attrs = integral.attributions(steps)
    coarse = integral.coarse_attributions(steps)
    if coarse is not None and k % 2 == 0:
        estimate = integral.difference(attrs, coarse)
    tol = s.check_tolerance
    if method == "integrated_gradients":
        met, code, rel = _check(integral, attrs, tol)
    else:  # completeness is not a property of gradients at one point
        met, code, rel = (torch.ones(n, dtype=torch.bool, device=dev), torch.full((n,), 4, device=dev),
                          torch.zeros(n, device=dev))
    history = [estimate.clone()]
    if s.adaptive:
        while True:
            todo = (~met).nonzero().flatten()
            if todo.numel() == 0 or 2 * k > s.max_steps:
                break
            redo = everyone if s.store_path else todo
            previous = {name: a.clone() for name, a in attrs.items()}
            if level.nested:
                acc.promote(redo)
            else:
                acc.reset(redo, [WEIGHTED])
            alphas, seeds, cls = level.refine(k)
            if s.store_path:
                acc.open_record(alphas)
            _run_grid(executor, _Grid.cross(redo, alphas, seeds, cls,
                                            torch.arange(alphas.shape[0], device=dev) if s.store_path else None),
                      acc)
            k *= 2
            steps[redo] = k
            evaluations[redo] += alphas.shape[0]
            attrs = integral.attributions(steps)
            est_all = integral.difference(attrs, previous)  # the change over the last doubling
            estimate[redo] = est_all[redo]
            history.append(estimate.clone())
            met, code, rel = _check(integral, attrs, tol)
    reasons = {}
    if method == "integrated_gradients":
        for i in (~met).nonzero().flatten().tolist():
            reasons[i] = _reason(i, history, steps, s)
    return acc, attrs, steps, evaluations, estimate, code, rel, reasons, level


def _reason(i: int, history: list, steps: torch.Tensor, s: Settings) -> str:
    """Why example ``i`` stayed above tolerance, from its error estimates over the levels."""
    if not s.adaptive:
        return f"fixed steps={int(steps[i])}; leave steps=None (adaptive) or give more steps"
    seen = [float(h[i]) for h in history if not math.isnan(float(h[i]))]
    where = f"at max_steps={s.max_steps}"
    if len(seen) < 2 or seen[-2] == 0:
        return f"not converged {where}"
    ratio = seen[-1] / seen[-2]
    trend = f"the error estimate went {seen[-2]:.3g} -> {seen[-1]:.3g} over the last doubling"
    if ratio <= 0.35:
        return f"converging as on a smooth path but not yet {where} ({trend}); raise max_steps"
    if ratio <= 0.75:
        return (f"converging slowly, as across the kinks of a piecewise-linear (ReLU) model, not yet {where} "
                f"({trend}); raise max_steps or the tolerance")
    return (f"not converging {where} ({trend}): a kink, a near-discontinuity or a steep step along the path "
            f"that the nodes do not resolve")


# ---------------------------------------------------------------------------------------------- API
def _resolve_batching(s: Settings):
    budget = parse_memory(s.memory_budget)
    return s.batch_size, budget


def _expand_baselines(inputs, specs, target, forward_kwargs, segments):
    """Expected gradients: each example repeated once per baseline (example-major), the baselines stacked."""
    if segments is not None:
        raise InputError("a list of baselines needs dense inputs; for ragged inputs (molecules) replicate the "
                         "graphs once per baseline (sciattr.chem does) and pass one baseline tensor")
    named, bare = normalize_inputs(inputs)
    K = len(specs)
    expanded, bases = {}, {}
    for name, x in named.items():
        per = []
        for spec in specs:
            one = spec.get(name) if isinstance(spec, Mapping) else spec
            per.append(resolve_baseline(one, x, name))
        expanded[name] = x.repeat_interleave(K, 0)
        bases[name] = torch.stack(per, 1).reshape((-1,) + tuple(x.shape[1:]))
    n = next(iter(named.values())).shape[0]
    if isinstance(target, (list, tuple)) or (isinstance(target, torch.Tensor) and target.dim() >= 1):
        t = torch.as_tensor(target)
        target = t.repeat_interleave(K, 0) if t.shape[0] == n else target
    kwargs = {key: (v.repeat_interleave(K, 0) if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == n
                    else v) for key, v in (forward_kwargs or {}).items()}
    if bare:
        return expanded[DEFAULT_INPUT_NAME], bases[DEFAULT_INPUT_NAME], target, kwargs, K
    return expanded, bases, target, kwargs, K


def _average_over_baselines(res: Attribution, K: int, n: int, inputs) -> Attribution:
    named, _ = normalize_inputs(inputs)

    def mean(t):
        return t.reshape((n, K) + tuple(t.shape[1:])).mean(1)

    def grouped(t):
        return t.reshape((n, K) + tuple(t.shape[1:]))

    conv = grouped(res.converged).all(1)
    crit = [(res.criterion or [])[i * K:(i + 1) * K] for i in range(n)]
    criterion = [c[0] if len(set(c)) == 1 else ("" if "" in c else "scale") for c in crit]
    return dataclasses.replace(
        res,
        attributions={k: mean(v) for k, v in res.attributions.items()},
        inputs=named,
        baselines={k: mean(v) for k, v in res.baselines.items()},
        forward_x=grouped(res.forward_x)[:, 0],
        forward_baseline=mean(res.forward_baseline),
        steps=grouped(res.steps).max(1).values,
        evaluations=grouped(res.evaluations).sum(1),
        converged=conv,
        criterion=criterion,
        error_estimate=grouped(res.error_estimate).max(1).values,
        meta={**res.meta, "baseline_samples": K,
              "baseline_scores": grouped(res.forward_baseline).tolist()},
    )


def attribute(
    model: Callable,
    inputs: Inputs,
    *,
    target=None,
    settings: Settings | None = None,
    forward_kwargs: Mapping | None = None,
    segments: Mapping[str, torch.Tensor] | None = None,
    example_names: Sequence | None = None,
    **options,
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
    target:
        See :mod:`sciattr.core.targets`.
    settings:
        A :class:`sciattr.Settings`: ``method``, ``steps``, ``rule``, ``tolerance``, ``max_steps``,
        ``baselines``, ``batch_size``, ``memory_budget``, ``store_path``, ``path`` -- each
        documented there, once. Keyword ``options`` of the same names build or update it.
        ``baselines`` may also be a list of K baselines: expected gradients, the average of the
        attributions over the K baselines, all in one flattened (example x baseline x node) grid,
        each (example, baseline) checked for completeness.
    forward_kwargs:
        Extra per-example tensors (leading dimension ``n``) passed to the model, repeated along
        the path (e.g. ``attention_mask``).
    segments:
        name -> ``(rows,)`` example index of each row, for ragged inputs.
    example_names:
        Labels of the examples in warnings and errors (e.g. the input rows they came from).

    Completeness and refinement
    ---------------------------
    By default steps are adaptive: every example starts with 16 intervals of the nested trapezoid
    rule and the examples above tolerance are refined by doubling, evaluating only the new nodes.
    An example meets the tolerance when ``|sum(attributions) - (F(x) - F(x'))| <= tolerance *
    scale`` with ``scale = max(|F(x) - F(x')|, sum |attributions|)``. The second term keeps the
    rule well posed when ``F(x) ~ F(x')``: the quadrature error is a sum of per-feature errors, so
    it is naturally measured against the size of the attributions a reader looks at, which does
    not vanish when the two end points happen to score alike. ``result.criterion`` says which term
    decided (``"delta"``, ``"scale"``, or ``"exact"`` for agreement to rounding). Examples still
    above tolerance are named (by ``example_names``) in a :class:`~sciattr.errors.ConvergenceWarning`
    with the reason, and ``result.converged`` is False for them.

    Returns
    -------
    Attribution
    """
    s = resolve_settings(settings, options)
    labels = None if example_names is None else list(example_names)
    if isinstance(s.baselines, (list, tuple)):
        if not s.baselines:
            raise InputError("baselines must not be an empty list; give at least one baseline")
        n_in = next(iter(normalize_inputs(inputs)[0].values())).shape[0]
        x2, b2, t2, kw2, K = _expand_baselines(inputs, list(s.baselines), target, forward_kwargs, segments)
        labels2 = None if labels is None else [f"{labels[i // K]} (baseline {i % K})" for i in range(n_in * K)]
        res = attribute(model, x2, target=t2, settings=s.replace(baselines=b2), forward_kwargs=kw2,
                        example_names=labels2)
        return _average_over_baselines(res, K, n_in, inputs)
    batch_size, budget = _resolve_batching(s)
    problem = _Problem(model, inputs, s.baselines, target, s.path, forward_kwargs, segments, s.method)
    if problem.n == 0:
        raise InputError("inputs contain no examples")
    if labels is not None and len(labels) != problem.n:
        raise InputError(f"example_names must have one label per example ({problem.n}); got {len(labels)}")
    if batch_size is None and budget is None:
        budget = default_memory_budget(problem.device)
    _warn_training(model)
    with model_as_found(model), _safe_backward(model, problem.device):
        acc, attrs, steps, evaluations, estimate, code, rel, reasons, _level = _integrate(
            problem, s, batch_size, budget, labels)
    T = acc.T
    if reasons:
        rows = sorted(reasons)
        detail = "; ".join(f"{labels[i] if labels else i}: {reasons[i]}" for i in rows[:5])
        warnings.warn(
            f"completeness gap above tolerance {s.check_tolerance:.3g} for {len(rows)} example(s) "
            f"{_names(rows, labels)} (relative gaps {[round(float(rel[i]), 4) for i in rows[:5]]}); {detail}",
            ConvergenceWarning, stacklevel=2)
    multi = problem.selector.multi or (problem.selector.multi is None and T > 1)
    if problem.selector.kind == "all":
        multi = True

    def shape_t(t):  # (T, *shape) -> shape (+ trailing T)
        return t.movedim(0, -1) if multi else t[0]

    record = None
    if s.store_path:
        alphas = torch.cat(acc.record_alphas)
        order = torch.argsort(alphas)
        scores = torch.cat(acc.record_scores, 1)
        grads = {name: torch.cat(blocks, 1) for name, blocks in acc.record_grads.items()}
        record = PathRecord(
            alphas=alphas[order],
            scores=scores[:, order] if multi else scores[:, order, 0],
            gradients={name: (g[:, order].movedim(0, -1) if multi else g[0, order]) for name, g in grads.items()},
        )
    rule = s.resolved_rule if s.method == "integrated_gradients" else "point"
    return Attribution(
        attributions={name: shape_t(a) for name, a in attrs.items()},
        inputs=problem.named,
        baselines=problem.baselines,
        forward_x=acc.f1 if multi else acc.f1[:, 0],
        forward_baseline=acc.f0 if multi else acc.f0[:, 0],
        method=s.method,
        rule=rule if isinstance(rule, str) else "custom",
        steps=steps.cpu(),
        target=problem.selector.description,
        multi_target=multi,
        segments=problem.segments,
        path=record,
        evaluations=evaluations.cpu(),
        converged=(code > 0).cpu(),
        criterion=[CRITERIA[int(c)] for c in code.tolist()],
        error_estimate=estimate.cpu(),
        tolerance=s.check_tolerance,
        meta={"settings": s.describe(), "unconverged": {str(labels[i] if labels else i): reasons[i]
                                                        for i in sorted(reasons)}},
    )


def integrated_gradients(model, inputs, **options) -> Attribution:
    """Integrated gradients (Sundararajan, Taly & Yan 2017) of ``model`` at ``inputs``.

    ``attr_i = (x_i - x'_i) * integral_0^1 dF(x' + a (x - x'))/dx_i da`` -- or along any path.
    Keyword options are those of :func:`attribute` and :class:`sciattr.Settings`.

    Example
    -------
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Softplus(), torch.nn.Linear(2, 1))
    >>> res = integrated_gradients(model, torch.randn(4, 3), steps=32)
    >>> bool(res.relative_gap.max() < 1e-3)
    True
    """
    if "method" in options:
        raise InputError("integrated_gradients takes no 'method'; call sciattr.attribute(method=...)")
    return attribute(model, inputs, method="integrated_gradients", **options)


def gradient(model, inputs, **options) -> Attribution:
    """Plain gradients dF/dx at the input (saliency), as an :class:`Attribution`."""
    return attribute(model, inputs, method="gradient", **options)


def gradient_x_input(model, inputs, **options) -> Attribution:
    """Gradient x (input - baseline) at the input, as an :class:`Attribution`."""
    return attribute(model, inputs, method="gradient_x_input", **options)
