"""Loaders for the shipped text models (weights, vocabulary and card under ``sciattr/zoo/text/``).

* :func:`load_lstm_lm` -- the word-level LSTM language model trained on BBC news
  (made by :mod:`sciattr.zoo.train_lstm_lm`);
* :func:`load_topic_classifier` -- the 5-topic LSTM classifier
  (made by :mod:`sciattr.zoo.train_topic_classifier`).

Each returns a :class:`TextModel`: the model in eval mode, its vocabulary and its card (the
JSON record of data, settings and measured perplexity/accuracy). Loading is strict: a file whose
weight names or shapes differ from the model's is refused with the missing and unexpected names.
The card's measurements are kept only when the weights file is the one they were measured on
(its SHA-256 is recorded in the card); otherwise they are removed with a warning and a note.

:func:`lm_report` is :func:`sciattr.text.lstm_lm.lm_report` with the shipped language model.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from sciattr.errors import InputError
from sciattr.text.classifier import LSTMTopicClassifier
from sciattr.text.corpus import Vocabulary, read_text_file
from sciattr.text.lstm_lm import DEFAULT_MAX_LENGTH, LSTMLanguageModel

__all__ = [
    "METRIC_KEYS",
    "TEXT_MODELS",
    "ZOO_TEXT",
    "TextModel",
    "lm_report",
    "load_lstm_lm",
    "load_text_model",
    "load_topic_classifier",
    "weights_sha256",
]

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


#: Card entries that are measurements of the shipped weights (dropped when other weights are loaded).
METRIC_KEYS = ("valid_perplexity", "test_perplexity", "check_slice", "valid_accuracy_articles",
               "test_accuracy_articles", "test_accuracy_snippets")


def weights_sha256(path: Path) -> str:
    """SHA-256 of a weights file (recorded in the card by the training scripts)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _read(stem: str, folder: Path | None) -> tuple[dict, dict, Vocabulary]:
    folder = ZOO_TEXT if folder is None else Path(folder)
    paths = {kind: folder / f"{stem}{suffix}" for kind, suffix in
             (("weights", ".safetensors"), ("vocab", "_vocab.json"), ("card", "_card.json"))}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise InputError(f"expected the shipped files of {stem!r}; missing {missing} "
                         f"(re-create them with python -m sciattr.zoo.train_{stem})")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(paths["weights"]))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"expected safetensors weights in {str(paths['weights'])!r}; reading them failed: "
                         f"{exc}") from None
    try:
        card = json.loads(read_text_file(paths["card"], "a model card (JSON)"))
    except json.JSONDecodeError as exc:
        raise InputError(f"expected a JSON model card in {str(paths['card'])!r}; got invalid JSON: {exc}") from None
    if not isinstance(card, dict) or not isinstance(card.get("config"), dict):
        raise InputError(f"expected a model card with a 'config' object in {str(paths['card'])!r}")
    card = _checked_card(card, paths["weights"])
    return state, card, Vocabulary.from_json(paths["vocab"])


def _checked_card(card: dict, weights: Path) -> dict:
    """The card, its measurements removed (with a warning and a note) when ``weights`` are not the
    file they were measured on (its SHA-256 differs from the card's, or the card records none)."""
    expected = card.get("weights_sha256")
    if expected is not None and expected == weights_sha256(weights):
        return card
    dropped = [k for k in METRIC_KEYS if k in card]
    if not dropped:
        return card
    card = {k: v for k, v in card.items() if k not in METRIC_KEYS}
    why = "the card records no checksum" if expected is None else "their SHA-256 differs from the card's"
    card["note"] = (f"the measurements of the card ({', '.join(dropped)}) were removed: {why}, so they may "
                    f"not describe the weights in {str(weights)!r}")
    warnings.warn(card["note"], stacklevel=3)
    return card


def _finish(model: torch.nn.Module, state: dict, device, dtype, source: Path) -> torch.nn.Module:
    """Load ``state`` strictly: every weight of the model, no other (tied weights filled from their twin)."""
    state = {k: v.to(dtype) for k, v in state.items()}
    expected = model.state_dict()
    for name in _tied(model):
        if name in expected and name not in state and "embed.weight" in state:
            state[name] = state["embed.weight"]
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise InputError(f"expected the weights of {type(model).__name__} in {str(source)!r}; missing "
                         f"{missing[:10]}{' ...' if len(missing) > 10 else ''}, unexpected "
                         f"{unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}")
    wrong = [f"{k}: {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
             if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        raise InputError(f"expected weights shaped as the card's config in {str(source)!r}; got {wrong[:5]}")
    model.load_state_dict(state, strict=True)
    return model.to(device=device, dtype=dtype).eval()


def _tied(model: torch.nn.Module) -> list[str]:
    """State names whose tensor is the input embedding (stored once in the weights file)."""
    embed = getattr(model, "embed", None)
    if embed is None:
        return []
    return [name for name, p in model.named_parameters(remove_duplicate=False)
            if p is embed.weight and name != "embed.weight"]


def load_lstm_lm(device="cpu", dtype: torch.dtype = torch.float32, folder: Path | None = None) -> TextModel:
    """The shipped LSTM language model (float16 storage, loaded as ``dtype`` on ``device``)."""
    state, card, vocab = _read("lstm_lm", folder)
    model = _finish(_build(LSTMLanguageModel, card), state, device, dtype, _folder(folder))
    return TextModel("lstm-lm", model, vocab, card)


def load_topic_classifier(device="cpu", dtype: torch.dtype = torch.float32,
                          folder: Path | None = None) -> TextModel:
    """The shipped 5-topic LSTM classifier (labels in ``model.labels``)."""
    state, card, vocab = _read("topic_classifier", folder)
    model = _finish(_build(LSTMTopicClassifier, card), state, device, dtype, _folder(folder))
    return TextModel("topic-classifier", model, vocab, card)


def _folder(folder) -> Path:
    return ZOO_TEXT if folder is None else Path(folder)


def _build(cls, card: dict) -> torch.nn.Module:
    try:
        return cls(**card["config"])
    except TypeError as exc:
        raise InputError(f"expected a {cls.__name__} config in the card; got {card['config']}: {exc}") from None


TEXT_MODELS = {"lstm-lm": load_lstm_lm, "topic-classifier": load_topic_classifier}


def load_text_model(name: str, device="cpu", dtype: torch.dtype = torch.float32) -> TextModel:
    """Load a shipped text model by name (a key of :data:`TEXT_MODELS`)."""
    if name not in TEXT_MODELS:
        raise InputError(f"expected a model name in {sorted(TEXT_MODELS)}; got {name!r}")
    return TEXT_MODELS[name](device=device, dtype=dtype)


def lm_report(sentence: str, target: str | None = None, *, lm: TextModel | None = None, **options):
    """:func:`sciattr.text.lstm_lm.lm_report` with ``lm`` defaulting to the shipped model."""
    from sciattr.text.lstm_lm import lm_report as report

    return report(sentence, target, lm=load_lstm_lm() if lm is None else lm, **options)
