"""The molecule adapter: analytic oracle, completeness, batching, equivariance, views, PyG and Captum parity."""

import warnings

import pytest
import torch
from torch import nn

from sciattr.chem.adapter import MoleculeAttribution, explain_graphs, explain_molecules
from sciattr.chem.featurize import (
    Chem,
    PyGFeaturizer,
    SimpleWeaveFeaturizer,
    WeaveFeaturizer,
    featurize_batch,
)
from sciattr.chem.weave import W1N2, W2N2
from sciattr.errors import InputError

warnings.filterwarnings("ignore", category=DeprecationWarning)
geometric = pytest.importorskip("torch_geometric.nn")

FEAT = SimpleWeaveFeaturizer()
SMILES = ["CC(=O)Nc1ccc(O)cc1", "CCO", "c1ccccc1[N+](=O)[O-]", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "OCC(N)C(=O)OCCS"]


class LinearWeave(nn.Module):
    """F = sum_atoms w_a . atom + sum_pairs w_p . pair + b: integrated gradients are exactly x * w."""

    def __init__(self, n_atom, n_pair):
        super().__init__()
        self.w_atom = nn.Parameter(torch.randn(n_atom, dtype=torch.float64))
        self.w_pair = nn.Parameter(torch.randn(n_pair, dtype=torch.float64))

    def forward(self, atoms, pairs, pair_index, atom_batch, n_molecules):
        out = atoms.new_full((n_molecules,), 0.25)
        out = out.index_add(0, atom_batch, atoms @ self.w_atom)
        return out.index_add(0, atom_batch[pair_index[0]], pairs @ self.w_pair)


def _weave(preset, n_tasks=1, **options):
    torch.manual_seed(0)
    return preset(FEAT.n_atom_features, FEAT.n_pair_features, n_tasks, n_hidden=16, n_atom_hidden=16, n_dense=16,
                  **options).double()


class TanhGCN(nn.Module):
    """A small GCN that ignores edge_attr."""

    def __init__(self, n_in, hidden=16, n_out=2):
        super().__init__()
        self.c1, self.c2 = geometric.GCNConv(n_in, hidden), geometric.GCNConv(hidden, hidden)
        self.out = nn.Linear(hidden, n_out)

    def forward(self, x, edge_index, edge_attr, batch):
        x = torch.tanh(self.c2(torch.tanh(self.c1(x, edge_index)), edge_index))
        return self.out(geometric.global_add_pool(x, batch))


class TanhGINE(nn.Module):
    """Message passing that uses edge features."""

    def __init__(self, n_in, n_edge, hidden=16, n_out=2):
        super().__init__()
        self.inp = nn.Linear(n_in, hidden)
        self.convs = nn.ModuleList(geometric.GINEConv(nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh()),
                                                      edge_dim=n_edge) for _ in range(2))
        self.out = nn.Linear(hidden, n_out)

    def forward(self, x, edge_index, edge_attr, batch):
        x = self.inp(x)
        for conv in self.convs:
            x = conv(x, edge_index, edge_attr)
        return self.out(geometric.global_add_pool(x, batch))


def test_linear_oracle_is_exact_and_maps_rows_to_molecules():
    torch.manual_seed(0)
    model = LinearWeave(FEAT.n_atom_features, FEAT.n_pair_features)
    res = explain_molecules(model, SMILES, featurizer=FEAT, steps=3)
    for i, smi in enumerate(SMILES):
        g = FEAT(smi)
        expected_atoms = g.atoms.double() @ model.w_atom.detach()
        expected_pairs = g.links.double() @ model.w_pair.detach()
        torch.testing.assert_close(res.atom_feature_values(i), expected_atoms, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(res.atom_values(i, view="features"), expected_atoms, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(res.link_values(i), expected_pairs, rtol=1e-13, atol=1e-13)
        # complete atom score (the default): own features + half of every pair the atom is in
        ends = g.link_index
        complete = expected_atoms.clone()
        complete.index_add_(0, ends[0], expected_pairs / 2).index_add_(0, ends[1], expected_pairs / 2)
        torch.testing.assert_close(res.atom_values(i), complete, rtol=1e-12, atol=1e-12)
        assert [a["attribution"] for a in res.to_atoms(i)] == pytest.approx(complete.tolist(), rel=1e-12, abs=1e-12)
        assert [a["feature_attribution"] for a in res.to_atoms(i)] == pytest.approx(expected_atoms.tolist(),
                                                                                    rel=1e-12, abs=1e-12)
        assert float(complete.sum()) == pytest.approx(float(res.delta[i]), rel=1e-12)
    assert res.completeness_gap.abs().max() < 1e-12
    torch.testing.assert_close(res.forward_baseline, torch.full((5,), 0.25, dtype=torch.float64))


@pytest.mark.parametrize("preset", [W1N2, W2N2])
@pytest.mark.parametrize("reduction", ["sum", "histogram"])
def test_completeness_within_one_percent(preset, reduction):
    res = explain_molecules(_weave(preset, reduction=reduction), SMILES, steps=64, rule="riemann_trapezoid",
                            tolerance=0.01, max_steps=1024)
    assert res.relative_gap.max() < 0.01
    assert res.delta.abs().min() > 1e-3  # the models are not flat: the check has teeth


def test_pyg_model_completeness():
    feat = PyGFeaturizer()
    torch.manual_seed(0)
    model = TanhGINE(feat.n_atom_features, feat.n_edge_features).double()  # GINEConv has a ReLU inside
    res = explain_molecules(model, SMILES, target=1, steps=64, rule="riemann_trapezoid", tolerance=0.01)
    assert res.meta["links_attributed"] and res.relative_gap.max() < 0.01
    assert res.per_example("edges").abs().min() > 1e-3


def test_molecules_together_equal_molecules_alone():
    model = _weave(W2N2, n_tasks=2)
    together = explain_molecules(model, SMILES, target=1, steps=16)
    chunked = explain_molecules(model, SMILES, target=1, steps=16, batch_size=7)
    for i, smi in enumerate(SMILES):
        alone = explain_molecules(model, [smi], target=1, steps=16)
        for res in (together, chunked):
            torch.testing.assert_close(res.atom_values(i), alone.atom_values(0), rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(res.link_values(i), alone.link_values(0), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["weave", "pyg"])
def test_renumbering_atoms_permutes_attributions(kind):
    mol = Chem.MolFromSmiles(SMILES[0])
    perm = torch.randperm(mol.GetNumAtoms(), generator=torch.Generator().manual_seed(1)).tolist()
    renumbered = Chem.RenumberAtoms(mol, perm)  # new atom k is old atom perm[k]
    if kind == "weave":
        model, feat = _weave(W2N2, reduction="histogram"), FEAT
    else:
        feat = PyGFeaturizer()
        torch.manual_seed(0)
        model = TanhGINE(feat.n_atom_features, feat.n_edge_features).double()
    res = explain_molecules(model, [mol, renumbered], featurizer=feat, target=0, steps=16)
    torch.testing.assert_close(res.atom_values(1), res.atom_values(0)[perm], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(res.to_pairs(1), res.to_pairs(0)[perm][:, perm], rtol=1e-9, atol=1e-12)
    old = {frozenset((b["begin"], b["end"])): b["attribution"] for b in res.to_bonds(0)}
    for b in res.to_bonds(1):
        assert b["attribution"] == pytest.approx(old[frozenset((perm[b["begin"]], perm[b["end"]]))], rel=1e-9)


def test_views():
    res = explain_molecules(_weave(W2N2), SMILES[:3], steps=16)
    assert isinstance(res, MoleculeAttribution) and res.link_name == "pairs"
    atoms = res.to_atoms(2)
    assert [a["symbol"] for a in atoms] == ["C"] * 6 + ["N", "O", "O"]
    assert sum(a["attribution"] for a in atoms) == pytest.approx(float(res.atom_values(2).sum()))
    matrix = res.to_pairs(2)
    torch.testing.assert_close(matrix, matrix.T)
    assert float(matrix.triu().sum()) == pytest.approx(float(res.link_values(2).sum()), rel=1e-12)
    bonds = res.to_bonds(2)
    c_n = next(b for b in bonds if {b["begin"], b["end"]} == {5, 6})
    assert len(bonds) == 9 and c_n["bond_type"] == "single" and c_n["bond"] == res.molecules[2].GetBondBetweenAtoms(5, 6).GetIdx()
    for b in bonds:
        assert b["attribution"] == pytest.approx(float(matrix[b["begin"], b["end"]]))
    table = res.table()
    assert [t["smiles"] for t in table] == [Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in SMILES[:3]]
    for t, gap in zip(table, res.completeness_gap.tolist()):
        assert t["gap"] == pytest.approx(gap, abs=1e-12)
    assert len(res.table("atom")) == sum(m.GetNumAtoms() for m in res.molecules)
    assert len(res.table("bond")) == sum(m.GetNumBonds() for m in res.molecules)


def test_multi_target_views_need_a_task():
    res = explain_molecules(_weave(W1N2, n_tasks=3), SMILES[:2], target="all", steps=8)
    assert res.attributions["atoms"].shape[-1] == 3
    with pytest.raises(InputError, match=r"target to be an integer in \[0, 2\]"):
        res.to_atoms(0)
    per_task = [float(res.atom_values(0, target=t).sum()) for t in range(3)]  # complete scores add up
    assert per_task == pytest.approx(res.per_example()[0].tolist(), rel=1e-12)
    per_task = [float(res.atom_feature_values(0, target=t).sum() + res.link_values(0, target=t).sum())
                for t in range(3)]
    assert per_task == pytest.approx(res.per_example()[0].tolist(), rel=1e-12)


def test_dummy_baseline_is_the_dummy_molecule():
    model = _weave(W2N2)
    res = explain_molecules(model, ["CC(=O)O"], steps=32, baselines="dummy")
    with pytest.raises(InputError, match="baselines"):
        explain_molecules(model, ["CC(=O)O"], steps=32, baseline="dummy")
    g = FEAT("CC(=O)O")
    direct = model(FEAT.dummy_atoms(g.atoms).double(), FEAT.dummy_links(g.links).double(), g.link_index,
                   torch.zeros(4, dtype=torch.long), 1)
    torch.testing.assert_close(res.forward_baseline, direct[:, 0].detach())
    assert res.meta["baseline"] == "dummy"


def test_gcn_ignoring_edges_gets_zero_edge_attributions():
    feat = PyGFeaturizer()
    torch.manual_seed(0)
    res = explain_molecules(TanhGCN(feat.n_atom_features).double(), SMILES[:2], target=0, steps=24)
    assert not res.meta["links_attributed"] and res.link_name == "edges"
    assert res.attributions["edges"].abs().max() == 0 and res.relative_gap.max() < 1e-8
    assert [b["attribution"] for b in res.to_bonds(1)] == [0.0, 0.0]


@pytest.mark.filterwarnings("ignore:Internal batch size")  # Captum counts atoms as examples: one step per batch
@pytest.mark.parametrize("model_name", ["gcn", "gine"])
def test_parity_with_captum_integrated_gradients(model_name):
    """Same molecule, same Gauss-Legendre nodes: sciattr batches replicas, Captum loops one step at a
    time (PyG graphs need internal_batch_size=1). Captum casts quadrature weights to float32, so the
    agreement is ~1e-7 relative, not 1e-15. (Captum's trapezoid weights sum to (n-1)/n, so that rule
    would not agree -- compare with gausslegendre.)"""
    captum = pytest.importorskip("captum.attr")
    feat = PyGFeaturizer()
    torch.manual_seed(0)
    model = (TanhGCN(feat.n_atom_features) if model_name == "gcn"
             else TanhGINE(feat.n_atom_features, feat.n_edge_features)).double()
    smi = SMILES[0]
    res = explain_molecules(model, [smi], featurizer=feat, target=1, steps=32)
    g = feat(smi)
    x, edge_attr = g.atoms.double(), g.links.double()
    batch = torch.zeros(g.n_atoms, dtype=torch.long)
    if model_name == "gcn":
        ig = captum.IntegratedGradients(lambda x_: model(x_, g.link_index, edge_attr, batch))
        ref_x = ig.attribute(x, target=1, n_steps=32, method="gausslegendre", internal_batch_size=1)
        ref_e = torch.zeros_like(edge_attr)
    else:
        ig = captum.IntegratedGradients(lambda x_, e_: model(x_, g.link_index, e_, batch))
        ref_x, ref_e = ig.attribute((x, edge_attr), target=1, n_steps=32, method="gausslegendre",
                                    internal_batch_size=1)
    scale = float(ref_x.abs().max())
    torch.testing.assert_close(res.attributions["atoms"], ref_x, rtol=0, atol=1e-6 * scale)
    torch.testing.assert_close(res.attributions["edges"], ref_e, rtol=0, atol=1e-6 * scale)


def test_explain_graphs_and_save_load(tmp_path):
    graphs, _, _ = featurize_batch(WeaveFeaturizer(), SMILES[:2])
    torch.manual_seed(0)
    model = W1N2(WeaveFeaturizer().n_atom_features, WeaveFeaturizer().n_pair_features, 1, n_hidden=8,
                 n_atom_hidden=8, n_dense=8).double()
    res = explain_graphs(model, graphs, steps=8)
    path = res.save(tmp_path / "res.pt")
    back = MoleculeAttribution.load(path)
    assert back.smiles == res.smiles and back.molecules[1].GetNumAtoms() == 3
    assert back.to_bonds(0) == res.to_bonds(0)
    torch.testing.assert_close(back.to_pairs(0), res.to_pairs(0))
