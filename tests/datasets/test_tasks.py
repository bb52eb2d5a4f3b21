"""SMARTS ground-truth tasks, their true masks and the attribution-AUROC scorer."""

import numpy as np
import pytest
from rdkit import Chem

from sciattr.datasets import (
    TASKS,
    LogicTask,
    SmartsTask,
    attribution_auroc,
    auroc,
    average_ranks,
    build_task,
    get_task,
    load_nci,
    score_attributions,
    spearman,
    task_label_matrix,
)
from sciattr.errors import InputError


def test_positive_counts_on_the_nci_molecules():
    nci = load_nci()
    conjunctions = ("benzene", "halide_carbonyl", "amine_ether_benzene")
    counts = {name: int(build_task(name, nci).labels.sum()) for name in conjunctions}
    assert counts == {"benzene": 2936, "halide_carbonyl": 373, "amine_ether_benzene": 123}
    matrix = task_label_matrix(list(TASKS), nci.subset(range(50)))
    assert matrix.shape == (50, len(TASKS))
    np.testing.assert_array_equal(matrix[:, 0], build_task("benzene", nci.subset(range(50))).labels)


def _mask(n, atoms):
    m = np.zeros(n, dtype=bool)
    m[list(atoms)] = True
    return m


def test_benzene_masks_keep_every_ring():
    naphthalene_toluene = Chem.MolFromSmiles("Cc1ccccc1")
    masks = TASKS["benzene"].true_masks(naphthalene_toluene)
    assert len(masks) == 1
    np.testing.assert_array_equal(masks[0], _mask(7, range(1, 7)))
    biphenyl = Chem.MolFromSmiles("c1ccccc1-c1ccccc1")
    assert sorted(tuple(np.flatnonzero(m)) for m in TASKS["benzene"].true_masks(biphenyl)) == [
        tuple(range(6)), tuple(range(12)), tuple(range(6, 12))]  # either ring, or both
    assert TASKS["benzene"].true_masks(Chem.MolFromSmiles("c1ccncc1")) == []


def test_conjunction_masks_are_unions_of_one_match_per_rule():
    mol = Chem.MolFromSmiles("ClCC(=O)CBr")  # Cl0 C1 C2 O3 C4 Br5
    task = TASKS["halide_carbonyl"]
    assert task.is_positive(mol)
    masks = sorted(tuple(np.flatnonzero(m)) for m in task.true_masks(mol))
    assert masks == [(0, 2, 3), (0, 2, 3, 5), (2, 3, 5)]  # one halide or both, with the carbonyl
    assert not task.is_positive(Chem.MolFromSmiles("ClCCO"))


def test_amine_ether_benzene_rule():
    task = TASKS["amine_ether_benzene"]
    assert task.is_positive(Chem.MolFromSmiles("CCN(CC)CCOc1ccccc1"))
    assert not task.is_positive(Chem.MolFromSmiles("CC(=O)N(C)CCOc1ccccc1"))  # an amide, not an amine
    masks = task.true_masks(Chem.MolFromSmiles("CN(C)CCOc1ccccc1"))
    assert len(masks) == 1
    assert set(np.flatnonzero(masks[0])) == {1, 4, 5, 6, 7, 8, 9, 10, 11}


def test_auroc_values():
    y = np.array([True, True, False, False])
    assert auroc([3.0, 2.0, 1.0, 0.0], y) == 1.0
    assert auroc([0.0, 1.0, 2.0, 3.0], y) == 0.0
    assert auroc([1.0, 1.0, 1.0, 1.0], y) == 0.5
    assert auroc([3.0, 1.0, 2.0, 0.0], y) == 0.75
    assert np.isnan(auroc([1.0, 2.0], [True, True]))


def test_attribution_auroc_takes_the_best_alternative():
    true = [_mask(6, [0, 1]), _mask(6, [4, 5])]
    perfect_for_second = np.array([0.0, 0.1, 0.2, 0.3, 1.0, 2.0])
    assert attribution_auroc(perfect_for_second, true) == 1.0
    assert attribution_auroc(-perfect_for_second, true[1:]) == 0.0
    # its two atoms score below two negatives and tie with the other two: (4 * 0 + 4 * 0.5) / 8
    assert attribution_auroc(-np.array([1.0, 1.0, 0.0, 0.0, 1.0, 1.0]), true[:1]) == 0.25
    assert np.isnan(attribution_auroc([1.0, 2.0], [_mask(2, [0, 1])]))


def test_score_attributions_averages_over_positive_molecules():
    masks = [[_mask(3, [0])], [], [_mask(2, [1])], [_mask(2, [0, 1])]]
    scores = [np.array([5.0, 0.0, 0.0]), np.array([1.0, 2.0]), np.array([1.0, 0.0]), np.array([1.0, 1.0])]
    result = score_attributions(scores, masks)
    assert result.n_scored == 2 and result.n_undefined == 1
    assert result.mean == 0.5  # (1.0 + 0.0) / 2
    assert np.isnan(result.per_molecule[1])
    with pytest.raises(InputError, match="one attribution array per molecule"):
        score_attributions(scores[:2], masks)


def test_rank_helpers():
    np.testing.assert_array_equal(average_ranks([10, 20, 20, 5]), [2.0, 3.5, 3.5, 1.0])
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # d = ranks differences (0, 1, -1, 0): rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_bad_task_names_and_patterns():
    with pytest.raises(InputError, match="task name"):
        get_task("nope")
    with pytest.raises(InputError, match="SMARTS"):
        SmartsTask("bad", "bad", (("x", "[C"),)).is_positive(Chem.MolFromSmiles("C"))


def _atom_sets(task, smiles):
    return sorted(tuple(int(a) for a in np.flatnonzero(m)) for m in task.true_masks(Chem.MolFromSmiles(smiles)))


def test_logic_task_counts_and_formulas():
    assert {name: task.formula for name, task in TASKS.items() if isinstance(task, LogicTask)} == {
        "nitro_or_nitrile": "nitro OR nitrile",
        "halide_not_carbonyl": "halide AND NOT carbonyl",
        "halide_carbonyl_or_nitro": "(halide AND carbonyl) OR nitro",
    }
    nci = load_nci()
    counts = {name: int(build_task(name, nci).labels.sum()) for name in
              ("nitro_or_nitrile", "halide_not_carbonyl", "halide_carbonyl_or_nitro")}
    assert counts == {"nitro_or_nitrile": 683, "halide_not_carbonyl": 572, "halide_carbonyl_or_nitro": 776}


def test_disjunction_masks_are_the_alternatives_present():
    task = TASKS["nitro_or_nitrile"]
    # O0 =N1(+) O2(-) c3 ... c8; C9 # N10: both alternatives present, each its own mask, and both together
    assert _atom_sets(task, "O=[N+]([O-])c1ccc(cc1)C#N") == [(0, 1, 2), (0, 1, 2, 9, 10), (9, 10)]
    assert _atom_sets(task, "O=N(=O)c1ccccc1") == [(0, 1, 2)]  # the pentavalent spelling
    assert _atom_sets(task, "CCC#N") == [(2, 3)]
    assert _atom_sets(task, "CC(=O)N") == [] and not task.is_positive(Chem.MolFromSmiles("CC(=O)N"))
    # two nitro groups: O0 N1 O2 c3 c4 c5 c6 c7 c8 N9 O10 O11 C12
    assert _atom_sets(task, "O=[N+]([O-])c1cc(cc(c1)[N+](=O)[O-])C") == [(0, 1, 2), (0, 1, 2, 9, 10, 11),
                                                                       (9, 10, 11)]


def test_exclusion_masks_hold_only_the_required_atoms():
    task = TASKS["halide_not_carbonyl"]
    assert _atom_sets(task, "ClCCBr") == [(0,), (0, 3), (3,)]
    assert task.is_positive(Chem.MolFromSmiles("Clc1ccccc1O"))
    for carbonyl in ("ClCC(=O)C", "ClCC(=O)O", "O=C1CCC(Cl)CC1"):
        assert not task.is_positive(Chem.MolFromSmiles(carbonyl)) and _atom_sets(task, carbonyl) == []
    assert not task.is_positive(Chem.MolFromSmiles("CCO"))


def test_conjunction_or_single_rule_masks():
    task = TASKS["halide_carbonyl_or_nitro"]
    # O0 =N1(+) O2(-) c3 c4 c5 c6 (Cl7) c8 c9 C10 =O11: nitro, and halide + carbonyl, both present
    assert _atom_sets(task, "O=[N+]([O-])c1ccc(Cl)cc1C=O") == [(0, 1, 2), (0, 1, 2, 7, 10, 11), (7, 10, 11)]
    assert _atom_sets(task, "ClCC(=O)C") == [(0, 2, 3)]
    assert _atom_sets(task, "ClCCO") == []  # halide without carbonyl, no nitro
    assert _atom_sets(task, "CC(=O)C") == []


def test_logic_tasks_reject_unknown_rule_names():
    with pytest.raises(InputError, match="rule names"):
        LogicTask("bad", "bad", (("a", "C"),), (("a", "b"),))
    with pytest.raises(InputError, match="rule names"):
        LogicTask("bad", "bad", (("a", "C"),), (("a",),), excluded=("c",))
    with pytest.raises(InputError, match="rule names"):
        LogicTask("bad", "bad", (("a", "C"),), ())


def test_logic_scoring_takes_the_best_alternative_present():
    task = TASKS["nitro_or_nitrile"]
    mol = Chem.MolFromSmiles("O=[N+]([O-])c1ccc(cc1)C#N")
    scores = np.zeros(mol.GetNumAtoms())
    scores[[9, 10]] = 1.0  # the model found the nitrile, not the nitro group
    assert attribution_auroc(scores, task.true_masks(mol)) == 1.0
    result = score_attributions([scores, np.zeros(3)], [task.true_masks(mol), []])
    assert result.mean == 1.0 and result.n_scored == 1


def test_every_occurrence_is_a_true_mask_first():
    # four benzene rings around a C-N-C core: each ring alone, and all of them, are true masks
    mol = Chem.MolFromSmiles("c1ccc(C(NC(c2ccccc2)c2ccccc2)c2ccccc2)cc1")
    masks = TASKS["benzene"].true_masks(mol)
    rings = [set(m) for m in mol.GetSubstructMatches(Chem.MolFromSmarts("c1ccccc1"))]
    assert len(rings) == 4
    assert set(np.flatnonzero(masks[0])) == set().union(*rings)
    assert sorted(map(frozenset, (np.flatnonzero(m) for m in masks[1:]))) == sorted(map(frozenset, rings))
    # equal scores on symmetric rings (what the symmetry axiom asks of IG) find the substructure
    scores = np.where(masks[0], 1.0, 0.0)
    assert attribution_auroc(scores, masks) == 1.0
    # against one ring only: 6 true atoms tie with the 18 of the other rings and beat the 3 core atoms
    assert attribution_auroc(scores, masks[1:]) == pytest.approx((6 * 3 + 6 * 18 * 0.5) / (6 * 21))


def test_the_cap_keeps_the_all_occurrence_mask():
    task = SmartsTask("two", "halide AND carbonyl", (("halide", "[Cl]"), ("carbonyl", "C=O")), max_alternatives=2)
    mol = Chem.MolFromSmiles("ClCC(=O)CC(Cl)C(=O)CCl")
    masks = task.true_masks(mol)
    assert len(masks) == 2
    every = {0, 6, 10} | {2, 3} | {7, 8}  # the three chlorines and both carbonyls (C2=O3, C7=O8)
    assert set(np.flatnonzero(masks[0])) == every


def test_the_first_mask_is_every_occurrence_on_nci_molecules():
    nci = load_nci()
    checked = 0
    for mol in nci.mols[:600]:
        for task in TASKS.values():
            masks = task.true_masks(mol)
            if not masks:
                continue
            checked += 1
            union = np.logical_or.reduce(masks)
            np.testing.assert_array_equal(masks[0], union)  # the first mask holds every other one
            assert len({m.tobytes() for m in masks}) == len(masks)  # no mask twice
            assert task.is_positive(mol)
    assert checked > 200


def test_rule_evidence_counts_the_contrasts_of_every_rule():
    from rdkit import Chem

    from sciattr.datasets import rule_evidence

    smiles = ["ClCC=O", "ClCC", "CC=O", "C[N+](=O)[O-]", "CC", "ClC(=O)C[N+](=O)[O-]"]
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    # (halide AND carbonyl) OR nitro: 'CC=O' lacks only the halide, 'ClCC' only the carbonyl; every
    # negative ('ClCC', 'CC=O', 'CC') lacks the nitro group of the one-rule clause
    assert rule_evidence("halide_carbonyl_or_nitro", mols) == [
        {"clause": "halide AND carbonyl", "rule": "halide", "kind": "required", "contrasts": 1, "positives": 3},
        {"clause": "halide AND carbonyl", "rule": "carbonyl", "kind": "required", "contrasts": 1, "positives": 3},
        {"clause": "nitro", "rule": "nitro", "kind": "required", "contrasts": 3, "positives": 3}]
    # halide AND NOT carbonyl: the exclusion is shown by the molecules with both (two of them here)
    evidence = rule_evidence(TASKS["halide_not_carbonyl"], mols)
    assert [(e["rule"], e["kind"], e["contrasts"], e["positives"]) for e in evidence] == [
        ("halide", "required", 3, 1), ("carbonyl", "excluded", 2, 1)]
    # a conjunction (SmartsTask) counts per rule; a MoleculeSet works as a list of molecules
    from sciattr.datasets import load_nci

    nci = load_nci(limit=300)
    by_list = rule_evidence("amine_ether_benzene", list(nci.mols))
    assert by_list == rule_evidence("amine_ether_benzene", nci)
    task = TASKS["amine_ether_benzene"]
    matched = [task.rule_matches(m) for m in nci.mols]
    for e, k in zip(by_list, range(3)):
        others = [j for j in range(3) if j != k]
        assert e["contrasts"] == sum(1 for m in matched if not m[k] and all(m[j] for j in others))
        assert e["positives"] == sum(1 for m in matched if all(m))
