"""Small trained chemistry models that ship with sciattr, and their cards.

Every model lives in ``sciattr/zoo/chem/`` as ``<name>.safetensors`` (float32 weights) and
``<name>.json`` (its card: task, featurizer, architecture configuration, data split, seeds and
test metrics). They were made by the seeded script :mod:`sciattr.zoo.train_chem`. Every shipped
classifier is a seed ensemble (:class:`~sciattr.chem.architectures.MeanEnsemble`: the mean of the
logits of three models of one architecture trained from seeds 0, 1 and 2; its integrated gradients
are the mean of theirs); ``load_model(name, member=k)`` gives one of them.

Names are ``<architecture>-<task>``: architectures ``w1n2``, ``w2n2`` (Weave, Kearnes et al. 2016,
on the "simple" featurization) and ``gcn`` (:class:`~sciattr.chem.gnn.GINENetwork`); tasks the
SMARTS ground-truth tasks of :mod:`sciattr.datasets.tasks` over the NCI molecules
(``benzene``, ``halide_carbonyl``, ``amine_ether_benzene``, ``nitro_or_nitrile``,
``halide_not_carbonyl``, ``halide_carbonyl_or_nitro``), one single-output classifier
(logit) per task, plus ``w2n2-chembl2321810``, a pIC50 regression on the CHEMBL2321810 series.

Example
-------
>>> from sciattr.zoo import load_model, load_featurizer
>>> model = load_model("w2n2-benzene")
>>> model.card["task"]["name"]
'benzene'
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from sciattr.errors import InputError, require

__all__ = [
    "ZOO_DIR",
    "available_models",
    "build_model",
    "ensemble_seeds",
    "load_featurizer",
    "load_lstm_lm",
    "load_model",
    "load_text_model",
    "load_topic_classifier",
    "make_featurizer",
    "model_card",
]

#: Folder of the shipped chemistry models.
ZOO_DIR = Path(__file__).resolve().parent / "chem"


def available_models() -> list[str]:
    """Names of the shipped chemistry models (those with both a card and weights)."""
    return sorted(p.stem for p in ZOO_DIR.glob("*.json") if p.with_suffix(".safetensors").is_file())


def ensemble_seeds(card: dict) -> list[int] | None:
    """The seeds of the networks a card's ensemble averages (``card["ensemble"]["seeds"]``), or
    ``None`` for a card of one network."""
    ensemble = card.get("ensemble")
    seeds = ensemble.get("seeds") if isinstance(ensemble, dict) else None
    return list(seeds) if isinstance(seeds, list) and seeds else None


def _member_of(name_or_path: str | os.PathLike) -> tuple[str | os.PathLike, int | None]:
    """``"gcn-benzene:1"`` -> ``("gcn-benzene", 1)``: a name (or card path) with one ensemble member."""
    text = os.fspath(name_or_path)
    head, sep, tail = text.rpartition(":")
    if sep and tail.isdigit() and head and (head in available_models() or Path(head).suffix in (".json",
                                                                                               ".safetensors")):
        return head, int(tail)
    return name_or_path, None


def _card_path(name_or_path: str | os.PathLike) -> Path:
    text = os.fspath(name_or_path)
    if text in available_models():
        return ZOO_DIR / f"{text}.json"
    path = Path(text)
    if path.suffix in (".json", ".safetensors") and path.with_suffix(".json").is_file() \
            and path.with_suffix(".safetensors").is_file():
        return path.with_suffix(".json")
    raise InputError(f"expected a shipped model name among {available_models()} ('name:k' for member k of its "
                     f"ensemble) or a path to a card (.json) with its .safetensors beside it; got {text!r}")


def model_card(name_or_path: str | os.PathLike) -> dict:
    """The card (a dict) of a shipped model, or of a card/weights path (for ``"<name>:k"``, the card
    of the ensemble; ``load_model("<name>:k").card`` is the member's own)."""
    return json.loads(_card_path(_member_of(name_or_path)[0]).read_text())


def build_model(architecture: str, config: dict, members: int | None = None) -> torch.nn.Module:
    """An untrained model of ``architecture`` (``"W1N2"``, ``"W2N2"`` or ``"GINENetwork"``;
    ``members=n``: a mean ensemble of ``n``; :func:`sciattr.chem.architectures.build_model`)."""
    from sciattr.chem.architectures import build_model as build

    return build(architecture, config, members=members)


def make_featurizer(spec: dict):
    """The featurizer a card describes, e.g. ``{"class": "SimpleWeaveFeaturizer", "max_distance": 2}``
    (:func:`sciattr.chem.featurize.featurizer_from_spec`)."""
    from sciattr.chem.featurize import featurizer_from_spec

    return featurizer_from_spec(spec)


def load_model(name_or_path: str | os.PathLike, member: int | None = None) -> torch.nn.Module:
    """A shipped (or saved) model in eval mode, float32 on the CPU, with its card as ``model.card``.

    A card with an ``"ensemble"`` entry (every shipped classifier) describes a
    :class:`~sciattr.chem.architectures.MeanEnsemble`: the mean of the logits of the same
    architecture trained from the seeds it lists. ``member=k`` loads the ``k``-th of them alone
    (seed ``card["ensemble"]["seeds"][k]``), with a card whose ``test`` and ``attribution`` are
    that member's own measurements; so does the name ``"<name>:k"`` (e.g. ``"gcn-benzene:0"``),
    which works wherever a model name is taken (command line, runner, benchmarks)."""
    safetensors = require("safetensors.torch", "chem")
    name_or_path, named_member = _member_of(name_or_path)
    if named_member is not None:
        if member is not None and member != named_member:
            raise InputError(f"expected one member; got {os.fspath(name_or_path)}:{named_member} and "
                             f"member={member!r}")
        member = named_member
    card_path = _card_path(name_or_path)
    card = json.loads(card_path.read_text())
    seeds = ensemble_seeds(card)
    weights = card_path.with_suffix(".safetensors")
    state = safetensors.load_file(str(weights))
    if member is not None:
        if seeds is None:
            raise InputError(f"expected member= only for an ensemble's card; {card_path.name} describes one "
                             f"{card['architecture']}")
        if isinstance(member, bool) or not isinstance(member, int) or not 0 <= member < len(seeds):
            raise InputError(f"expected member= an int in 0..{len(seeds) - 1} ({len(seeds)} members, seeds "
                             f"{seeds}); got {member!r}")
        prefix = f"members.{member}."
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        own_record: dict = next((m for m in card.get("members", []) if m.get("seed") == seeds[member]), {})
        card = {**{k: v for k, v in card.items() if k not in ("ensemble", "replicates", "members")},
                "name": f"{card['name']}:{member}",
                "member": {"index": member, "seed": seeds[member], "of": card["name"]},
                **{k: own_record[k] for k in ("test", "attribution", "cpu_seconds") if k in own_record}}
        seeds = None
    model = build_model(card["architecture"], card["config"], members=None if seeds is None else len(seeds))
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    reshaped = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or reshaped:
        shapes = [f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})" for k in reshaped[:5]]
        raise InputError(f"expected weights matching the {card['architecture']} of the card in {weights}; got "
                         f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shapes {shapes}")
    model.load_state_dict(state)  # strict: every weight named and shaped as the architecture's
    model.card = card
    return model.eval()


def load_featurizer(name_or_path: str | os.PathLike | torch.nn.Module):
    """The featurizer a shipped model was trained with (by name, path, or a loaded model)."""
    card = getattr(name_or_path, "card", None)
    if card is None:
        if isinstance(name_or_path, torch.nn.Module):
            raise InputError(f"expected a model name, a card path or a model with its card; got a "
                             f"{type(name_or_path).__name__} without a card")
        card = model_card(name_or_path)
    return make_featurizer(card["featurizer"])


def __getattr__(name: str):
    # text models live in their own module so that loading them never imports rdkit
    if name in ("load_lstm_lm", "load_topic_classifier", "load_text_model"):
        from sciattr.zoo import text_models

        return getattr(text_models, name)
    raise AttributeError(f"module 'sciattr.zoo' has no attribute {name!r}")
