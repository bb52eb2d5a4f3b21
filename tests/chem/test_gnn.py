"""GINENetwork and the homogeneous (bias-free ReLU) option of both chemistry architectures:
F(a x) = a (F(x) - b) + b, and integrated gradients from zeros equal gradient x input."""

import pytest
import torch

from sciattr.chem.adapter import explain_molecules
from sciattr.chem.featurize import PyGFeaturizer, SimpleWeaveFeaturizer, collate, featurize_batch
from sciattr.chem.gnn import GINENetwork
from sciattr.chem.weave import W1N2, W2N2
from sciattr.errors import InputError

SMILES = ["CC(=O)Nc1ccc(Cl)cc1", "O=[N+]([O-])c1ccccc1", "CCOCCN"]
WEAVE, PYG = SimpleWeaveFeaturizer(), PyGFeaturizer(atoms="simple")


def _model(kind):
    torch.manual_seed(0)
    if kind == "gcn":
        model = GINENetwork(PYG.n_atom_features, PYG.n_edge_features, hidden=16, homogeneous=True)
    else:
        model = (W1N2 if kind == "w1n2" else W2N2)(WEAVE.n_atom_features, WEAVE.n_pair_features, 1, n_hidden=16,
                                                   n_atom_hidden=16, n_dense=16, homogeneous=True)
    model = model.double()
    with torch.no_grad():  # an output bias away from 0, so that the baseline's score b is visible
        last = model.head[-1] if kind == "gcn" else model.output
        last.bias.fill_(-0.7)
    return model


def _inputs(kind):
    featurizer = PYG if kind == "gcn" else WEAVE
    graphs, _, _ = featurize_batch(featurizer, SMILES)
    b = collate(graphs).to(dtype=torch.float64)
    if kind == "gcn":
        return featurizer, (b.atoms, b.links), lambda m, a, l: m(a, b.link_index, l, b.atom_batch, b.n_graphs)
    return featurizer, (b.atoms, b.links), lambda m, a, l: m(a, l, b.link_index, b.atom_batch, b.n_graphs)


@pytest.mark.parametrize("kind", ["w1n2", "w2n2", "gcn"])
def test_homogeneous_network_is_a_line_from_the_zeros_baseline(kind):
    model = _model(kind)
    _, (atoms, links), run = _inputs(kind)
    b = run(model, 0 * atoms, 0 * links)
    torch.testing.assert_close(b, torch.full_like(b, -0.7), rtol=0, atol=1e-15)
    fx = run(model, atoms, links)
    for a in (0.0, 0.125, 0.5, 0.9, 3.0):
        torch.testing.assert_close(run(model, a * atoms, a * links), a * (fx - b) + b, rtol=1e-12, atol=1e-12)
    biases = [name for name, _ in model.named_parameters() if name.endswith("bias")]
    assert biases == (["head.2.bias"] if kind == "gcn" else ["output.bias"])


@pytest.mark.parametrize("kind", ["w1n2", "gcn"])
def test_integrated_gradients_of_a_homogeneous_network_are_gradient_times_input(kind):
    model = _model(kind)
    featurizer, (atoms, links), run = _inputs(kind)
    atoms, links = atoms.clone().requires_grad_(), links.clone().requires_grad_()
    run(model, atoms, links).sum().backward()
    expected_atoms = (atoms.grad * atoms).sum(1).detach()
    res = explain_molecules(model, SMILES, featurizer=featurizer, steps=2, baselines="zeros")
    got = torch.cat([res.atom_feature_values(i) for i in range(len(SMILES))])
    torch.testing.assert_close(got, expected_atoms, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(res.forward_baseline, torch.full_like(res.forward_baseline, -0.7), rtol=0,
                               atol=1e-12)
    assert float(res.completeness_gap.abs().max()) < 1e-10  # two nodes already exact: the gradient is constant


def test_default_network_keeps_its_configuration_and_biases():
    model = GINENetwork(PYG.n_atom_features, PYG.n_edge_features, hidden=8)
    assert "homogeneous" not in model.config and model.embed.bias is not None
    assert GINENetwork(PYG.n_atom_features, PYG.n_edge_features, hidden=8, homogeneous=True).config["homogeneous"]


@pytest.mark.parametrize("build,match", [
    (lambda: GINENetwork(14, 7, homogeneous="yes"), "homogeneous to be True or False; got"),
    (lambda: W2N2(14, 13, 1, homogeneous=1), "homogeneous to be True or False; got"),
    (lambda: W2N2(14, 13, 1, homogeneous=True, reduction="histogram"), "reduction='sum' with homogeneous"),
])
def test_bad_homogeneous_arguments_are_reported(build, match):
    with pytest.raises(InputError, match=match):
        build()
