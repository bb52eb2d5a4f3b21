"""Weave models: batching, permutation invariance, the W1N2 locality, parameters and storage."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from sciattr.chem.featurize import Chem, SimpleWeaveFeaturizer, collate, featurize_batch
from sciattr.chem.weave import W1N2, W2N2, GaussianHistogram, WeaveModel
from sciattr.errors import InputError

FEAT = SimpleWeaveFeaturizer()
SMILES = ["CC(=O)Nc1ccc(O)cc1", "CCO", "C", "c1ccccc1[N+](=O)[O-]"]


def _model(preset=W2N2, **options):
    torch.manual_seed(0)
    return preset(FEAT.n_atom_features, FEAT.n_pair_features, 3, n_hidden=16, n_atom_hidden=16, n_dense=16,
                  **options).double()


def _run(model, graphs):
    b = collate(graphs).to(dtype=torch.float64)
    return model(b.atoms, b.links, b.link_index, b.atom_batch, b.n_graphs)


@pytest.mark.parametrize("preset", [W1N2, W2N2])
@pytest.mark.parametrize("reduction", ["sum", "histogram"])
def test_batch_equals_single_molecules(preset, reduction):
    model = _model(preset, reduction=reduction)
    graphs, _, _ = featurize_batch(FEAT, SMILES)
    together = _run(model, graphs)
    alone = torch.cat([_run(model, [g]) for g in graphs])
    assert together.shape == (4, 3)
    torch.testing.assert_close(together, alone, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("preset", [W1N2, W2N2])
def test_output_invariant_to_atom_order(preset):
    model = _model(preset, reduction="histogram")
    mol = Chem.MolFromSmiles(SMILES[0])
    perm = torch.randperm(mol.GetNumAtoms(), generator=torch.Generator().manual_seed(3)).tolist()
    renumbered = Chem.RenumberAtoms(mol, perm)
    torch.testing.assert_close(_run(model, [FEAT(mol)]), _run(model, [FEAT(renumbered)]), rtol=1e-12, atol=1e-12)


def test_w1n2_atom_state_ignores_neighbour_types():
    """One module: A1[a] = f(A0[a], sum_b g(P[a, b])). Changing a neighbour's element changes the
    neighbour's own state only; W2N2's second module lets it reach the other atoms."""
    base, swapped = FEAT("CCCC(=O)O"), FEAT("CCCC(=O)N")  # acid O -> N at atom 5 (both single-bonded)
    for preset, leaks in ((W1N2, False), (W2N2, True)):
        model = _model(preset)
        states = []
        for g in (base, swapped):
            atoms, pairs = g.atoms.double(), g.links.double()
            for layer in model.weave:
                atoms, pairs = layer(atoms, pairs, g.link_index)
            states.append(atoms)
        changed = (states[0] - states[1]).abs().amax(1) > 1e-12
        assert bool(changed[5])
        assert bool(changed[:5].any()) == leaks


def test_presets_and_receptive_radius():
    assert _model(W1N2).n_weave == 1 and _model(W2N2).receptive_radius == 2
    assert not _model(W1N2).weave[0].update_pairs
    assert [layer.update_pairs for layer in _model(W2N2).weave] == [True, False]


def test_gaussian_histogram_memberships_sum_to_one():
    atoms = torch.randn(7, 4, dtype=torch.float64)
    hist = GaussianHistogram()(atoms, torch.tensor([0, 0, 0, 1, 1, 1, 1]), 2)
    assert hist.shape == (2, 44)
    torch.testing.assert_close(hist.reshape(2, 4, 11).sum(-1), torch.tensor([[3.0] * 4, [4.0] * 4],
                                                                            dtype=torch.float64))


def test_state_dict_roundtrips_through_safetensors(tmp_path):
    model = _model(W2N2, reduction="histogram")
    path = tmp_path / "w2n2.safetensors"
    save_file(model.state_dict(), str(path))
    fresh = W2N2(FEAT.n_atom_features, FEAT.n_pair_features, 3, n_hidden=16, n_atom_hidden=16, n_dense=16,
                 reduction="histogram").double()
    fresh.load_state_dict(load_file(str(path)))
    graphs, _, _ = featurize_batch(FEAT, SMILES)
    torch.testing.assert_close(_run(model, graphs), _run(fresh, graphs), rtol=0, atol=0)


def test_training_step_reduces_loss():
    torch.manual_seed(0)
    model = W1N2(FEAT.n_atom_features, FEAT.n_pair_features, 1, n_hidden=16, n_atom_hidden=16, n_dense=16)
    graphs, _, _ = featurize_batch(FEAT, SMILES)
    b = collate(graphs)
    y = torch.tensor([[1.0], [0.0], [0.0], [1.0]])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            model(b.atoms, b.links, b.link_index, b.atom_batch, b.n_graphs), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("kwargs,match", [({"n_tasks": 0}, "n_tasks"), ({"n_weave": 0}, "n_weave"),
                                          ({"reduction": "max"}, "reduction")])
def test_bad_constructor_arguments(kwargs, match):
    args = {"n_atom_features": 14, "n_pair_features": 13, "n_tasks": 1, **kwargs}
    with pytest.raises(InputError, match=match):
        WeaveModel(**args)


def test_wrong_feature_width_is_reported():
    model = _model(W1N2)
    g = FEAT("CCO")
    with pytest.raises(InputError, match=r"atoms of shape \(N, 14\)"):
        model(g.atoms[:, :5].double(), g.links.double(), g.link_index, torch.zeros(3, dtype=torch.long))
