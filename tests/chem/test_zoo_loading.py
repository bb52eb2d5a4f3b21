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
