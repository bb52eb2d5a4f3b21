"""A message-passing graph network in PyTorch Geometric.

:class:`GINENetwork` is a plain PyG model with the usual signature
``model(x, edge_index, edge_attr, batch)``: GINEConv layers (Hu et al. 2020) with residual
connections, sum pooling per graph and an MLP head. The shipped ``gcn-*`` models of
:mod:`sciattr.zoo` are instances; :func:`sciattr.chem.adapter.explain_molecules` attributes it
like any PyG model (atoms and bond edges of all molecules and path nodes batched together), and
``benchmarks/bench_chem_pyg.py`` compares that with PyG's own ``Explainer``.
"""

from __future__ import annotations

import torch
from torch import nn

from sciattr.errors import InputError, describe, require

__all__ = ["GINENetwork"]


class GINENetwork(nn.Module):
    """GINEConv layers, sum pooling and an MLP head.

    Parameters
    ----------
    atom_features, bond_features:
        Widths of ``x`` ``(n_atoms, atom_features)`` and ``edge_attr`` ``(n_edges, bond_features)``.
    hidden:
        Width of the atom states.
    layers:
        Message-passing rounds.
    outputs:
        Scores per graph (one per task).
    homogeneous:
        ReLU layers without biases (only the last layer keeps its bias ``b``): the network is then
        positively homogeneous of degree 1 in its inputs, ``F(a x) = a (F(x) - b) + b`` for
        ``a >= 0`` -- its score is a straight line along the path from the zeros baseline, whose
        score is ``b``, and integrated gradients from it equal gradient x input at ``x``.
        Default: SiLU layers with biases.

    Forward
    -------
    ``model(x, edge_index, edge_attr, batch=None, num_graphs=None)`` -> ``(num_graphs, outputs)``
    logits. ``edge_index`` is ``(2, n_edges)`` with both directions of every bond;
    ``batch`` ``(n_atoms,)`` gives the graph of each atom (all zeros when omitted).
    """

    def __init__(self, atom_features: int, bond_features: int, hidden: int = 64, layers: int = 3,
                 outputs: int = 1, homogeneous: bool = False):
        super().__init__()
        for name, value in (("atom_features", atom_features), ("bond_features", bond_features),
                            ("hidden", hidden), ("layers", layers), ("outputs", outputs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"expected {name} to be a positive integer; got {describe(value)}")
        if not isinstance(homogeneous, bool):
            raise InputError(f"expected homogeneous to be True or False; got {describe(homogeneous)}")
        geometric = require("torch_geometric.nn", "chem")
        self.config = {"atom_features": atom_features, "bond_features": bond_features, "hidden": hidden,
                       "layers": layers, "outputs": outputs}
        if homogeneous:  # recorded only when set, so the cards of the default network stay as they are
            self.config["homogeneous"] = True
        bias, activation = (False, nn.ReLU) if homogeneous else (True, nn.SiLU)
        self.embed = nn.Linear(atom_features, hidden, bias=bias)
        self.convs = nn.ModuleList()
        for _ in range(layers):
            conv = geometric.GINEConv(nn.Sequential(nn.Linear(hidden, hidden, bias=bias), activation(),
                                                    nn.Linear(hidden, hidden, bias=bias)), edge_dim=bond_features)
            if homogeneous:  # the edge features' projection, added to the neighbour's state before a ReLU
                conv.lin = geometric.Linear(bond_features, hidden, bias=False)
            self.convs.append(conv)
        self.head = nn.Sequential(nn.Linear(hidden, hidden, bias=bias), activation(), nn.Linear(hidden, outputs))
        self.activation = activation()

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor,
                batch: torch.Tensor | None = None, num_graphs: int | None = None) -> torch.Tensor:
        if batch is None:
            batch = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        if num_graphs is None:
            num_graphs = int(batch.max()) + 1 if batch.numel() else 0
        h = self.embed(x)
        for conv in self.convs:
            h = h + self.activation(conv(h, edge_index, edge_attr))
        pooled = torch.zeros(num_graphs, h.shape[1], dtype=h.dtype, device=h.device).index_add(0, batch, h)
        return self.head(pooled)
