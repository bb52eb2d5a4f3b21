"""SMARTS ground-truth tasks, their true masks and the attribution-AUROC scorer."""

import numpy as np
import pytest
from rdkit import Chem

from sciattr.datasets import (
    TASKS,
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
    counts = {name: int(build_task(name, nci).labels.sum()) for name in TASKS}
    assert counts == {"benzene": 2936, "halide_carbonyl": 373, "amine_ether_benzene": 123}
    matrix = task_label_matrix(list(TASKS), nci.subset(range(50)))
    assert matrix.shape == (50, 3)
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
        tuple(range(6)), tuple(range(6, 12))]
    assert TASKS["benzene"].true_masks(Chem.MolFromSmiles("c1ccncc1")) == []


def test_conjunction_masks_are_unions_of_one_match_per_rule():
    mol = Chem.MolFromSmiles("ClCC(=O)CBr")  # Cl0 C1 C2 O3 C4 Br5
    task = TASKS["halide_carbonyl"]
    assert task.is_positive(mol)
    masks = sorted(tuple(np.flatnonzero(m)) for m in task.true_masks(mol))
    assert masks == [(0, 2, 3), (2, 3, 5)]
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
