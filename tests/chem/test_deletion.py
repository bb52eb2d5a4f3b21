"""deletion_check: the group's attribution next to the score without the group, against a linear
oracle (both sides in closed form), the decision logic, rows it cannot make, and bad input."""

import math
import warnings

import pytest
import torch
from torch import nn

from sciattr.chem import SimpleWeaveFeaturizer, explain_molecules
from sciattr.chem.deletion import DeletionCheck, DeletionReport, deletion_check
from sciattr.chem.featurize import collate
from sciattr.errors import BaselineWarning, InputError

FEAT = SimpleWeaveFeaturizer()


class Linear(nn.Module):
    """F = 0.5 + sum_atoms w_a . atom + sum_pairs w_p . pair, one output column."""

    def __init__(self, seed=3):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.w_atom = nn.Parameter(torch.randn(FEAT.n_atom_features, generator=gen, dtype=torch.float64))
        self.w_pair = nn.Parameter(torch.randn(FEAT.n_pair_features, generator=gen, dtype=torch.float64))

    def forward(self, atoms, pairs, pair_index, atom_batch, n_molecules):
        out = atoms.new_full((n_molecules,), 0.5).index_add(0, atom_batch, atoms @ self.w_atom)
        return out.index_add(0, atom_batch[pair_index[0]], pairs @ self.w_pair)[:, None]


def _explain(model, smiles):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        return explain_molecules(model, smiles, featurizer=FEAT, steps=2, target=0)


def _score(model, smiles):
    g = FEAT(smiles)
    b = collate([g]).to(dtype=torch.float64)
    return float(model(b.atoms, b.links, b.link_index, b.atom_batch, 1)[0, 0].detach())


def test_linear_oracle_of_a_terminal_group():
    model = Linear()
    res = _explain(model, ["CCCl", "CCO"])
    report = deletion_check(model, res, "[Cl]", featurizer=FEAT)
    assert report.skipped == [1] and len(report.checks) == 1
    check = report.checks[0]
    assert check.atoms == (2,) and check.deleted_smiles == "CC" and check.note == ""
    g = FEAT("CCCl")
    w_a, w_p = model.w_atom.detach(), model.w_pair.detach()
    # the attribution: the chlorine's own features plus half of each of its pairs (C1-Cl at 1, C0-Cl at 2)
    touching = (g.link_index == 2).any(0)
    oracle = float(g.atoms[2].double() @ w_a + 0.5 * (g.links[touching].double() @ w_p).sum())
    assert check.attribution == pytest.approx(oracle, rel=1e-12)
    # the deletion: the whole chlorine with both of its pairs, the rest (C0, C1 and their pair) unchanged
    assert check.score == pytest.approx(_score(model, "CCCl"), rel=1e-12)
    assert check.deleted_score == pytest.approx(_score(model, "CC"), rel=1e-12)
    whole = float(g.atoms[2].double() @ w_a + (g.links[touching].double() @ w_p).sum())
    assert check.drop == pytest.approx(whole, rel=1e-10)
    # several groups at once: the same reports, keyed by label
    both = deletion_check(model, res, {"chlorine": "[Cl]", "hydroxyl": "[OX2H]"}, featurizer=FEAT)
    assert both["chlorine"].checks == [check] and both["chlorine"].pattern == "chlorine"
    assert [c.molecule for c in both["hydroxyl"].checks] == [1] and both["hydroxyl"].skipped == [0]


def test_every_match_is_deleted_and_a_split_molecule_is_scored_whole():
    model = Linear()
    res = _explain(model, ["ClCCCl", "CCOCC"])
    both = deletion_check(model, res, "[Cl]", featurizer=FEAT).checks[0]
    assert both.atoms == (0, 3) and both.deleted_smiles == "CC"
    split = deletion_check(model, res, "[OX2]", featurizer=FEAT).checks[0]
    assert split.deleted_smiles == "CC.CC" and "2 fragments" in split.note
    assert split.deleted_score == pytest.approx(_score_all(model, "CC.CC"), rel=1e-12)


def _score_all(model, smiles):
    from dataclasses import replace

    g = replace(FEAT, fragments="all")(smiles)
    b = collate([g]).to(dtype=torch.float64)
    return float(model(b.atoms, b.links, b.link_index, b.atom_batch, 1)[0, 0].detach())


def test_rows_that_cannot_be_made_are_kept_with_a_note_and_rings_open_into_chains():
    model = Linear()
    res = _explain(model, ["CCl", "c1ccncc1", "CCCl"])
    whole = deletion_check(model, res, "[C,Cl]", featurizer=FEAT)
    assert [c.molecule for c in whole.checks] == [0, 2]  # pyridine has no aliphatic C or Cl
    assert math.isnan(whole.checks[0].deleted_score) and "whole molecule" in whole.checks[0].note
    assert whole.failed == whole.checks and not whole.checks[0].agrees  # CCCl is all C and Cl too
    assert "2 could not be made without the group" in whole.summary()
    # what is left of an aromatic ring is a chain of single and double bonds, scored as such
    ring = deletion_check(model, res, "n", featurizer=FEAT).checks[0]
    assert ring.molecule == 1 and ring.deleted_smiles == "C=CC=CC" and ring.note == ""
    assert ring.deleted_score == pytest.approx(_score(model, "C=CC=CC"), rel=1e-12)


def _check(attribution, score, deleted):
    return DeletionCheck(molecule=0, row=0, atoms=(0,), attribution=attribution, score=score, deleted_score=deleted,
                         deleted_smiles="C")


def test_needed_and_missed_follow_the_threshold():
    checks = [_check(-0.5, 2.0, -1.0),   # needed, credited with less than nothing: missed
              _check(1.5, 2.0, -1.0),    # needed and credited
              _check(0.2, 2.0, 1.0),     # the decision stays: not needed
              _check(0.0, -1.0, -3.0),   # already below the threshold: not needed
              _check(0.3, 1.0, math.nan)]
    report = DeletionReport(pattern="[Cl]", checks=checks, threshold=0.0)
    assert report.needed == checks[:2] and report.missed == checks[:1] and report.failed == checks[4:]
    assert [c.agrees for c in checks] == [False, True, True, False, False]
    assert "flips the decision (threshold 0) in 2; of those the attribution credits it with <= 0 in 1" in \
        report.summary()
    assert DeletionReport(pattern="[Cl]", checks=checks, threshold=None).needed == []
    frame = report.to_dataframe()
    assert frame["drop"].tolist()[:4] == [3.0, 3.0, 1.0, 2.0]


def test_bad_input_is_reported():
    model = Linear()
    res = _explain(model, ["CCCl"])
    with pytest.raises(InputError, match="expected a MoleculeAttribution"):
        deletion_check(model, {"not": "a result"}, "[Cl]")
    with pytest.raises(InputError, match=r"expected a valid SMARTS pattern; got 'C1\('"):
        deletion_check(model, res, "C1(", featurizer=FEAT)
    with pytest.raises(InputError, match=r"expected a valid SMARTS pattern for 'bad'; got 'C1\('"):
        deletion_check(model, res, {"ok": "[Cl]", "bad": "C1("}, featurizer=FEAT)
    with pytest.raises(InputError, match="expected the model that the result explains"):
        deletion_check(Linear(seed=4), res, "[Cl]", featurizer=FEAT)
    with pytest.raises(InputError, match=r"expected target to be an output index in \[0, 0\]"):
        deletion_check(model, res, "[Cl]", featurizer=FEAT, target=3)


class TwoOutputs(Linear):
    def forward(self, *args):
        f = super().forward(*args)
        return torch.cat([f, 1.0 - 2.0 * f], 1)


def test_the_explained_output_of_a_model_with_several():
    model = TwoOutputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        second = explain_molecules(model, ["CCCl"], featurizer=FEAT, steps=2, target=1)
        both = explain_molecules(model, ["CCCl"], featurizer=FEAT, steps=2, target="all")
    one = deletion_check(model, second, "[Cl]", featurizer=FEAT, target=1).checks[0]
    assert one.deleted_score == pytest.approx(1.0 - 2.0 * _score(Linear(), "CC"), rel=1e-12)
    assert one.drop == pytest.approx(-2.0 * deletion_check(Linear(), _explain(Linear(), ["CCCl"]), "[Cl]",
                                                           featurizer=FEAT).checks[0].drop, rel=1e-10)
    assert deletion_check(model, both, "[Cl]", featurizer=FEAT, target=1).checks[0] == one
    with pytest.raises(InputError, match="expected target= .* for a model with 2 outputs; got None"):
        deletion_check(model, second, "[Cl]", featurizer=FEAT)


class Penalty(nn.Module):
    """F = 2 c - 4 relu(c - 2 h) - 1 with c the molecule's oxygen count and h its chlorine count:
    "oxygen, minus a penalty when there is no chlorine". Along the path from zeros c and h grow
    together, the penalty never turns on, and the chlorine gets exactly 0 -- though without it
    ClCC=O falls from F = 1 to F = -3."""

    def forward(self, atoms, pairs, pair_index, atom_batch, n_molecules):
        per_atom = torch.stack([atoms[:, 4], atoms[:, 9]], 1)  # element=O, element=Cl
        c, h = atoms.new_zeros((n_molecules, 2)).index_add(0, atom_batch, per_atom).unbind(1)
        return (2 * c - 4 * torch.relu(c - 2 * h) - 1)[:, None] + 0 * pairs.sum()


def test_every_classifier_result_says_where_a_deciding_group_is_credited_against_it():
    model = Penalty().double()
    molecules = ["ClCC=O", "ClCCl", "CC=O", "OCC(Cl)C=O"]
    with pytest.warns(BaselineWarning, match=r"baseline hides a group for input row\(s\) 0, 3: the halogen \(input "
                                             r"atoms 0\) decides the prediction -- without it F falls from 1 to -3"):
        res = explain_molecules(model, molecules, featurizer=FEAT, steps=4, decision_threshold=0.0)
    zeros_cl = res.atom_feature_values(0)[0]
    assert float(zeros_cl) == 0.0  # the oracle: the chlorine's features get nothing from zeros
    note = res.baseline_warnings[0]
    assert note.startswith("the halogen (input atoms 0) decides the prediction") and "attribution is +0" in note
    assert "try baselines='skeleton'" in note
    # ClCCl (no oxygen) and CC=O (no chlorine): no group decides (their baseline is on their side, said apart)
    assert all("decides" not in res.baseline_warnings[i] and "baseline not neutral" in res.baseline_warnings[i]
               for i in (1, 2))
    assert "the halogen (input atoms 3)" in res.baseline_warnings[3]  # OCC(Cl)C=O: c = 2, h = 1
    assert res.meta["group_check"].startswith("run on halogen, nitro group")
    assert "the halogen" in res.to_dataframe("molecule")["notes"][0]
    # the oxygen that decides too is credited in its direction: no note for the carbonyl of row 0
    assert "carbonyl" not in note
    quiet = explain_molecules(model, molecules, featurizer=FEAT, steps=4, decision_threshold=0.0, group_check=False)
    assert quiet.baseline_warnings[0] == "" and "group_check" not in quiet.meta
    regression = explain_molecules(model, molecules, featurizer=FEAT, steps=4, decision_threshold=None)
    assert regression.baseline_warnings[0] == "" and regression.meta["group_check"] == "not run: no decision threshold"
    with pytest.raises(InputError, match="expected group_check=True or False; got"):
        explain_molecules(model, molecules, featurizer=FEAT, steps=4, decision_threshold=0.0, group_check="yes")


def test_the_readme_quotes_the_note_of_a_shipped_model():
    from pathlib import Path

    from sciattr.zoo import load_model

    with pytest.warns(BaselineWarning, match="baseline hides a group for input row"):
        res = explain_molecules(load_model("gcn-halide_carbonyl"), ["O=C(CCl)Nc1ccccc1"], steps=64,
                                rule="gausslegendre")
    note = res.baseline_warnings[0]
    quoted = note[:note.index("try baselines='skeleton'") + len("try baselines='skeleton'")]
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    assert f'"{quoted} ...")' in readme
