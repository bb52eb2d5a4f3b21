"""Flattening the (example x path-node) grid into chunks, and gathering ragged rows.

Every named input is a table of rows. Dense inputs have one row per example (the row is the
whole example); ragged inputs (atoms of many molecules) have any number of rows per example,
given by a ``segments`` vector. A *replica* is one example at one path node; a chunk is a set
of replicas evaluated in one forward and backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from sciattr.errors import InputError, describe

__all__ = ["Replicas", "RowIndex", "measure_saved_bytes", "parse_memory", "plan_chunks"]


class RowIndex:
    """CSR index of the rows of one table, grouped by example.

    ``segments`` is the ``(n_rows,)`` example index of each row (any order); ``None`` means one
    row per example.
    """

    def __init__(self, segments: torch.Tensor | None, n_examples: int, n_rows: int, device=None):
        device = device if segments is None else segments.device
        if segments is None:
            self.order = torch.arange(n_rows, device=device)
            self.counts = torch.ones(n_examples, dtype=torch.long, device=device)
        else:
            self.order = torch.argsort(segments, stable=True)
            self.counts = torch.bincount(segments, minlength=n_examples)
        self.starts = torch.cumsum(self.counts, 0) - self.counts
        self.segments = segments
        self._rank: torch.Tensor | None = None

    @property
    def rank(self) -> torch.Tensor:
        """``(n_rows,)`` position of each row among the rows of its example."""
        if self._rank is None:
            pos = torch.empty_like(self.order)
            pos[self.order] = torch.arange(self.order.shape[0], device=self.order.device)
            seg = self.segments if self.segments is not None else torch.arange(self.order.shape[0],
                                                                               device=self.order.device)
            self._rank = pos - self.starts[seg]
        return self._rank

    def gather(self, example_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows of the given replicas, in replica order.

        Returns ``(rows, replica, first)``: original row index of every gathered row, the replica
        (position in ``example_ids``) it belongs to, and the ``(R,)`` position of each replica's
        first gathered row.
        """
        # index_select rather than advanced indexing: these gathers run once per chunk on
        # row-sized index vectors, where it is several times faster on a CPU
        counts = self.counts.index_select(0, example_ids)
        total = int(counts.sum())
        replica = torch.repeat_interleave(torch.arange(len(example_ids), device=counts.device), counts,
                                          output_size=total)
        first = torch.cumsum(counts, 0) - counts
        within = torch.arange(total, device=counts.device) - first.index_select(0, replica)
        starts = self.starts.index_select(0, example_ids).index_select(0, replica)
        rows = self.order.index_select(0, starts + within)
        return rows, replica, first


@dataclass
class Replicas:
    """Describes the replicas of one chunk; ragged forwards receive it as ``replicas=``.

    Attributes
    ----------
    example:
        ``(R,)`` example index of each replica.
    alpha:
        ``(R,)`` path position of each replica.
    rows:
        name -> original row index of every gathered row of that input.
    row_replica:
        name -> replica index (0..R-1) of every gathered row.
    """

    example: torch.Tensor
    alpha: torch.Tensor
    rows: dict[str, torch.Tensor] = field(default_factory=dict)
    row_replica: dict[str, torch.Tensor] = field(default_factory=dict)
    first: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    index: dict[str, RowIndex] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> int:
        return int(self.example.shape[0])

    def replicate(self, table: RowIndex) -> tuple[torch.Tensor, torch.Tensor]:
        """Gather a structure table (bonds, pairs, edges) for every replica.

        Returns ``(columns, replica)``: original column indices and the replica of each.
        """
        cols, rep, _ = table.gather(self.example)
        return cols, rep

    def remap(self, name: str, pointers: torch.Tensor, replica: torch.Tensor) -> torch.Tensor:
        """Translate original row numbers of input ``name`` (e.g. the atoms an edge joins) into
        positions among this chunk's gathered rows, for the given replica of each pointer."""
        rank = self.index[name].rank
        flat = rank.index_select(0, pointers.reshape(-1)).reshape(pointers.shape)
        return self.first[name].index_select(0, replica) + flat


def storage_key(t: torch.Tensor):
    """Identity of a tensor's storage (views of one tensor share it)."""
    try:
        return (t.untyped_storage().data_ptr(), t.device)
    except (RuntimeError, NotImplementedError):
        return id(t)


def parameter_storages(model) -> frozenset:
    """Storages of the parameters and buffers reachable from ``model``: the model itself if it is an
    ``nn.Module``, else modules held in its attributes (one level, as adapters wrap models)."""
    modules = [model] if isinstance(model, torch.nn.Module) else [
        v for v in getattr(model, "__dict__", {}).values() if isinstance(v, torch.nn.Module)]
    keys = set()
    for module in modules:
        for t in list(module.parameters()) + list(module.buffers()):
            keys.add(storage_key(t))
    return frozenset(keys)


def parse_memory(budget) -> int | None:
    """Bytes from an int or a string such as ``"512MB"`` or ``"2GiB"``."""
    if budget is None:
        return None
    if isinstance(budget, bool):
        raise InputError(f"memory_budget must be bytes or a string like '2GiB'; got {budget!r}")
    value: int | None
    if isinstance(budget, (int, float)):
        value = int(budget)
    elif isinstance(budget, str):
        text = budget.strip().upper().replace(" ", "")
        units = {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "KB": 10**3, "MB": 10**6, "GB": 10**9, "B": 1}
        for unit, mult in units.items():
            if text.endswith(unit):
                try:
                    value = int(float(text[: -len(unit)]) * mult)
                except ValueError:
                    break
                break
        else:
            try:
                value = int(float(text))
            except ValueError:
                value = None  # refused below
        if value is None:
            raise InputError(f"memory_budget must be bytes or a string like '2GiB'; got {budget!r}")
    else:
        raise InputError(f"memory_budget must be bytes or a string like '2GiB'; got {describe(budget)}")
    if value is None or value <= 0:
        raise InputError(f"memory_budget must be positive; got {budget!r}")
    return value


def plan_chunks(cost: torch.Tensor, max_replicas: int | None, max_cost: float | None) -> list[tuple[int, int]]:
    """Cut a sequence of replicas with per-replica ``cost`` into consecutive ``(start, stop)`` chunks.

    A chunk holds at most ``max_replicas`` replicas and at most ``max_cost`` total cost (a single
    replica that alone exceeds ``max_cost`` still gets its own chunk).
    """
    n = int(cost.shape[0])
    if n == 0:
        return []
    if max_cost is None:
        step = n if max_replicas is None else max_replicas
        return [(s, min(s + step, n)) for s in range(0, n, step)]
    csum = torch.cumsum(cost.double().cpu(), 0)
    chunks = []
    start = 0
    base = 0.0
    while start < n:
        stop = int(torch.searchsorted(csum, base + max_cost, right=True))
        stop = max(stop, start + 1)
        if max_replicas is not None:
            stop = min(stop, start + max_replicas)
        stop = min(stop, n)
        chunks.append((start, stop))
        base = float(csum[stop - 1])
        start = stop
    return chunks


class measure_saved_bytes:
    """Context manager counting the bytes autograd saves for backward inside it.

    Tensors whose storage is in ``exclude`` (e.g. the model's weights, which do not grow with the
    chunk) are not counted.
    """

    def __init__(self, exclude: frozenset = frozenset()):
        self.bytes = 0
        self._seen: set = set(exclude)
        self._ctx = None

    def _pack(self, t):
        if isinstance(t, torch.Tensor):
            key = storage_key(t)
            if key not in self._seen:
                self._seen.add(key)
                self.bytes += t.numel() * t.element_size()
        return t

    def __enter__(self):
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)
