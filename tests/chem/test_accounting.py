"""Accounting of F(x) - F(x') by atoms, bonded and non-bonded pairs, elements, bond types and groups."""

import warnings

import pytest
import torch
from torch import nn

from sciattr.chem.accounting import account, group_total, smarts_totals
from sciattr.chem.adapter import explain_molecules
from sciattr.chem.featurize import Chem, PyGFeaturizer, SimpleWeaveFeaturizer
from sciattr.chem.weave import W2N2
from sciattr.errors import ConvergenceWarning, InputError

FEAT = SimpleWeaveFeaturizer()
NITROBENZENE = "c1ccccc1[N+](=O)[O-]"  # atoms 0-5 ring, 6 N, 7 O (double), 8 O (single, charged)


class LinearWeave(nn.Module):
    """F = sum_atoms w_a . atom + sum_pairs w_p . pair + 1: every part has a closed form."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(7)
        self.w_atom = nn.Parameter(torch.randn(FEAT.n_atom_features, generator=gen, dtype=torch.float64))
        self.w_pair = nn.Parameter(torch.randn(FEAT.n_pair_features, generator=gen, dtype=torch.float64))

    def forward(self, atoms, pairs, pair_index, atom_batch, n_molecules):
        out = atoms.new_ones(n_molecules).index_add(0, atom_batch, atoms @ self.w_atom)
        return out.index_add(0, atom_batch[pair_index[0]], pairs @ self.w_pair)


def _weights(model):
    wa = dict(zip(FEAT.atom_feature_names, model.w_atom.tolist()))
    wp = dict(zip(FEAT.pair_feature_names, model.w_pair.tolist()))
    return wa, wp


def test_closed_form_accounting_of_nitrobenzene():
    model = LinearWeave()
    res = explain_molecules(model, [NITROBENZENE], featurizer=FEAT, steps=2)
    wa, wp = _weights(model)
    single, double, aromatic = (wp[f"bond={t}"] + wp["distance=1"] for t in ("single", "double", "aromatic"))
    dist = Chem.GetDistanceMatrix(res.molecules[0])
    n_distance_two = int(((dist == 2).sum()) // 2)
    acc = account(res, 0)
    assert acc.atoms == pytest.approx(6 * wa["element=C"] + wa["element=N"] + 2 * wa["element=O"], rel=1e-12)
    assert acc.by_element == pytest.approx({"C": 6 * wa["element=C"], "N": wa["element=N"], "O": 2 * wa["element=O"]})
    assert acc.by_bond_type == pytest.approx({"aromatic": 6 * aromatic, "single": 2 * single, "double": double})
    assert acc.nonbonded == pytest.approx(n_distance_two * (wp["bond=none"] + wp["distance=2"]), rel=1e-12)
    assert acc.bonded == pytest.approx(6 * aromatic + 2 * single + double, rel=1e-12)
    assert acc.gap == pytest.approx(0.0, abs=1e-12) and acc.n_molecules == 1
    assert sum(acc.shares()[k] for k in ("atoms", "bonded pairs", "non-bonded pairs")) == pytest.approx(1.0)

    (nitro,) = smarts_totals(res, "[N+](=O)[O-]")
    assert nitro.atom_indices == (6, 7, 8)
    assert nitro.atoms == pytest.approx(wa["element=N"] + 2 * wa["element=O"], rel=1e-12)
    assert nitro.links == pytest.approx(single + double + wp["bond=none"] + wp["distance=2"], rel=1e-12)
    assert nitro.share == pytest.approx(nitro.total / float(res.delta[0]))


def test_link_modes_of_a_group():
    res = explain_molecules(W2N2(FEAT.n_atom_features, FEAT.n_pair_features, 1).double(), [NITROBENZENE], steps=8)
    internal, half, touching = (group_total(res, 0, [6, 7, 8], links=m) for m in ("internal", "half", "touching"))
    assert half.links == pytest.approx((internal.links + touching.links) / 2, rel=1e-12)
    whole = group_total(res, 0, range(9), links="internal")
    assert whole.total == pytest.approx(float(res.per_example()[0]), rel=1e-12)
    with pytest.raises(InputError, match="atom indices"):
        group_total(res, 0, [42])
    with pytest.raises(InputError, match="links"):
        group_total(res, 0, [1], links="some")
    with pytest.raises(InputError, match="SMARTS"):
        smarts_totals(res, "[N+](=O")


def test_accounting_over_many_molecules_adds_up():
    torch.manual_seed(0)
    model = W2N2(FEAT.n_atom_features, FEAT.n_pair_features, 2, n_hidden=16, n_atom_hidden=16, n_dense=16).double()
    smiles = [NITROBENZENE, "CCO", "Cc1ccc([N+](=O)[O-])cc1[N+](=O)[O-]"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # the default adaptive path meets its 5 % tolerance
        res = explain_molecules(model, smiles, target=[[0, 1]] * 3)
    assert bool(res.converged.all()) and float(res.relative_gap.max()) <= 0.05
    acc = account(res, target=1)
    assert acc.n_molecules == 3
    assert acc.atoms + acc.bonded + acc.nonbonded == pytest.approx(float(res.per_example()[:, 1].sum()), rel=1e-12)
    assert acc.delta == pytest.approx(float(res.delta[:, 1].sum()), rel=1e-12)
    assert sum(acc.by_element.values()) == pytest.approx(acc.atoms, rel=1e-12)
    assert len(smarts_totals(res, "[N+](=O)[O-]", target=1)) == 3
    assert account(res, [0], target=0).atoms == pytest.approx(float(res.atom_feature_values(0, target=0).sum()),
                                                           rel=1e-12)
    with pytest.raises(InputError, match="target"):
        account(res, task=1)
    assert "non-bonded pairs" in acc.summary()


def test_edge_models_have_no_nonbonded_share():
    class EdgeSum(nn.Module):
        def forward(self, x, edge_index, edge_attr, batch):
            n = int(batch.max()) + 1
            per_atom = x.new_zeros(n).index_add(0, batch, x.sum(1))
            return per_atom.index_add(0, batch[edge_index[0]], 2.0 * edge_attr.sum(1))

    res = explain_molecules(EdgeSum(), ["CC=O"], featurizer=PyGFeaturizer(atoms="simple"), steps=2)
    acc = account(res)
    assert acc.nonbonded == 0 and acc.by_bond_type == pytest.approx({"single": 4.0, "double": 4.0})
    assert acc.atoms == pytest.approx(3.0)
