"""The shipped chemistry models: cards, weights, reproduced test metrics and complete attributions."""

import hashlib
import json

import numpy as np
import pytest
import torch

from sciattr.chem.adapter import explain_molecules
from sciattr.chem.featurize import featurize_batch
from sciattr.datasets import TASKS, load_chembl2321810, load_nci, split_indices
from sciattr.errors import InputError
from sciattr.zoo import ZOO_DIR, available_models, load_featurizer, load_model, model_card
from sciattr.zoo.train_chem import classification_metrics, predict, regression_metrics

CLASSIFIERS = [f"{arch}-{task}" for arch in ("w1n2", "w2n2", "gcn") for task in TASKS]
REGRESSION = "w2n2-chembl2321810"
POSITIVES = {
    "benzene": ["CC(=O)Oc1ccccc1C(=O)O", "c1ccc2ccccc2c1", "CCOc1ccccc1"],
    "halide_carbonyl": ["ClCC(=O)Nc1ccccc1", "O=C(O)c1ccc(Br)cc1", "CC(=O)CCl"],
    "amine_ether_benzene": ["CCN(CC)CCOc1ccccc1", "CN(C)CCOc1ccc(Cl)cc1", "COc1ccc(CCN)cc1"],
}


def test_every_model_is_shipped_with_a_card():
    assert available_models() == sorted(CLASSIFIERS + [REGRESSION])
    for name in available_models():
        card = model_card(name)
        weights = ZOO_DIR / f"{name}.safetensors"
        assert weights.stat().st_size < 5 * 2**20
        assert hashlib.sha256(weights.read_bytes()).hexdigest() == card["weights_sha256"]
        assert card["seed"] == 0 and card["data"]["split"]["fractions"] == [0.8, 0.1, 0.1]
    assert (ZOO_DIR / "RESULTS.md").is_file()


def test_w1n2_and_w2n2_share_data_and_settings():
    for task in TASKS:
        w1, w2 = model_card(f"w1n2-{task}"), model_card(f"w2n2-{task}")
        assert w1["featurizer"] == w2["featurizer"] == {"class": "SimpleWeaveFeaturizer", "max_distance": 2}
        assert w1["data"] == w2["data"] and w1["training"] == w2["training"]
        assert (w1["architecture"], w2["architecture"]) == ("W1N2", "W2N2")


@pytest.fixture(scope="module")
def nci_test_split():
    nci = load_nci()
    test = split_indices(len(nci), (0.8, 0.1, 0.1), seed=0)[2]
    return [nci.mols[i] for i in test]


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifiers_reproduce_their_recorded_test_metrics(name, nci_test_split):
    model = load_model(name)
    assert not model.training
    graphs, _, errors = featurize_batch(load_featurizer(model), nci_test_split)
    assert not errors
    task = TASKS[model.card["task"]["name"]]
    labels = np.array([float(task.is_positive(g.mol)) for g in graphs])
    metrics = classification_metrics(predict(model, graphs), labels)
    recorded = model.card["test"]
    assert metrics["n_positive"] == recorded["n_positive"]
    assert metrics["accuracy"] == pytest.approx(recorded["accuracy"], abs=1e-9)
    assert metrics["roc_auc"] == pytest.approx(recorded["roc_auc"], abs=1e-6)
    assert recorded["roc_auc"] > 0.9


def test_regression_reproduces_its_recorded_test_metrics():
    series = load_chembl2321810()
    test = split_indices(len(series), (0.8, 0.1, 0.1), seed=0)[2]
    model = load_model(REGRESSION)
    graphs, _, _ = featurize_batch(load_featurizer(model), [series.mols[i] for i in test])
    metrics = regression_metrics(predict(model, graphs), series.values[test])
    assert metrics["rmse"] == pytest.approx(model.card["test"]["rmse"], rel=1e-5)
    assert metrics["r2"] > 0.4


@pytest.mark.parametrize("name", CLASSIFIERS + [REGRESSION])
def test_attributions_of_shipped_models_are_complete_within_one_percent(name):
    model = load_model(name)
    task = model.card["task"]["name"]
    smiles = POSITIVES.get(task) or load_chembl2321810().smiles[:3]
    result = explain_molecules(model, smiles, featurizer=load_featurizer(model), steps=256)  # ReLU kinks
    assert not result.errors
    assert float(result.relative_gap.max()) < 0.01
    assert result.delta.abs().min() > 0.5  # a real change of the score, not a cancellation


def test_loading_by_path_and_unknown_names(tmp_path):
    by_path = load_model(ZOO_DIR / "gcn-benzene.safetensors")
    by_name = load_model("gcn-benzene")
    for (k, a), (_, b) in zip(by_path.state_dict().items(), by_name.state_dict().items()):
        assert torch.equal(a, b), k
    with pytest.raises(InputError, match="w2n2-benzene"):
        load_model("w3n2-benzene")
    card = tmp_path / "broken.json"
    card.write_text(json.dumps({**model_card("gcn-benzene"), "architecture": "Transformer"}))
    (tmp_path / "broken.safetensors").write_bytes((ZOO_DIR / "gcn-benzene.safetensors").read_bytes())
    with pytest.raises(InputError, match="architecture"):
        load_model(card)
