"""Evaluating a model on many modified copies of every example, in few forward passes.

Ablation curves, comprehensiveness/sufficiency and layer saturation all ask the same thing:
the model's score (or a layer's activation) on ``C`` modified copies of each of ``n`` examples.
:class:`CopyEvaluator` flattens the ``(example x copy)`` grid into replicas, cuts it into chunks
bounded by ``batch_size`` replicas or by a number of input elements, and calls the model once per
chunk without autograd. Dense and ragged inputs are handled like the engine does: a ragged model
is called as ``model(**inputs, replicas=Replicas)`` (see :mod:`sciattr.core.batching`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import torch

from sciattr.core.baselines import resolve_baseline
from sciattr.core.batching import Replicas, RowIndex, plan_chunks
from sciattr.core.engine import normalize_inputs
from sciattr.core.targets import resolve_target
from sciattr.errors import InputError, ModelOutputError, describe

__all__ = ["DEFAULT_ELEMENT_BUDGET", "CopyEvaluator", "MakeRows", "check_segments"]

#: Default bound on the number of input elements per forward pass (about 128 MB of float64).
DEFAULT_ELEMENT_BUDGET = 2**24

#: ``make_rows(name, rows, example, copy) -> tensor``: the values of the gathered ``rows`` of input
#: ``name`` in the given copies; ``rows``, ``example`` and ``copy`` are ``(r,)`` long tensors (one
#: entry per gathered row) and the result has shape ``(r, *row_shape)``.
MakeRows = Callable[[str, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def check_segments(named: dict[str, torch.Tensor], segments: Mapping | None) -> tuple[int, dict | None]:
    """Validate ragged ``segments`` (or dense inputs) and return ``(n_examples, segments)``."""
    if segments is None:
        sizes = {name: x.shape[0] for name, x in named.items()}
        if len(set(sizes.values())) != 1:
            raise InputError(
                f"expected all inputs to have the same number of examples; got {sizes} "
                f"(pass segments= for ragged inputs)"
            )
        return next(iter(sizes.values())), None
    if not isinstance(segments, Mapping) or set(segments) != set(named):
        raise InputError(
            f"expected segments for exactly the inputs {sorted(named)}; got {describe(segments)}"
        )
    out, n = {}, 0
    for name, seg in segments.items():
        rows = named[name].shape[0]
        if (
            not isinstance(seg, torch.Tensor)
            or seg.dim() != 1
            or seg.shape[0] != rows
            or seg.dtype not in (torch.int32, torch.int64)
        ):
            raise InputError(
                f"expected segments[{name!r}] as a ({rows},) integer tensor; got {describe(seg)}"
            )
        if rows and int(seg.min()) < 0:
            raise InputError(f"expected non-negative example indices in segments[{name!r}]")
        out[name] = seg.to(named[name].device).long()
        n = max(n, int(seg.max()) + 1 if rows else 0)
    return n, out


class CopyEvaluator:
    """Scores of a model on modified copies of every example.

    Parameters
    ----------
    model:
        Called as the engine calls it: ``model(x)`` for a bare tensor, ``model(**inputs)`` for
        named inputs, ``model(**inputs, replicas=...)`` for ragged inputs.
    inputs:
        A tensor ``(n, ...)`` or a mapping name -> tensor (rows of ragged inputs grouped by
        ``segments``).
    target:
        One score per example (see :mod:`sciattr.core.targets`); several targets are refused.
    segments:
        name -> ``(rows,)`` example index, for ragged inputs.
    forward_kwargs:
        Extra per-example tensors (leading dimension ``n``) repeated for every copy; for ragged
        inputs passed unchanged.
    """

    def __init__(
        self,
        model: Callable,
        inputs,
        *,
        target=None,
        segments: Mapping | None = None,
        forward_kwargs: Mapping | None = None,
    ):
        self.model = model
        self.named, self.bare = normalize_inputs(inputs)
        if segments is not None and self.bare:
            raise InputError(
                "expected named inputs (a mapping name -> tensor) with segments; got a bare tensor"
            )
        self.n, self.segments = check_segments(self.named, segments)
        if self.n == 0:
            raise InputError("expected at least one example; got none")
        first = next(iter(self.named.values()))
        self.device, self.dtype = first.device, first.dtype
        self.index = {
            name: RowIndex(
                None if self.segments is None else self.segments[name], self.n, x.shape[0], self.device
            )
            for name, x in self.named.items()
        }
        self.selector = resolve_target(target, self.n)
        if self.selector.multi:
            raise InputError(f"expected one target per example for this diagnostic; got {describe(target)}")
        self.forward_kwargs = dict(forward_kwargs or {})
        cost = torch.zeros(self.n, dtype=torch.float64, device=self.device)
        for name, x in self.named.items():
            cost += self.index[name].counts.double() * (x[0].numel() if x.shape[0] else 0)
        self.cost = cost.cpu()

    # ------------------------------------------------------------------ rows of every example
    def example_of_rows(self, name: str) -> torch.Tensor:
        """``(rows,)`` example index of every row of input ``name``."""
        if self.segments is None:
            return torch.arange(self.named[name].shape[0], device=self.device)
        return self.segments[name]

    def _kwargs(self, example: torch.Tensor) -> dict:
        if self.segments is not None:
            return dict(self.forward_kwargs)
        out = {}
        for key, value in self.forward_kwargs.items():
            if isinstance(value, torch.Tensor):
                if value.dim() == 0 or value.shape[0] != self.n:
                    raise InputError(
                        f"expected forward_kwargs[{key!r}] with one row per example ({self.n}); "
                        f"got {describe(value)}"
                    )
                value = value[example.to(value.device)]
            out[key] = value
        return out

    def _call(self, leaves: dict[str, torch.Tensor], reps: Replicas):
        kwargs = self._kwargs(reps.example)
        if self.bare:
            return self.model(next(iter(leaves.values())), **kwargs)
        if self.segments is not None:
            return self.model(**leaves, replicas=reps, **kwargs)
        return self.model(**leaves, **kwargs)

    def baselines(self, spec=None) -> dict[str, torch.Tensor]:
        """name -> baseline tensor of the input's shape, from a spec as the engine takes it
        (``None``/name/number/tensor/callable, or a mapping name -> spec)."""
        if isinstance(spec, Mapping):
            unknown = set(spec) - set(self.named)
            if unknown:
                raise InputError(
                    f"expected baselines only for the inputs {sorted(self.named)}; got {sorted(unknown)}"
                )
            specs = {name: spec.get(name) for name in self.named}
        elif isinstance(spec, torch.Tensor) and not self.bare:
            raise InputError("expected a mapping name -> baseline for named inputs; got one tensor")
        else:
            specs = {name: spec for name in self.named}
        return {name: resolve_baseline(specs[name], x, name) for name, x in self.named.items()}

    # ------------------------------------------------------------------ evaluation
    def forwards(
        self,
        n_copies: int,
        make_rows: MakeRows,
        *,
        alphas: torch.Tensor | None = None,
        batch_size: int | None = None,
    ) -> Iterator[tuple[Replicas, torch.Tensor, object]]:
        """Run the model on all ``n x n_copies`` replicas, chunk by chunk.

        Yields ``(replicas, copy, output)`` per forward pass: the chunk's replicas (example and
        ``alpha`` per replica, gathered rows), the ``(R,)`` copy index of each replica and the raw
        model output. ``alphas`` (``(n_copies,)``) sets ``replicas.alpha``; default 1.
        """
        if isinstance(n_copies, bool) or not isinstance(n_copies, int) or n_copies < 1:
            raise InputError(f"expected a positive number of copies; got {describe(n_copies)}")
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise InputError(f"expected batch_size as a positive integer; got {describe(batch_size)}")
        examples = torch.arange(self.n, device=self.device).repeat_interleave(n_copies)
        copies = torch.arange(n_copies, device=self.device).repeat(self.n)
        budget = None if batch_size is not None else DEFAULT_ELEMENT_BUDGET
        for start, stop in plan_chunks(self.cost[examples.cpu()], batch_size, budget):
            ex, cp = examples[start:stop], copies[start:stop]
            alpha = (
                torch.ones(ex.shape[0], dtype=self.dtype, device=self.device)
                if alphas is None
                else alphas[cp]
            )
            reps = Replicas(example=ex, alpha=alpha)
            leaves = {}
            for name in self.named:
                rows, rep, first = self.index[name].gather(ex)
                reps.rows[name], reps.row_replica[name], reps.first[name] = rows, rep, first
                reps.index[name] = self.index[name]
                leaves[name] = make_rows(name, rows, ex[rep], cp[rep])
            with torch.no_grad():
                output = self._call(leaves, reps)
            yield reps, cp, output

    def select(self, output, reps: Replicas) -> torch.Tensor:
        """``(R,)`` scores of one chunk's output."""
        scores = self.selector(output, reps.example)
        if scores.shape[1] != 1:
            raise ModelOutputError(f"expected one score per example; the target gave {scores.shape[1]}")
        if not torch.isfinite(scores).all():
            bad = reps.example[~torch.isfinite(scores[:, 0])].unique().tolist()
            raise ModelOutputError(
                f"expected finite model scores; got non-finite ones for examples {bad[:10]}"
            )
        return scores[:, 0]

    def scores(self, n_copies: int, make_rows: MakeRows, *, batch_size: int | None = None) -> torch.Tensor:
        """``(n, n_copies)`` scores of every copy of every example."""
        out: torch.Tensor | None = None
        for reps, copy, output in self.forwards(n_copies, make_rows, batch_size=batch_size):
            s = self.select(output, reps)
            if out is None:
                out = torch.empty(self.n, n_copies, dtype=s.dtype, device=self.device)
            out[reps.example, copy] = s
        if out is None:
            raise InputError("expected at least one copy to score; got none")
        return out
