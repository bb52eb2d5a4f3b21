"""Baselines of molecules: F(x') beside F(x), warnings when the baseline is not neutral, dummy
baselines the model cannot tell from zeros, expected gradients over K baselines (analytic oracle
on a linear model, equal to K separate runs on a network) and the neutral-baseline search."""

import warnings

import pytest
import torch
from torch import nn

from sciattr.chem import (
    NeutralBaseline,
    ReferenceBaselines,
    SimpleWeaveFeaturizer,
    explain_molecules,
    neutral_baseline,
)
from sciattr.chem.weave import W2N2
from sciattr.errors import BaselineWarning, InputError

FEAT = SimpleWeaveFeaturizer()
SMILES = ["CC(=O)Nc1ccc(O)cc1", "CCO", "c1ccccc1[N+](=O)[O-]", "OCC(N)C(=O)OCCS"]
REFERENCE = ["CCCC", "c1ccncc1", "OCCO", "CC(=O)C", "ClCCl", "NCC(=O)O"]


class LinearWeave(nn.Module):
    """F = b + sum_atoms w_a . atom + sum_pairs w_p . pair: IG from x' is exactly (x - x') * w."""

    def __init__(self, bias=0.25, seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.w_atom = nn.Parameter(torch.randn(FEAT.n_atom_features, generator=gen, dtype=torch.float64))
        self.w_pair = nn.Parameter(torch.randn(FEAT.n_pair_features, generator=gen, dtype=torch.float64))
        self.bias = bias

    def forward(self, atoms, pairs, pair_index, atom_batch, n_molecules):
        out = atoms.new_full((n_molecules,), self.bias)
        out = out.index_add(0, atom_batch, atoms @ self.w_atom)
        return out.index_add(0, atom_batch[pair_index[0]], pairs @ self.w_pair)


def _network(n_tasks=1):
    torch.manual_seed(0)
    return W2N2(FEAT.n_atom_features, FEAT.n_pair_features, n_tasks, n_hidden=16, n_atom_hidden=16,
                n_dense=16).double()


# ---------------------------------------------------------------------------------------- expected gradients
def test_expected_gradients_of_a_linear_model_are_x_minus_the_mean_baseline_times_w():
    model = LinearWeave()
    sampler = ReferenceBaselines(REFERENCE, k=5, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        res = explain_molecules(model, SMILES, featurizer=FEAT, baselines=sampler, steps=2)
    assert res.meta["baseline_samples"] == 5
    graphs = [FEAT(s) for s in SMILES]
    # the same draws, made again: E[x'] per row is the mean of the K sampled rows
    from sciattr.chem.adapter import ragged_graphs

    data = ragged_graphs(model, graphs).data
    draws = ReferenceBaselines(REFERENCE, k=5, seed=3).sample(graphs, data=data, link_name="pairs", featurizer=FEAT)
    mean_atoms = torch.stack([d["atoms"] for d in draws]).mean(0)
    mean_pairs = torch.stack([d["pairs"] for d in draws]).mean(0)
    expected_atoms = (data.atoms - mean_atoms) * model.w_atom.detach()
    expected_pairs = (data.links - mean_pairs) * model.w_pair.detach()
    torch.testing.assert_close(res.attributions["atoms"], expected_atoms, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(res.attributions["pairs"], expected_pairs, rtol=1e-12, atol=1e-12)
    # F(x') is the mean baseline score; the average adds up to F(x) - mean_k F(x'_k)
    per_k = torch.tensor(res.meta["baseline_scores"], dtype=torch.float64)
    assert per_k.shape == (4, 5) and per_k.std(1).min() > 0  # K different baselines per molecule
    torch.testing.assert_close(res.forward_baseline, per_k.mean(1))
    torch.testing.assert_close(res.per_example(), res.forward_x - per_k.mean(1), rtol=1e-12, atol=1e-12)
    assert max(max(r) for r in res.meta["baseline_relative_gaps"]) < 1e-12  # every baseline checked


def test_expected_gradients_from_an_explicit_list_of_baselines_oracle():
    model = LinearWeave(seed=1)
    b1 = {"atoms": 0.0, "pairs": 0.0}
    b2 = {"atoms": 0.5, "pairs": 0.25}
    res = explain_molecules(model, SMILES[:2], featurizer=FEAT, baselines=[b1, b2, "dummy"], steps=2)
    for i, smi in enumerate(SMILES[:2]):
        g = FEAT(smi)
        mean_atoms = (0.0 + 0.5 * torch.ones_like(g.atoms) + FEAT.dummy_atoms(g.atoms)).double() / 3
        mean_pairs = (0.0 + 0.25 * torch.ones_like(g.links) + FEAT.dummy_links(g.links)).double() / 3
        want = (g.atoms.double() - mean_atoms) @ model.w_atom.detach()
        torch.testing.assert_close(res.atom_feature_values(i), want, rtol=1e-12, atol=1e-12)
        want_pairs = (g.links.double() - mean_pairs) @ model.w_pair.detach()
        torch.testing.assert_close(res.link_values(i), want_pairs, rtol=1e-12, atol=1e-12)


def test_expected_gradients_of_a_network_equal_the_mean_of_separate_runs():
    model = _network()
    b1, b2 = "zeros", {"atoms": 0.3, "pairs": 0.1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        together = explain_molecules(model, SMILES, baselines=[b1, b2], steps=24)
        alone = [explain_molecules(model, SMILES, baselines=b, steps=24) for b in (b1, b2)]
    for name in ("atoms", "pairs"):
        mean = (alone[0].attributions[name] + alone[1].attributions[name]) / 2
        torch.testing.assert_close(together.attributions[name], mean, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(together.forward_baseline,
                               (alone[0].forward_baseline + alone[1].forward_baseline) / 2)
    torch.testing.assert_close(together.forward_x, alone[0].forward_x)
    gaps = torch.tensor(together.meta["baseline_relative_gaps"], dtype=torch.float64)
    torch.testing.assert_close(gaps, torch.stack([a.relative_gap for a in alone], 1), rtol=1e-8, atol=1e-12)


def test_reference_baselines_are_seeded_and_checked():
    model = LinearWeave()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        a = explain_molecules(model, SMILES[:2], featurizer=FEAT, baselines=ReferenceBaselines(REFERENCE, k=3), steps=2)
        b = explain_molecules(model, SMILES[:2], featurizer=FEAT, baselines=ReferenceBaselines(REFERENCE, k=3), steps=2)
        c = explain_molecules(model, SMILES[:2], featurizer=FEAT,
                              baselines=ReferenceBaselines(REFERENCE, k=3, seed=1), steps=2)
    torch.testing.assert_close(a.attributions["atoms"], b.attributions["atoms"], rtol=0, atol=0)
    assert not torch.equal(a.attributions["atoms"], c.attributions["atoms"])
    with pytest.raises(InputError, match="k to be a positive integer"):
        ReferenceBaselines(REFERENCE, k=0)
    with pytest.raises(InputError, match="at least one valid reference molecule"):
        explain_molecules(model, SMILES[:1], featurizer=FEAT, baselines=ReferenceBaselines(["xyz"], k=2), steps=2)
    with pytest.raises(InputError, match="at least one baseline"):
        explain_molecules(model, SMILES[:1], featurizer=FEAT, baselines=[], steps=2)


# ---------------------------------------------------------------------------------------- baseline checks
def test_baseline_on_the_same_side_of_the_threshold_warns_per_input_row():
    """F(zeros) = 5 > 0: every molecule predicted positive is explained against a positive baseline."""
    model = LinearWeave(bias=5.0)
    molecules = ["xyz"] + SMILES
    with pytest.warns(BaselineWarning, match=r"same side of the decision threshold\) for input row\(s\) ") as seen:
        res = explain_molecules(model, molecules, featurizer=FEAT, steps=2, decision_threshold=0.0)
    torch.testing.assert_close(res.forward_baseline, torch.full((4,), 5.0, dtype=torch.float64))
    same_side = [res.rows[i] for i in range(res.n_examples) if float(res.forward_x[i]) > 0]
    assert same_side, "the constructed case needs molecules predicted positive"
    named = str(seen[0].message).split("for input row(s) ")[1].split(":")[0]
    assert named == ", ".join(str(r) for r in same_side)  # input rows (row 0 is the bad SMILES)
    for i in range(res.n_examples):
        warned = res.baseline_warnings[i]
        if float(res.forward_x[i]) > 0:
            assert "F(x') = 5 is above the decision threshold 0" in warned and "neutral_baseline" in warned
            # an element-only featurization has a skeleton baseline to suggest
            assert "try baselines='skeleton' (the molecule's saturated carbon skeleton), " in warned
        else:
            assert "decision threshold" not in warned
    table = res.table("molecule")
    assert [t["baseline_score"] for t in table] == pytest.approx([5.0] * 4)
    assert [t["score"] for t in table] == pytest.approx(res.forward_x.tolist())
    assert [bool(t["baseline_warning"]) for t in table] == [float(f) > 0 for f in res.forward_x]
    frame = res.to_dataframe("atom")
    assert {"row", "attribution", "feature_attribution", "notes"} <= set(frame.columns)
    assert frame["notes"].str.contains("baseline not neutral").any()


def test_neutral_baseline_gives_no_warning():
    model = LinearWeave(bias=-40.0)  # F(zeros) far below 0, every molecule above it or below
    with warnings.catch_warnings():
        warnings.simplefilter("error", BaselineWarning)
        res = explain_molecules(model, SMILES, featurizer=FEAT, steps=2, decision_threshold=None)
    assert res.baseline_warnings == [""] * 4


def test_cancelling_attributions_are_said():
    """A baseline that is the molecule with its atoms permuted: F(x) = F(x') for a linear model, while
    the atoms' attributions are large."""
    model = LinearWeave()
    graph = FEAT("CC(=O)Nc1ccc(O)cc1")
    shuffled = graph.atoms[torch.randperm(graph.n_atoms, generator=torch.Generator().manual_seed(0))]
    assert not torch.equal(shuffled, graph.atoms)
    with pytest.warns(BaselineWarning, match=r"F\(x\) close to F\(x'\)\) for input row\(s\) 0"):
        res = explain_molecules(model, ["CC(=O)Nc1ccc(O)cc1"], featurizer=FEAT, steps=2,
                                baselines={"atoms": shuffled.double(), "pairs": graph.links.double()})
    assert abs(float(res.delta[0])) < 1e-12 and float(res.attributions["atoms"].abs().sum()) > 1
    assert "is small against the attributions' scale" in res.baseline_warnings[0]


def test_dummy_baseline_the_model_cannot_tell_from_zeros_is_detected():
    blind = LinearWeave()
    with torch.no_grad():  # no weight on the dummy columns: dummy == zeros for this model
        blind.w_atom[FEAT.atom_feature_names.index("element=other")] = 0
        blind.w_pair[FEAT.pair_feature_names.index("bond=other")] = 0
        for k, name in enumerate(FEAT.pair_feature_names):
            if name.startswith("distance="):
                blind.w_pair[k] = 0
    with pytest.warns(BaselineWarning, match="dummy indistinguishable from zeros"):
        res = explain_molecules(blind, SMILES[:2], featurizer=FEAT, steps=2, baselines="dummy")
    assert all("cannot tell the dummy baseline from zeros" in w for w in res.baseline_warnings)
    assert res.meta["zeros_score"] == pytest.approx(res.forward_baseline.tolist())

    seeing = LinearWeave()  # the same model with weight on the dummy columns: no such note
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        res = explain_molecules(seeing, SMILES[:2], featurizer=FEAT, steps=2, baselines="dummy")
    assert not any("dummy" in str(w.message) for w in seen)
    assert not any("dummy" in w for w in res.baseline_warnings)


def test_mean_baseline_is_per_molecule_and_unknown_names_are_refused():
    model = _network()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        together = explain_molecules(model, SMILES, baselines="mean", steps=8)
        alone = explain_molecules(model, SMILES[1:2], baselines="mean", steps=8)
    torch.testing.assert_close(together.atom_values(1), alone.atom_values(0), rtol=1e-10, atol=1e-12)
    g = FEAT(SMILES[1])
    torch.testing.assert_close(together.baselines["atoms"][together.segments["atoms"] == 1],
                               g.atoms.double().mean(0).expand(g.n_atoms, -1))
    with pytest.raises(InputError, match=r"baselines among \['zeros', 'dummy', 'skeleton', 'mean'\]"):
        explain_molecules(model, SMILES, baselines="uniform", steps=8)


# ---------------------------------------------------------------------------------------- neutral baseline
def test_neutral_baseline_finds_a_baseline_at_the_threshold():
    model = LinearWeave(bias=3.0)
    found = neutral_baseline(model, SMILES, featurizer=FEAT, threshold=0.0)
    assert isinstance(found, NeutralBaseline) and found.threshold == 0.0
    assert found.distance[found.name] == min(found.distance.values())
    assert found.distance["zeros"] == pytest.approx(3.0)
    assert found.distance[found.name] < 0.5 * found.distance["zeros"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        res = explain_molecules(model, SMILES, featurizer=FEAT, steps=2, baselines=found.baselines)
    assert float(res.forward_baseline.mean()) == pytest.approx(float(torch.tensor(found.scores[found.name], dtype=torch.float64).mean()),
                                                                abs=1e-9)
    assert float(res.forward_baseline.mean().abs()) < 0.5 * 3.0
    assert "nearest the decision threshold" in found.summary() and found.crossed
    assert "only the nearest" not in found.summary()
    # the carbon skeleton is one of the options searched, scored like the model scores it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        skeleton = explain_molecules(model, SMILES, featurizer=FEAT, steps=2, baselines="skeleton")
    torch.testing.assert_close(torch.tensor(found.scores["skeleton"], dtype=torch.float64),
                               skeleton.forward_baseline.double(), rtol=1e-9, atol=1e-9)


def test_neutral_baseline_says_when_no_option_crosses_the_threshold():
    model = LinearWeave(bias=-100.0)  # every option scores far below 0
    found = neutral_baseline(model, SMILES, featurizer=FEAT, threshold=0.0)
    assert not found.crossed and "only the nearest" in found.summary()
    assert found.distance[found.name] == min(found.distance.values()) > 50
    # reference molecules of the other class give a candidate above the threshold, and a blend reaches it
    lifted = LinearWeave(bias=-100.0)
    with torch.no_grad():
        lifted.w_atom[FEAT.atom_feature_names.index("element=Cl")] = 200.0
    found = neutral_baseline(lifted, SMILES, featurizer=FEAT, threshold=0.0, reference=["ClC(Cl)(Cl)Cl"])
    assert found.crossed and "reference mean" in found.name
    # the blend is bisected to a mean score at the threshold (per molecule it varies with the atom count)
    assert abs(float(torch.tensor(found.scores[found.name], dtype=torch.float64).mean())) < 1e-3 * 100


def test_per_molecule_neutral_baseline_puts_every_molecule_at_the_threshold():
    model = LinearWeave(bias=3.0)
    found = neutral_baseline(model, SMILES, featurizer=FEAT, threshold=0.0)
    assert found.name.startswith("per molecule (") and found.crossed
    per = torch.tensor(found.scores[found.name], dtype=torch.float64)
    assert float(per.abs().max()) < 1e-4  # 20 bisection steps on weights in [0, 1]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", BaselineWarning)
        res = explain_molecules(model, SMILES, featurizer=FEAT, steps=2, baselines=found.baselines,
                                decision_threshold=0.0)
    assert not any("decision threshold" in str(w.message) for w in seen)  # at the threshold: neutral
    assert not any("decision threshold" in w for w in res.baseline_warnings)
    torch.testing.assert_close(res.forward_baseline, per, rtol=0, atol=1e-12)
    torch.testing.assert_close(res.per_example(), res.forward_x - per, rtol=1e-12, atol=1e-12)
    shared = neutral_baseline(model, SMILES, featurizer=FEAT, threshold=0.0, per_molecule=False)
    assert not shared.name.startswith("per molecule") and shared.distance[shared.name] > found.distance[found.name]


@pytest.mark.parametrize("target", [[0, 1, 0], [[0, 1]] * 3, torch.tensor([1, 0, 1])])
def test_expected_gradients_with_a_target_per_molecule(target):
    model = _network(n_tasks=2)
    smiles = ["CCO", "c1ccccc1", "CC(=O)O"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        together = explain_molecules(model, smiles, target=target, baselines=["zeros", "mean"], steps=8)
        alone = [explain_molecules(model, smiles, target=target, baselines=b, steps=8) for b in ("zeros", "mean")]
    for name in ("atoms", "pairs"):
        mean = (alone[0].attributions[name] + alone[1].attributions[name]) / 2
        torch.testing.assert_close(together.attributions[name], mean, rtol=1e-10, atol=1e-12)


def test_reference_baselines_describe_what_decides_their_draws_and_name_skipped_rows():
    from rdkit import Chem

    from sciattr import Settings

    one = ReferenceBaselines(REFERENCE, k=3)
    assert one.describe() == ReferenceBaselines(list(REFERENCE), k=3).describe()
    # RDKit molecules are described by their canonical SMILES: the same molecules, the same run
    assert ReferenceBaselines([Chem.MolFromSmiles(s) for s in ["CCCC", "OCCO"]]).describe() == \
        ReferenceBaselines([Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in ["CCCC", "OCCO"]]).describe()
    others = {ReferenceBaselines(REFERENCE, k=4).describe(), ReferenceBaselines(REFERENCE, k=3, seed=1).describe(),
              ReferenceBaselines(REFERENCE[:-1], k=3).describe(), ReferenceBaselines(REFERENCE[::-1], k=3).describe()}
    assert one.describe() not in others and len(others) == 4
    assert one.describe().startswith(f"ReferenceBaselines(n={len(REFERENCE)}, sha256=")
    # run manifests describe settings with it (never a truncated repr)
    assert Settings(baselines=one).describe()["baselines"] == one.describe()
    model = LinearWeave()
    bad = ReferenceBaselines([*REFERENCE[:2], "xyz", REFERENCE[2]], k=2)
    with pytest.warns(BaselineWarning, match=r"1 of 4 reference molecules could not be featurized and are not "
                                             r"drawn from \(row 2: expected a valid SMILES; got 'xyz'"):
        explain_molecules(model, SMILES[:1], featurizer=FEAT, baselines=bad, steps=2)
    assert [e["row"] for e in bad.skipped] == [2]


def test_neutral_baseline_refuses_molecules_it_cannot_fit_and_names_bad_reference_rows():
    model = _network()
    with pytest.raises(InputError, match=r"expected every molecule to be featurized \(the baselines fit them in "
                                         r"order\); 1 of 3 could not be \(row 1: expected a valid SMILES"):
        neutral_baseline(model, [SMILES[0], "xyz", SMILES[1]], featurizer=FEAT)
    with pytest.warns(BaselineWarning, match="1 of 3 reference molecules could not be featurized and are left out "
                                             "of the reference mean"):
        neutral_baseline(model, SMILES[:2], featurizer=FEAT, reference=["CCO", "xyz", "CCCC"], threshold=0.0)


# ---------------------------------------------------------------------------------------- skeleton baseline
def test_skeleton_baseline_of_a_linear_model_is_x_minus_the_carbon_skeleton_times_w():
    """The saturated carbon skeleton: every atom a carbon, every bond single, graph distances kept;
    on a linear model IG is exactly (x - skeleton) * w, so carbons get nothing from their own features."""
    from sciattr.chem.adapter import ragged_graphs

    model = LinearWeave()
    res = explain_molecules(model, SMILES, featurizer=FEAT, baselines="skeleton", steps=2)
    data = ragged_graphs(model, [FEAT(s) for s in SMILES]).data
    atom_names, link_names = list(FEAT.atom_feature_names), list(FEAT.link_feature_names)
    skeleton_atoms = torch.zeros_like(data.atoms)
    skeleton_atoms[:, atom_names.index("element=C")] = 1
    skeleton_pairs = torch.zeros_like(data.links)
    bonded = data.links[:, link_names.index("bond=none")] == 0
    skeleton_pairs[bonded, link_names.index("bond=single")] = 1
    skeleton_pairs[~bonded, link_names.index("bond=none")] = 1
    distance = [k for k, n in enumerate(link_names) if n.startswith("distance=")]
    skeleton_pairs[:, distance] = data.links[:, distance]
    torch.testing.assert_close(res.attributions["atoms"], (data.atoms - skeleton_atoms) * model.w_atom.detach(),
                               rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(res.attributions["pairs"], (data.links - skeleton_pairs) * model.w_pair.detach(),
                               rtol=1e-12, atol=1e-12)
    carbons = data.atoms[:, atom_names.index("element=C")] == 1
    assert carbons.any() and float(res.attributions["atoms"][carbons].abs().max()) == 0.0
    assert float(res.relative_gap.max()) < 1e-12
    assert res.meta["baseline"] == "skeleton"


def test_a_skeleton_that_is_not_neutral_suggests_the_others_not_itself():
    model = LinearWeave(bias=50.0)  # every baseline scores far above the threshold
    with pytest.warns(BaselineWarning, match="same side of the decision threshold"):
        res = explain_molecules(model, SMILES[:2], featurizer=FEAT, baselines="skeleton", steps=2,
                                decision_threshold=0.0)
    warned = " ".join(w for row in res.baseline_warnings for w in ([row] if isinstance(row, str) else row))
    assert "try baselines=neutral_baseline(model, molecules).baselines" in warned and "'skeleton'" not in warned


def test_skeleton_rows_of_bond_edges_and_featurizations_without_one():
    from sciattr.chem import PyGFeaturizer, WeaveFeaturizer

    feat = PyGFeaturizer(atoms="simple")
    g = feat("Clc1ccccc1C#N")
    atoms, edges = feat.skeleton_atoms(g.atoms), feat.skeleton_links(g.links)
    names = list(feat.link_feature_names)
    assert torch.equal(atoms.argmax(1), torch.full((g.atoms.shape[0],), feat.atom_feature_names.index("element=C")))
    assert atoms.sum().item() == g.atoms.shape[0]
    # every bond single, not conjugated; ring membership (topology) kept
    assert bool((edges[:, names.index("bond=single")] == 1).all()) and edges[:, names.index("conjugated")].sum() == 0
    assert torch.equal(edges[:, names.index("in_ring")], g.links[:, names.index("in_ring")])
    assert edges[:, names.index("in_ring")].sum() == 12  # the six ring bonds, both directions
    # a featurization without a skeleton is searched without one
    assert "skeleton" not in neutral_baseline(_network_full(), ["CCO", "c1ccccc1"], featurizer=WeaveFeaturizer(),
                                              threshold=0.0).scores
    with pytest.raises(InputError, match=r"expected an element-only atom featurization for baselines='skeleton'.*"
                                         r"WeaveFeaturizer with \d+ more columns"):
        explain_molecules(_network_full(), ["CCO"], featurizer=WeaveFeaturizer(), baselines="skeleton", steps=2)


def _network_full():
    from sciattr.chem import WeaveFeaturizer

    feat = WeaveFeaturizer()
    torch.manual_seed(0)
    return W2N2(feat.n_atom_features, feat.n_pair_features, 1, n_hidden=8, n_atom_hidden=8, n_dense=8).double()
