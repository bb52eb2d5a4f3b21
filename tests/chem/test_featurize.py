"""Featurization: values of the one-hot columns and the index maps back to atoms and bonds."""

import numpy as np
import pytest
import torch

from sciattr.chem.featurize import (
    Chem,
    PyGFeaturizer,
    SimpleWeaveFeaturizer,
    UnreadableRecord,
    WeaveFeaturizer,
    collate,
    featurize_batch,
    load_sdf,
    source_bonds,
)
from sciattr.errors import InputError

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"


def _column(featurizer, name, kind="atom"):
    names = featurizer.atom_feature_names if kind == "atom" else featurizer.link_feature_names
    return names.index(name)


def test_simple_featurization_of_ethanol():
    feat = SimpleWeaveFeaturizer()
    g = feat("CCO")
    assert (feat.n_atom_features, feat.n_pair_features) == (14, 13)
    symbols = [feat.atom_feature_names[k] for k in g.atoms.argmax(1).tolist()]
    assert symbols == ["element=C", "element=C", "element=O"] and g.atoms.sum().item() == 3
    assert g.link_index.tolist() == [[0, 0, 1], [1, 2, 2]]
    on = [sorted(feat.pair_feature_names[k] for k in row.nonzero().flatten().tolist()) for row in g.links]
    assert on == [["bond=single", "distance=1"], ["bond=none", "distance=2"], ["bond=single", "distance=1"]]
    assert g.link_bond.tolist() == [0, -1, 1]


@pytest.mark.parametrize("max_distance", [1, 2, 3, None])
def test_pairs_and_bond_index_map(max_distance):
    feat = SimpleWeaveFeaturizer(max_distance=max_distance)
    g = feat(ASPIRIN)
    dist = Chem.GetDistanceMatrix(g.mol)
    n = g.n_atoms
    expected = {(i, j) for i in range(n) for j in range(i + 1, n) if max_distance is None or dist[i, j] <= max_distance}
    assert set(map(tuple, g.link_index.T.tolist())) == expected and g.n_links == len(expected)
    dcols = [_column(feat, f"distance={d}", "link") for d in (1, 2, 3, 4, 5, 6)] + [_column(feat, "distance=7+", "link")]
    for (i, j), bond, row in zip(g.link_index.T.tolist(), g.link_bond.tolist(), g.links):
        rd_bond = g.mol.GetBondBetweenAtoms(i, j)
        assert bond == (rd_bond.GetIdx() if rd_bond is not None else -1)
        assert row[dcols].argmax().item() == min(int(dist[i, j]), 7) - 1
        assert (row[_column(feat, "bond=none", "link")] == 1) == (rd_bond is None)


def test_full_featurization_of_nitrobenzene():
    feat = WeaveFeaturizer()
    g = feat("c1ccccc1[N+](=O)[O-]")
    names = feat.atom_feature_names
    assert g.atoms.shape == (9, 54) and g.links.shape[1] == feat.n_pair_features == 15

    def on(k):
        return {names[c] for c in g.atoms[k].nonzero().flatten().tolist()}

    assert on(6) == {"element=N", "degree=3", "valence=4", "charge=+1", "hybridization=SP2", "hydrogens=0"}
    assert on(8) == {"element=O", "degree=1", "valence=1", "charge=-1", "hybridization=SP2", "hydrogens=0"}
    assert on(1) == {"element=C", "degree=2", "valence=4", "charge=0", "hybridization=SP2", "aromatic", "hydrogens=1",
                     "in_ring", "ring_size=6"}
    pair = {tuple(ij): row for ij, row in zip(g.link_index.T.tolist(), g.links)}
    same_ring, conj = feat.pair_feature_names.index("same_ring"), feat.pair_feature_names.index("conjugated")
    assert pair[(0, 2)][same_ring] == 1 and pair[(5, 7)][same_ring] == 0 and pair[(6, 7)][conj] == 1


def test_pyg_edges_both_directions():
    feat = PyGFeaturizer()
    g = feat(ASPIRIN)
    mol = g.mol
    assert g.n_links == 2 * mol.GetNumBonds() and feat.n_edge_features == 7
    for k, bond in enumerate(mol.GetBonds()):
        a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        assert g.link_index[:, 2 * k].tolist() == [a, b] and g.link_index[:, 2 * k + 1].tolist() == [b, a]
        assert g.link_bond[2 * k] == g.link_bond[2 * k + 1] == k
        assert torch.equal(g.links[2 * k], g.links[2 * k + 1])
    data = feat.data(ASPIRIN)
    assert data.x.shape == (13, 54) and data.edge_index.shape == (2, 26) and data.edge_attr.shape == (26, 7)
    assert PyGFeaturizer(atoms="simple")("CCO").atoms.shape == (3, 14)


def test_salts_keep_largest_fragment_and_map_source_atoms():
    feat = SimpleWeaveFeaturizer()
    g = feat("[Na+].[O-]C(=O)c1ccccc1")
    assert g.n_atoms == 9 and g.source_atoms.tolist() == list(range(1, 10))
    assert any("[Na+]" in note for note in g.notes)
    assert feat("CCO.O").n_atoms == 3
    both = SimpleWeaveFeaturizer(fragments="all", max_distance=None)("CC.O")
    assert both.n_atoms == 3 and both.link_index.T.tolist() == [[0, 1]]  # no pair across fragments
    with pytest.raises(InputError, match="2 fragments"):
        SimpleWeaveFeaturizer(fragments="error")("CC.O")


def test_hydrogens_implicit_and_explicit():
    implicit = WeaveFeaturizer()("C[2H]")
    assert implicit.n_atoms == 2  # an isotope hydrogen stays an atom
    explicit = SimpleWeaveFeaturizer(hydrogens="explicit")("CO")
    # added hydrogens are numbered after the input's atoms (never -1, which would alias the last atom)
    assert explicit.n_atoms == 6 and explicit.source_atoms.tolist() == [0, 1, 2, 3, 4, 5]
    assert explicit.notes == ("hydrogens added as atoms 2-5 (numbered after the input's 2 atoms)",)
    assert source_bonds(explicit.mol) == [0, 1, 2, 3, 4]
    hcol = SimpleWeaveFeaturizer().atom_feature_names.index("element=H")
    assert explicit.atoms[:, hcol].sum() == 4


def test_unknown_element_goes_to_other_column():
    feat = SimpleWeaveFeaturizer()
    g = feat("[Xe]CC*")
    other = feat.atom_feature_names.index("element=other")
    assert g.atoms[:, other].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert any("Xe" in note for note in g.notes)


def test_dummy_baseline_rows():
    feat = SimpleWeaveFeaturizer()
    g = feat("CC=O")
    atoms, links = feat.dummy_atoms(g.atoms), feat.dummy_links(g.links)
    assert atoms.sum(0)[feat.atom_feature_names.index("element=other")] == 3 and atoms.sum() == 3
    bonded = g.link_bond >= 0
    other = feat.pair_feature_names.index("bond=other")
    assert links[:, other].tolist() == bonded.float().tolist()
    dist = [k for k, n in enumerate(feat.pair_feature_names) if n.startswith("distance=")]
    assert torch.equal(links[:, dist], g.links[:, dist])


def test_collate_offsets():
    graphs, _, _ = featurize_batch(SimpleWeaveFeaturizer(), ["CCO", "C", "c1ccccc1"])
    b = collate(graphs)
    assert b.n_graphs == 3 and b.atom_batch.tolist() == [0, 0, 0, 1] + [2] * 6
    assert b.link_index[:, :3].tolist() == [[0, 0, 1], [1, 2, 2]]
    assert int(b.link_index[:, 3:].min()) == 4 and b.link_batch.tolist() == [0] * 3 + [2] * 12


def test_sdf_records(tmp_path):
    path = tmp_path / "two.sdf"
    writer = Chem.SDWriter(str(path))
    for smi in ("CCO", "c1ccccc1O"):
        writer.write(Chem.MolFromSmiles(smi))
    writer.close()
    broken = "broken\n  RDKit\n\n  1  0  0  0  0  0  0  0  0  0999 V2000\nnot an atom line\nM  END\n$$$$\n"
    path.write_text(path.read_text() + broken)
    mols = load_sdf(path)
    assert len(mols) == 3 and isinstance(mols[2], UnreadableRecord)
    assert mols[2].index == 2 and mols[2].name == "broken"
    assert mols[2].reason == "Atom line too short: 'not an atom line' on line 36"  # RDKit's reason, noise removed
    graphs, rows, errors = featurize_batch(SimpleWeaveFeaturizer(), mols)
    assert rows == [0, 1] and errors[0]["row"] == 2
    assert errors[0]["message"] == "RDKit cannot read record 2 (broken): Atom line too short: 'not an atom line' on line 36"
    assert graphs[1].n_atoms == 7
    with pytest.raises(InputError, match="existing SDF"):
        load_sdf(tmp_path / "missing.sdf")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_max_distance(bad):
    with pytest.raises(InputError, match="max_distance"):
        SimpleWeaveFeaturizer(max_distance=bad)


def test_feature_names_match_widths():
    for feat in (SimpleWeaveFeaturizer(), WeaveFeaturizer(), PyGFeaturizer(), PyGFeaturizer(atoms="simple")):
        g = feat(ASPIRIN)
        assert g.atoms.shape[1] == feat.n_atom_features == len(set(feat.atom_feature_names))
        assert g.links.shape[1] == feat.n_link_features == len(set(feat.link_feature_names))
        assert np.isin(g.atoms.numpy(), [0.0, 1.0]).all() and np.isin(g.links.numpy(), [0.0, 1.0]).all()


def test_rdkit_messages_are_kept_per_thread():
    """Two threads reading bad SMILES at once each get RDKit's reasons for their own input only."""
    import threading

    from rdkit import Chem

    from sciattr.chem.featurize import rdkit_messages

    inputs = {"ring": "C1CC", "valence": "C(C)(C)(C)(C)C"}
    seen: dict[str, list] = {name: [] for name in inputs}
    start = threading.Barrier(2)

    def read(name):
        start.wait()
        for _ in range(200):
            with rdkit_messages() as said:
                Chem.MolFromSmiles(inputs[name])
            seen[name].append(list(said))

    threads = [threading.Thread(target=read, args=(name,)) for name in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, captured in seen.items():
        assert len(captured) == 200 and all(captured), name
        other = "valence" if name == "ring" else "unclosed ring"
        assert not any(other in m.lower() for said in captured for m in said), name
    assert all(any("unclosed ring" in m.lower() for m in said) for said in seen["ring"])
    assert all(any("valence" in m.lower() for m in said) for said in seen["valence"])
