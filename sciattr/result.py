"""The one result object returned by every attribution call."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sciattr.errors import InputError

__all__ = ["Attribution", "PathRecord"]


@dataclass
class PathRecord:
    """What happened along the path, recorded when ``store_path=True``.

    Attributes
    ----------
    alphas:
        ``(K,)`` path positions, ascending, including the end points 0 and 1.
    scores:
        ``(n_examples, K)`` -- or ``(n_examples, K, T)`` for several targets -- the score
        ``F(gamma(alpha))`` at each position (the saturation curve for the straight line).
    gradients:
        name -> ``(K, *input_shape)`` (``(K, *input_shape, T)`` for several targets): the
        interior gradients ``dF/dgamma`` at each position.
    """

    alphas: torch.Tensor
    scores: torch.Tensor
    gradients: dict[str, torch.Tensor]

    def to(self, device) -> PathRecord:
        return PathRecord(self.alphas.to(device), self.scores.to(device),
                          {k: v.to(device) for k, v in self.gradients.items()})


@dataclass
class Attribution:
    """Attributions of a model's scores to named inputs, with everything needed to check them.

    Shapes: ``n`` examples; for a single target ``attributions[name]`` has the input's shape,
    ``forward_x``/``forward_baseline``/``completeness_gap`` have shape ``(n,)``; with ``T``
    targets a trailing ``T`` dimension is added to each. Ragged inputs (atoms of many
    molecules) carry ``segments[name]``: the example index of each row.
    """

    attributions: dict[str, torch.Tensor]
    inputs: dict[str, torch.Tensor]
    baselines: dict[str, torch.Tensor]
    forward_x: torch.Tensor
    forward_baseline: torch.Tensor
    method: str
    rule: str
    steps: torch.Tensor  # (n,) steps used per example
    target: str
    multi_target: bool = False
    segments: dict[str, torch.Tensor] | None = None
    path: PathRecord | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ basic views
    @property
    def names(self) -> list[str]:
        return list(self.attributions)

    @property
    def n_examples(self) -> int:
        return int(self.forward_x.shape[0])

    def per_example(self, name: str | None = None) -> torch.Tensor:
        """Sum of attributions of each example: over all inputs, or over input ``name``.

        Returns ``(n,)`` or ``(n, T)``.
        """
        names = self.names if name is None else [name]
        total = torch.zeros_like(self.forward_x)
        for nm in names:
            if nm not in self.attributions:
                raise InputError(f"no input named {nm!r}; inputs are {self.names}")
            a = self.attributions[nm]
            if self.multi_target:
                rows = a.reshape(a.shape[0], -1, a.shape[-1]).sum(1)
            else:
                rows = a.reshape(a.shape[0], -1).sum(1)
            if self.segments is not None and nm in self.segments:
                total = total.index_add(0, self.segments[nm].to(a.device), rows.to(total.dtype))
            else:
                total = total + rows.to(total.dtype)
        return total

    @property
    def delta(self) -> torch.Tensor:
        """``F(x) - F(x')`` per example (and target)."""
        return self.forward_x - self.forward_baseline

    @property
    def completeness_gap(self) -> torch.Tensor:
        """``sum(attributions) - (F(x) - F(x'))`` per example (and target)."""
        return self.per_example() - self.delta

    @property
    def relative_gap(self) -> torch.Tensor:
        """``|completeness_gap| / |F(x) - F(x')|`` (0 where both are 0)."""
        denom = self.delta.abs()
        gap = self.completeness_gap.abs()
        tiny = torch.finfo(denom.dtype).tiny if denom.is_floating_point() else 0
        return torch.where(denom > tiny, gap / denom.clamp_min(tiny), torch.where(gap > tiny, torch.inf, 0.0))

    def example_rows(self, name: str, example: int) -> torch.Tensor:
        """Attributions of input ``name`` belonging to one example."""
        if not 0 <= example < self.n_examples:
            raise InputError(f"example must lie in [0, {self.n_examples - 1}]; got {example}")
        a = self.attributions[name]
        if self.segments is not None and name in self.segments:
            return a[self.segments[name].to(a.device) == example]
        return a[example]

    def specialize(self, cls, **extra) -> Attribution:
        """The same result as an instance of a domain subclass ``cls`` with extra fields."""
        if not (isinstance(cls, type) and issubclass(cls, Attribution)):
            raise InputError(f"cls must be a subclass of Attribution; got {cls!r}")
        base = {f.name: getattr(self, f.name) for f in dataclasses.fields(Attribution)}
        return cls(**base, **extra)

    # ------------------------------------------------------------------ presentation
    def summary(self, max_rows: int = 20) -> str:
        """A plain-text table: F(x), F(x'), sum of attributions and the completeness gap."""
        fx, fb, tot, gap = self.forward_x, self.forward_baseline, self.per_example(), self.completeness_gap
        if self.multi_target:
            fx, fb, tot, gap = (t[:, 0] for t in (fx, fb, tot, gap))
        lines = [f"{self.method} ({self.rule}, steps={int(self.steps.max())}, target={self.target})",
                 f"{'example':>7} {'F(x)':>12} {'F(baseline)':>12} {'sum attr':>12} {'gap':>10} {'rel gap':>8}"]
        rel = self.relative_gap if not self.multi_target else self.relative_gap[:, 0]
        for i in range(min(self.n_examples, max_rows)):
            lines.append(f"{i:>7} {fx[i].item():>12.6g} {fb[i].item():>12.6g} {tot[i].item():>12.6g} "
                         f"{gap[i].item():>10.2e} {rel[i].item():>8.2%}")
        if self.n_examples > max_rows:
            lines.append(f"... {self.n_examples - max_rows} more")
        return "\n".join(lines)

    def __repr__(self) -> str:
        shapes = {k: tuple(v.shape) for k, v in self.attributions.items()}
        return (f"{type(self).__name__}(method={self.method!r}, rule={self.rule!r}, n={self.n_examples}, "
                f"inputs={shapes}, max_rel_gap={float(self.relative_gap.max()) if self.n_examples else 0:.3g})")

    # ------------------------------------------------------------------ movement and storage
    def to(self, device) -> Attribution:
        def mv(d):
            return None if d is None else {k: v.to(device) for k, v in d.items()}

        return dataclasses.replace(
            self, attributions=mv(self.attributions), inputs=mv(self.inputs), baselines=mv(self.baselines),
            forward_x=self.forward_x.to(device), forward_baseline=self.forward_baseline.to(device),
            steps=self.steps.to(device), segments=mv(self.segments),
            path=None if self.path is None else self.path.to(device),
        )

    def _state(self) -> dict:
        """Field name -> value of every field, as :mod:`sciattr.storage` saves them."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    def save(self, path) -> Path:
        """Save to one safetensors file (tensors) with JSON metadata (everything else); no pickle.

        Read it back with :func:`sciattr.load` (or ``type(result).load``); see
        :mod:`sciattr.storage` for the layout. Returns the path.
        """
        from sciattr import storage

        return storage.save(self, path)

    @classmethod
    def load(cls, path) -> Attribution:
        """Read a result saved by :meth:`save`, as the class it was saved as.

        Raises :class:`sciattr.storage.ResultFileError` (an :class:`~sciattr.errors.InputError`)
        when the file is not a sciattr result, or holds a class that is not ``cls`` or a subclass.
        """
        from sciattr import storage

        return storage.load(path, cls=cls)
