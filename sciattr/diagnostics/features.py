"""Features of an example: single input elements, or groups of elements (atoms, words, tokens).

Faithfulness and localization rank and remove *features*. By default every element of every named
input is its own feature. A ``groups`` tensor per input gives the feature id of each element
instead (ids are local to each example; ``-1`` marks elements that are never ranked or removed,
such as padding or a kept first token). ``groups[name]`` has the input's shape or a prefix of it
(``(n, L)`` for token embeddings ``(n, L, D)``: one id per token); inputs that share ids share
features (atoms and the atom pairs assigned to them). A feature's attribution is the sum of its
elements' attributions; removing it replaces all its elements by the baseline.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from sciattr.core.batching import RowIndex
from sciattr.core.engine import DEFAULT_INPUT_NAME
from sciattr.errors import InputError, describe
from sciattr.result import Attribution

__all__ = ["ORDERS", "FeatureMap", "attribution_maps", "named_values"]

#: How features are ranked for removal: by signed attribution (largest first), by the negated
#: attribution (most negative first) or by magnitude.
ORDERS = ("descending", "ascending", "absolute")

AttributionLike = Attribution | torch.Tensor | Mapping[str, torch.Tensor]


def named_values(value, like: Mapping[str, torch.Tensor] | None, what: str) -> dict[str, torch.Tensor]:
    """``value`` as a mapping name -> tensor.

    An :class:`~sciattr.Attribution` gives its attributions (one target only); a bare tensor
    belongs to the only input of ``like`` (or to ``"input"`` when ``like`` is ``None``).
    """
    if isinstance(value, Attribution):
        if value.multi_target:
            raise InputError(f"expected {what} of one target per example; got a multi-target result")
        out = dict(value.attributions)
    elif isinstance(value, torch.Tensor):
        if like is not None and len(like) != 1:
            raise InputError(
                f"expected {what} as a mapping name -> tensor for the inputs {list(like)}; got one tensor"
            )
        out = {DEFAULT_INPUT_NAME if like is None else next(iter(like)): value}
    elif isinstance(value, Mapping):
        out = dict(value)
    else:
        raise InputError(
            f"expected {what} as an Attribution, a tensor or a mapping name -> tensor; got {describe(value)}"
        )
    if not out:
        raise InputError(f"expected {what} for at least one input; got none")
    if like is not None and set(out) != set(like):
        raise InputError(f"expected {what} for the inputs {sorted(like)}; got {sorted(out)}")
    return out


def attribution_maps(
    attributions: AttributionLike, named: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Attribution tensors per input name, checked against the inputs' shapes.

    ``attributions`` is an :class:`~sciattr.Attribution` (single target), a tensor (for a single
    input) or a mapping name -> tensor.
    """
    maps = named_values(attributions, named, "attributions")
    out = {}
    for name, x in named.items():
        a = maps[name]
        if not isinstance(a, torch.Tensor) or a.shape != x.shape:
            raise InputError(f"expected attributions[{name!r}] of shape {tuple(x.shape)}; got {describe(a)}")
        if not torch.isfinite(a).all():
            raise InputError(f"expected finite attributions for {name!r}")
        out[name] = a.detach().to(device=x.device)
    return out


def _broadcast_ids(ids, x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(ids, torch.Tensor) or ids.is_floating_point() or ids.dtype == torch.bool:
        raise InputError(f"expected groups[{name!r}] as an integer tensor; got {describe(ids)}")
    k = ids.dim()
    if k == 0 or tuple(ids.shape) != tuple(x.shape[:k]):
        raise InputError(
            f"expected groups[{name!r}] of the input's shape {tuple(x.shape)} or a prefix of it; "
            f"got shape {tuple(ids.shape)}"
        )
    if ids.numel() and int(ids.min()) < -1:
        raise InputError(f"expected group ids >= 0 (or -1 for elements that are not features) in {name!r}")
    ids = ids.to(x.device).long()
    return ids.reshape(tuple(ids.shape) + (1,) * (x.dim() - k)).expand(x.shape)


class FeatureMap:
    """Which feature every input element belongs to, per example.

    Parameters
    ----------
    named:
        name -> input tensor (dense ``(n, ...)`` or ragged ``(rows, ...)``).
    example_of_rows:
        name -> ``(rows,)`` example index of each row.
    n_examples:
        Number of examples ``n``.
    groups:
        Optional name -> integer feature ids (see the module docstring).

    Attributes
    ----------
    element_feature:
        name -> long tensor of the input's shape: the feature id of each element (``-1``: none).
    size:
        ``G``, the number of feature slots per example (the largest id + 1).
    valid:
        ``(n, G)`` booleans: slots that hold at least one element of the example.
    counts:
        ``(n,)`` number of features of each example.
    """

    def __init__(
        self,
        named: dict[str, torch.Tensor],
        example_of_rows: dict[str, torch.Tensor],
        n_examples: int,
        groups: Mapping[str, torch.Tensor] | None = None,
    ):
        groups = dict(groups or {})
        unknown = set(groups) - set(named)
        if unknown:
            raise InputError(f"expected groups only for the inputs {sorted(named)}; got {sorted(unknown)}")
        self.n = n_examples
        self.device = next(iter(named.values())).device
        self.example_of_rows = example_of_rows
        ids = {name: _broadcast_ids(groups[name], named[name], name) for name in named if name in groups}
        offset = max((int(t.max()) + 1 for t in ids.values() if t.numel()), default=0)
        for name, x in named.items():
            if name in ids:
                continue
            per_row = x[0].numel() if x.shape[0] else 1
            seg = example_of_rows[name]
            rank = RowIndex(seg, n_examples, x.shape[0], x.device).rank
            within = torch.arange(per_row, device=x.device).reshape((1,) + tuple(x.shape[1:]))
            ids[name] = offset + rank.reshape((-1,) + (1,) * (x.dim() - 1)) * per_row + within
            rows_per_example = int(torch.bincount(seg, minlength=n_examples).max()) if seg.numel() else 0
            offset += rows_per_example * per_row
        self.element_feature = {name: ids[name] for name in named}
        self.size = max(1, max((int(t.max()) + 1 for t in ids.values() if t.numel()), default=1))
        occupancy = self.aggregate({name: torch.ones_like(t, dtype=torch.float64) for name, t in ids.items()})
        self.valid = occupancy > 0
        self.counts = self.valid.sum(1)

    def _slots(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat slot ``example * G + feature`` of every element, and the mask of elements with a feature."""
        ids = self.element_feature[name]
        example = self.example_of_rows[name].reshape((-1,) + (1,) * (ids.dim() - 1))
        has = ids >= 0
        return (example * self.size + ids.clamp_min(0)).reshape(-1), has.reshape(-1)

    def aggregate(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(n, G)`` float64 sums of element values per feature (0 in empty slots)."""
        total = torch.zeros(self.n * self.size, dtype=torch.float64, device=self.device)
        for name, v in values.items():
            slots, has = self._slots(name)
            total.index_add_(0, slots[has], v.reshape(-1)[has].to(torch.float64))
        return total.reshape(self.n, self.size)

    def any(self, mask: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(n, G)`` booleans: features with at least one ``True`` element."""
        return self.aggregate({name: m.to(torch.float64) for name, m in mask.items()}) > 0

    def ranks(self, keys: torch.Tensor) -> torch.Tensor:
        """``(n, G)`` position of each feature when sorted by ``keys`` (largest first).

        Empty slots come after all features; ties keep the order of the feature ids.
        """
        keys = torch.where(
            self.valid, keys.to(torch.float64), torch.full_like(keys, -torch.inf, dtype=torch.float64)
        )
        order = torch.argsort(keys, dim=1, descending=True, stable=True)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(self.size, device=order.device).expand_as(order))
        return rank

    def element_ranks(self, rank: torch.Tensor) -> dict[str, torch.Tensor]:
        """name -> rank of each element's feature (input shape; ``G`` for elements with none)."""
        out = {}
        for name, ids in self.element_feature.items():
            slots, has = self._slots(name)
            r = torch.where(has, rank.reshape(-1)[slots], torch.full_like(slots, self.size))
            out[name] = r.reshape(ids.shape)
        return out

    def keys(self, attributions: dict[str, torch.Tensor], order: str) -> torch.Tensor:
        """``(n, G)`` ranking keys of the features (larger is removed first)."""
        if order not in ORDERS:
            raise InputError(f"expected order in {ORDERS}; got {order!r}")
        scores = self.aggregate(attributions)
        return {"descending": scores, "ascending": -scores, "absolute": scores.abs()}[order]

    def random_keys(self, seed: int, device) -> torch.Tensor:
        """``(n, G)`` seeded uniform keys: a random ranking of each example's features."""
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        return torch.rand(self.n, self.size, generator=gen, dtype=torch.float64).to(device)
