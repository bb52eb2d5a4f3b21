"""Shipped chemistry models load strictly: weights that do not match the card's architecture are
refused with their names, never loaded partly into a randomly initialised model."""

import json

import pytest

from sciattr.errors import InputError

safetensors = pytest.importorskip("safetensors.torch")
zoo = pytest.importorskip("sciattr.zoo")


def _copy(tmp_path, edit):
    state = safetensors.load_file(str(zoo.ZOO_DIR / "w2n2-benzene.safetensors"))
    state = edit(dict(state))
    (tmp_path / "m.json").write_text(json.dumps(zoo.model_card("w2n2-benzene")))
    safetensors.save_file(state, str(tmp_path / "m.safetensors"))
    return tmp_path / "m.json"


def test_exact_weights_load(tmp_path):
    model = zoo.load_model(_copy(tmp_path, lambda s: s))
    assert model.card["name"] == "w2n2-benzene" and not model.training


def test_renamed_weights_are_named(tmp_path):
    def rename(state):
        key = min(state)
        state["renamed." + key] = state.pop(key)
        return state

    key = min(safetensors.load_file(str(zoo.ZOO_DIR / "w2n2-benzene.safetensors")))
    with pytest.raises(InputError, match=rf"missing \['{key}'\], unexpected \['renamed.{key}'\]"):
        zoo.load_model(_copy(tmp_path, rename))


def test_wrongly_shaped_weights_are_named(tmp_path):
    def shrink(state):
        key = min(state)
        state[key] = state[key][..., :1].contiguous()
        return state

    with pytest.raises(InputError, match=r"wrong shapes \['.+ \(.+\) \(expected \(.+\)\)'\]"):
        zoo.load_model(_copy(tmp_path, shrink))


def test_cards_are_read_by_chemistry_without_the_zoo():
    from sciattr.chem.architectures import build_model
    from sciattr.chem.featurize import SimpleWeaveFeaturizer, featurizer_from_spec

    card = zoo.model_card("w2n2-benzene")
    feat = featurizer_from_spec(card["featurizer"])
    assert isinstance(feat, SimpleWeaveFeaturizer) and feat.n_atom_features == card["config"]["n_atom_features"]
    model = build_model(card["architecture"], card["config"], members=len(card["ensemble"]["seeds"]))
    assert sorted(model.state_dict()) == sorted(zoo.load_model("w2n2-benzene").state_dict())
    with pytest.raises(InputError, match=r"expected architecture among \['W1N2', 'W2N2', 'GINENetwork'\]; got 'MLP'"):
        build_model("MLP", {})
    with pytest.raises(InputError, match=r"expected 'n_tasks' in the W2N2 configuration"):
        build_model("W2N2", {"n_atom_features": 3, "n_pair_features": 2})
    with pytest.raises(InputError, match=r"expected a featurizer class among"):
        featurizer_from_spec({"class": "Morgan"})


def test_member_names_are_parsed_only_where_they_name_a_member(tmp_path):
    from sciattr.zoo import _member_of

    assert _member_of("gcn-benzene:2") == ("gcn-benzene", 2)
    assert _member_of("run:1/w.json:0") == ("run:1/w.json", 0)  # a card path with a colon in it
    for text in ("gcn-benzene", "gcn-benzene:", "gcn-benzene:x", "C:/models/m.json", "w3n2-benzene:1", ":1"):
        assert _member_of(text) == (text, None), text
    copied = _copy(tmp_path, lambda s: s)  # a single-network card: no members to pick
    single = json.loads(copied.read_text())
    single.pop("ensemble", None)
    copied.write_text(json.dumps(single))
    with pytest.raises(InputError, match="only for an ensemble"):
        zoo.load_model(f"{copied}:0")


def test_ensemble_seeds_read_from_a_card():
    assert zoo.ensemble_seeds(zoo.model_card("gcn-benzene")) == [0, 1, 2]
    assert zoo.ensemble_seeds(zoo.model_card("w2n2-chembl2321810")) is None  # one network
    for card in ({}, {"ensemble": "3"}, {"ensemble": {"seeds": []}}, {"ensemble": {}}):
        assert zoo.ensemble_seeds(card) is None, card
