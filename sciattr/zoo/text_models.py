"""Loaders for the shipped text models (weights, vocabulary and card under ``sciattr/zoo/text/``).

* :func:`load_lstm_lm` -- the word-level LSTM language model trained on BBC news
  (made by :mod:`sciattr.zoo.train_lstm_lm`);
* :func:`load_topic_classifier` -- the 5-topic LSTM classifier
  (made by :mod:`sciattr.zoo.train_topic_classifier`).

Each returns a :class:`TextModel`: the model in eval mode, its vocabulary and its card (the
JSON record of data, settings and measured perplexity/accuracy).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from sciattr.errors import InputError
from sciattr.text.classifier import LSTMTopicClassifier
from sciattr.text.corpus import Vocabulary
from sciattr.text.lstm_lm import DEFAULT_MAX_LENGTH, LSTMLanguageModel

__all__ = ["TEXT_MODELS", "ZOO_TEXT", "TextModel", "load_lstm_lm", "load_text_model", "load_topic_classifier"]

ZOO_TEXT = Path(__file__).resolve().parent / "text"


@dataclass
class TextModel:
    """A shipped text model with what is needed to use it.

    Attributes
    ----------
    name:
        ``"lstm-lm"`` or ``"topic-classifier"``.
    model:
        The ``nn.Module`` (eval mode).
    vocab:
        Its :class:`~sciattr.text.corpus.Vocabulary`.
    card:
        Configuration, data, training settings and measured quality.
    """

    name: str
    model: torch.nn.Module
    vocab: Vocabulary
    card: dict

    @property
    def max_length(self) -> int:
        """Longest text (in tokens) attributed without truncation."""
        return int(self.card.get("max_length", DEFAULT_MAX_LENGTH))


def _read(stem: str, folder: Path | None) -> tuple[dict, dict, Vocabulary]:
    folder = ZOO_TEXT if folder is None else Path(folder)
    paths = {kind: folder / f"{stem}{suffix}" for kind, suffix in
             (("weights", ".safetensors"), ("vocab", "_vocab.json"), ("card", "_card.json"))}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise InputError(f"expected the shipped files of {stem!r}; missing {missing} "
                         f"(re-create them with python -m sciattr.zoo.train_{stem})")
    from safetensors.torch import load_file

    state = load_file(str(paths["weights"]))
    card = json.loads(paths["card"].read_text())
    return state, card, Vocabulary.from_json(paths["vocab"])


def _finish(model: torch.nn.Module, state: dict, device, dtype) -> torch.nn.Module:
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=False)
    return model.to(device=device, dtype=dtype).eval()


def load_lstm_lm(device="cpu", dtype: torch.dtype = torch.float32, folder: Path | None = None) -> TextModel:
    """The shipped LSTM language model (float16 storage, loaded as ``dtype`` on ``device``)."""
    state, card, vocab = _read("lstm_lm", folder)
    model = _finish(LSTMLanguageModel(**card["config"]), state, device, dtype)
    return TextModel("lstm-lm", model, vocab, card)


def load_topic_classifier(device="cpu", dtype: torch.dtype = torch.float32,
                          folder: Path | None = None) -> TextModel:
    """The shipped 5-topic LSTM classifier (labels in ``model.labels``)."""
    state, card, vocab = _read("topic_classifier", folder)
    model = _finish(LSTMTopicClassifier(**card["config"]), state, device, dtype)
    return TextModel("topic-classifier", model, vocab, card)


TEXT_MODELS = {"lstm-lm": load_lstm_lm, "topic-classifier": load_topic_classifier}


def load_text_model(name: str, device="cpu", dtype: torch.dtype = torch.float32) -> TextModel:
    """Load a shipped text model by name (a key of :data:`TEXT_MODELS`)."""
    if name not in TEXT_MODELS:
        raise InputError(f"expected a model name in {sorted(TEXT_MODELS)}; got {name!r}")
    return TEXT_MODELS[name](device=device, dtype=dtype)
