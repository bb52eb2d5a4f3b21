"""Weave models (Kearnes et al. 2016) in PyTorch, batched over many molecules.

Public API
----------
``WeaveLayer(n_atom_in, n_pair_in, n_atom_out=50, n_pair_out=50, n_hidden=50, update_pairs=True)``
    One weave module: atom->atom, pair->atom, atom->pair and pair->pair, combined into new atom
    and pair features.
``WeaveModel(n_atom_features, n_pair_features, n_tasks, n_weave=2, ...)``
    Weave modules -> per-atom layer -> molecule-level reduction (``"sum"`` or Kearnes'
    ``"histogram"`` of Gaussian memberships) -> dense layer -> ``n_tasks`` outputs (logits).
``W1N2(n_atom_features, n_pair_features, n_tasks, **options)``, ``W2N2(...)``
    The presets: one or two weave modules, meant for pairs within graph distance 2 (the
    featurizers' default ``max_distance=2``; "N2" in Kearnes et al.'s names).

Calling convention (shared with :class:`sciattr.chem.featurize.GraphBatch`)::

    out = model(atoms, pairs, pair_index, atom_batch, n_molecules)   # (n_molecules, n_tasks)

``atoms (N, F_atom)``, ``pairs (P, F_pair)`` one row per unordered pair, ``pair_index (2, P)``
rows of ``atoms``, ``atom_batch (N,)`` molecule of each atom. All parameters are plain
tensors, so ``state_dict()`` saves to safetensors.

Why W1N2 has dead features: with one module, the atom state after the module is
``A1[a] = f(A0[a], sum_b g(P0[a, b]))``; pair states are not used afterwards. An atom's
contribution, and so its attribution, depends only on its own features and the multiset of its
pair features (bond types, distances), never on its neighbours' types -- the anecdote of
Sundararajan et al. ("Gradients of Counterfactuals", section on W1N2). A second module feeds
``A1[b]`` into the pairs (atom->pair) and back into ``A2[a]``, which lets neighbours' types in.
"""

from __future__ import annotations

import torch
from torch import nn

from sciattr.errors import InputError, describe

__all__ = ["W1N2", "W2N2", "GaussianHistogram", "WeaveLayer", "WeaveModel"]


def _sum_over_pairs(values: torch.Tensor, pair_index: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """Sum ``(P, H)`` pair values into both atoms of each pair -> ``(n_atoms, H)``."""
    out = values.new_zeros((n_atoms, values.shape[1]))
    out.index_add_(0, pair_index[0], values)
    out.index_add_(0, pair_index[1], values)
    return out


class WeaveLayer(nn.Module):
    """One weave module.

    ``A' = relu(W_a [relu(W_aa A), sum_pairs relu(W_pa P)])`` and, when ``update_pairs``,
    ``P'[i, j] = relu(W_p [relu(W_ap [A_i, A_j]) + relu(W_ap [A_j, A_i]), relu(W_pp P)])``
    (order-invariant in ``i, j``). The last module of a model need not update pairs.
    """

    def __init__(self, n_atom_in: int, n_pair_in: int, n_atom_out: int = 50, n_pair_out: int = 50,
                 n_hidden: int = 50, update_pairs: bool = True, bias: bool = True):
        super().__init__()
        self.atom_to_atom = nn.Linear(n_atom_in, n_hidden, bias=bias)
        self.pair_to_atom = nn.Linear(n_pair_in, n_hidden, bias=bias)
        self.atom_out = nn.Linear(2 * n_hidden, n_atom_out, bias=bias)
        self.update_pairs = update_pairs
        if update_pairs:
            self.atom_to_pair = nn.Linear(2 * n_atom_in, n_hidden, bias=bias)
            self.pair_to_pair = nn.Linear(n_pair_in, n_hidden, bias=bias)
            self.pair_out = nn.Linear(2 * n_hidden, n_pair_out, bias=bias)

    def forward(self, atoms: torch.Tensor, pairs: torch.Tensor,
                pair_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``atoms (N, F_a)``, ``pairs (P, F_p)``, ``pair_index (2, P)`` -> new ``(atoms, pairs or None)``."""
        aa = torch.relu(self.atom_to_atom(atoms))
        pa = _sum_over_pairs(torch.relu(self.pair_to_atom(pairs)), pair_index, atoms.shape[0])
        new_atoms = torch.relu(self.atom_out(torch.cat([aa, pa], 1)))
        if not self.update_pairs:
            return new_atoms, None
        a_i, a_j = atoms[pair_index[0]], atoms[pair_index[1]]
        ap = torch.relu(self.atom_to_pair(torch.cat([a_i, a_j], 1))) + \
            torch.relu(self.atom_to_pair(torch.cat([a_j, a_i], 1)))
        pp = torch.relu(self.pair_to_pair(pairs))
        new_pairs = torch.relu(self.pair_out(torch.cat([ap, pp], 1)))
        return new_atoms, new_pairs


#: Means and variances of Kearnes et al.'s Gaussian histogram (standard-normal quantile bins).
GAUSSIAN_MEMBERSHIPS = ((-1.645, 0.283), (-1.080, 0.170), (-0.739, 0.134), (-0.468, 0.118), (-0.228, 0.114),
                        (0.0, 0.114), (0.228, 0.114), (0.468, 0.118), (0.739, 0.134), (1.080, 0.170),
                        (1.645, 0.283))


class GaussianHistogram(nn.Module):
    """Soft histogram of each atom feature over 11 Gaussian bins, summed per molecule.

    ``(N, F) -> (n_molecules, F * 11)``: each value's memberships are normalized to sum to 1.
    """

    def __init__(self):
        super().__init__()
        means, variances = zip(*GAUSSIAN_MEMBERSHIPS)
        self.register_buffer("means", torch.tensor(means), persistent=False)
        self.register_buffer("variances", torch.tensor(variances), persistent=False)

    def forward(self, atoms: torch.Tensor, atom_batch: torch.Tensor, n_molecules: int) -> torch.Tensor:
        means, variances = self.means, self.variances
        if not isinstance(means, torch.Tensor) or not isinstance(variances, torch.Tensor):
            raise TypeError("GaussianHistogram buffers must be tensors")
        mu, var = means.to(atoms.dtype), variances.to(atoms.dtype)
        logits = -((atoms[..., None] - mu) ** 2) / (2 * var)
        member = torch.softmax(logits - 0.5 * torch.log(var), dim=-1)  # normalized Gaussian densities
        flat = member.reshape(atoms.shape[0], -1)
        return flat.new_zeros((n_molecules, flat.shape[1])).index_add_(0, atom_batch, flat)


class WeaveModel(nn.Module):
    """Stacked weave modules with Kearnes et al.'s readout.

    Parameters
    ----------
    n_atom_features, n_pair_features:
        Input widths (``featurizer.n_atom_features``, ``featurizer.n_pair_features``).
    n_tasks:
        Outputs per molecule (one logit per task).
    n_weave:
        Number of weave modules (the ``W`` of W1N2/W2N2).
    n_hidden:
        Width of the weave modules' atom and pair states.
    n_atom_hidden:
        Width of the per-atom layer after the weave modules.
    n_dense:
        Width of the molecule-level dense layer.
    reduction:
        ``"sum"`` over atoms, or ``"histogram"`` (:class:`GaussianHistogram`).
    homogeneous:
        Layers without biases except the output's (``b``), with the sum readout: every layer is a
        ReLU of a linear map, so the network is positively homogeneous of degree 1 in its atom and
        pair features, ``F(a x) = a (F(x) - b) + b`` for ``a >= 0`` -- a straight line along the
        path from the zeros baseline (score ``b``), and integrated gradients from it equal
        gradient x input at ``x``.

    ``forward(atoms, pairs, pair_index, atom_batch, n_molecules=None) -> (n_molecules, n_tasks)``.
    """

    def __init__(self, n_atom_features: int, n_pair_features: int, n_tasks: int, *, n_weave: int = 2,
                 n_hidden: int = 50, n_atom_hidden: int = 128, n_dense: int = 128, reduction: str = "sum",
                 homogeneous: bool = False):
        super().__init__()
        for name, value in (("n_atom_features", n_atom_features), ("n_pair_features", n_pair_features),
                            ("n_tasks", n_tasks), ("n_weave", n_weave)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"expected {name} to be a positive integer; got {describe(value)}")
        if reduction not in ("sum", "histogram"):
            raise InputError(f"expected reduction='sum' or 'histogram'; got {reduction!r}")
        if not isinstance(homogeneous, bool):
            raise InputError(f"expected homogeneous to be True or False; got {describe(homogeneous)}")
        if homogeneous and reduction != "sum":
            raise InputError("expected reduction='sum' with homogeneous=True (the Gaussian histogram is not "
                             f"homogeneous); got reduction={reduction!r}")
        self.homogeneous = homogeneous
        self.n_atom_features, self.n_pair_features, self.n_tasks = n_atom_features, n_pair_features, n_tasks
        self.reduction = reduction
        widths = [(n_atom_features, n_pair_features)] + [(n_hidden, n_hidden)] * (n_weave - 1)
        self.weave = nn.ModuleList(
            WeaveLayer(a, p, n_hidden, n_hidden, n_hidden, update_pairs=k < n_weave - 1, bias=not homogeneous)
            for k, (a, p) in enumerate(widths))
        self.atom_layer = nn.Linear(n_hidden, n_atom_hidden, bias=not homogeneous)
        self.histogram = GaussianHistogram() if reduction == "histogram" else None
        pooled = n_atom_hidden * (len(GAUSSIAN_MEMBERSHIPS) if self.histogram is not None else 1)
        self.dense = nn.Linear(pooled, n_dense, bias=not homogeneous)
        self.output = nn.Linear(n_dense, n_tasks)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He initialization of every ReLU layer (the signal keeps its scale without batch norm)."""
        for module in self.modules():
            if isinstance(module, nn.Linear) and module is not self.output:
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")

    @property
    def n_weave(self) -> int:
        return len(self.weave)

    @property
    def receptive_radius(self) -> int:
        """Graph radius an atom's representation is expected to see: one per weave module."""
        return self.n_weave

    def forward(self, atoms: torch.Tensor, pairs: torch.Tensor, pair_index: torch.Tensor,
                atom_batch: torch.Tensor, n_molecules: int | None = None) -> torch.Tensor:
        if atoms.dim() != 2 or atoms.shape[1] != self.n_atom_features:
            raise InputError(f"expected atoms of shape (N, {self.n_atom_features}); got {tuple(atoms.shape)}")
        if pairs.dim() != 2 or pairs.shape[1] != self.n_pair_features:
            raise InputError(f"expected pairs of shape (P, {self.n_pair_features}); got {tuple(pairs.shape)}")
        if n_molecules is None:
            n_molecules = int(atom_batch.max()) + 1 if atom_batch.numel() else 0
        for layer in self.weave:
            atoms, pairs = layer(atoms, pairs, pair_index)
        hidden = torch.relu(self.atom_layer(atoms))
        if self.histogram is not None:
            pooled = self.histogram(hidden, atom_batch, n_molecules)
        else:
            pooled = hidden.new_zeros((n_molecules, hidden.shape[1])).index_add_(0, atom_batch, hidden)
        return self.output(torch.relu(self.dense(pooled)))


def W1N2(n_atom_features: int, n_pair_features: int, n_tasks: int, **options) -> WeaveModel:
    """One weave module (pairs within distance 2): its atom attributions ignore neighbours' types."""
    return WeaveModel(n_atom_features, n_pair_features, n_tasks, n_weave=1, **options)


def W2N2(n_atom_features: int, n_pair_features: int, n_tasks: int, **options) -> WeaveModel:
    """Two weave modules (pairs within distance 2), the model of the paper's Figure 7."""
    return WeaveModel(n_atom_features, n_pair_features, n_tasks, n_weave=2, **options)
