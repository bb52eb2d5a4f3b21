"""A word-level LSTM language model (Zaremba et al. 2014 style) and its attribution report.

The model is embedding -> dropout -> 2-layer LSTM -> dropout -> softmax over the vocabulary,
with the softmax weights tied to the embedding. :func:`lm_attribution` attributes the
probability (or log-probability) of the next word to the preceding words, as in Gradients of
Counterfactuals section 3.2: the embeddings of the sentence's words are scaled by ``alpha`` from
the zero embedding, while the leading ``<eos>`` (the start-of-sentence context) stays fixed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sciattr.errors import InputError, ModelOutputError, describe
from sciattr.settings import Settings, resolve_settings
from sciattr.text._engine import as_list, row_ids
from sciattr.text.classifier import _targets_per_row, vocabulary_baseline
from sciattr.text.corpus import EOS, Vocabulary, encode_texts, tokenize
from sciattr.text.embedding import EmbeddingModel, attribute_encoded
from sciattr.text.tokens import TokenAttribution

__all__ = ["DEFAULT_MAX_LENGTH", "LMReport", "LSTMLanguageModel", "lm_attribution", "lm_report", "perplexity"]

#: Longest sentence (in words) attributed by default; longer ones are an error or truncated.
DEFAULT_MAX_LENGTH = 100


class LSTMLanguageModel(nn.Module):
    """Embedding, ``num_layers`` LSTM layers, dropout, tied (or untied) softmax.

    Parameters
    ----------
    vocab_size:
        Number of words, including ``<unk>`` and ``<eos>``.
    emb_dim, hidden_dim:
        Embedding and LSTM sizes; tying needs them equal.
    """

    def __init__(self, vocab_size: int, emb_dim: int = 160, hidden_dim: int = 160, num_layers: int = 2,
                 dropout: float = 0.4, tie_weights: bool = True):
        super().__init__()
        if tie_weights and emb_dim != hidden_dim:
            raise InputError(f"expected emb_dim == hidden_dim for tied weights; got {emb_dim} and "
                             f"{hidden_dim}")
        self.config: dict[str, Any] = {"vocab_size": vocab_size, "emb_dim": emb_dim, "hidden_dim": hidden_dim,
                           "num_layers": num_layers, "dropout": dropout, "tie_weights": tie_weights}
        self.embed = nn.Embedding(vocab_size, emb_dim)
        self.drop = nn.Dropout(dropout)
        self.lstm = nn.LSTM(emb_dim, hidden_dim, num_layers=num_layers, dropout=dropout, batch_first=True)
        self.decoder = nn.Linear(hidden_dim, vocab_size)
        if tie_weights:
            self.decoder.weight = self.embed.weight
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def get_input_embeddings(self) -> nn.Embedding:
        """The token embedding (the layer attributions are taken at, as in Hugging Face models)."""
        return self.embed

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, state=None, return_state: bool = False):
        """Next-word logits ``(n, seq_len, vocab_size)``.

        ``attention_mask`` is accepted for a uniform interface and not needed: the model reads left
        to right, so right padding cannot change the outputs at real positions.
        """
        if inputs_embeds is None:
            if input_ids is None:
                raise InputError("expected input_ids or inputs_embeds; got neither")
            inputs_embeds = self.embed(input_ids)
        if inputs_embeds.dim() != 3:
            raise InputError("expected embeddings of shape (n, seq_len, emb_dim); got "
                             f"{describe(inputs_embeds)}")
        hidden, state = self.lstm(self.drop(inputs_embeds), state)
        logits = self.decoder(self.drop(hidden))
        return (logits, state) if return_state else logits


@torch.no_grad()
def perplexity(model: LSTMLanguageModel, ids: torch.Tensor, batch_size: int = 20, bptt: int = 35) -> float:
    """Perplexity of a token stream ``ids`` ``(n_tokens,)`` read as ``batch_size`` parallel streams."""
    model.eval()
    n_cols = (ids.numel() - 1) // batch_size
    if n_cols < 1:
        raise InputError(f"expected at least {batch_size + 1} tokens; got {ids.numel()}")
    data = ids[: n_cols * batch_size + 1]
    inputs = data[:-1].reshape(batch_size, n_cols)
    labels = data[1:].reshape(batch_size, n_cols)
    state, total, count = None, 0.0, 0
    for start in range(0, n_cols, bptt):
        x, y = inputs[:, start:start + bptt], labels[:, start:start + bptt]
        logits, state = model(x, state=state, return_state=True)
        total += float(nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(),
                                                   y.reshape(-1), reduction="sum"))
        count += y.numel()
    return math.exp(total / count)


def _lm_tokens(text: str) -> list[str]:
    """Sentence tokens for the language model: sentence-final ``.?!`` are not words of the model."""
    tokens = tokenize(text)
    while tokens and tokens[-1] in (".", "?", "!"):
        tokens.pop()
    return tokens


def lm_attribution(model: LSTMLanguageModel, vocab: Vocabulary, sentences, target=None, *,
                   score: str = "prob", max_length: int = DEFAULT_MAX_LENGTH, truncate: bool = False,
                   settings: Settings | None = None, **options) -> TokenAttribution:
    """Attribute the next word's score to the preceding words, for a batch of sentences.

    Each sentence is read after an ``<eos>`` (kept fixed along the path: the start-of-sentence
    context); its words' embeddings are scaled from the baseline (default the zero embedding).
    The score is the probability (or ``score="log_prob"``, the log-probability) of the next
    word ``target`` (one word for all sentences, or one per sentence) at the last word -- or,
    where it is ``None``, of the model's most probable next word. Unknown words (also unknown
    next words) are scored as ``<unk>`` and noted; bad rows are listed in ``result.errors``.

    ``sentences``: a sentence, or a list, tuple or pandas Series of sentences (a Series' index
    becomes each row's ``id``). ``settings``/``**options``: a :class:`~sciattr.settings.Settings`
    and/or its fields as keywords (``steps``, ``rule``, ``tolerance``, ``baselines`` -- ``None``,
    ``"zeros"``, ``"unk"``, ``"eos"``, a token id or an embedding tensor, ...).

    Returns
    -------
    TokenAttribution
        Tokens ``["<eos>", w_1, ..., w_m]`` per sentence; ``target_labels`` the scored next words.
    """
    ids_of_rows = row_ids(sentences)
    sentences = as_list(sentences, "sentences")
    next_words = _targets_per_row(target, len(sentences))
    settings = resolve_settings(settings, options)
    settings = settings.replace(baselines=vocabulary_baseline(vocab, settings.baselines))
    batch = encode_texts(sentences, vocab, max_length=max_length, truncate=truncate, prefix=(EOS,),
                         split=_lm_tokens)
    batch.row_ids = ids_of_rows
    model.eval()
    units = _next_word_units(model, vocab, batch, next_words)
    labels = [vocab.words[u] if u is not None else None for u in units]
    fixed = None
    if batch.ids:
        width = max(len(i) for i in batch.ids)
        fixed = torch.zeros(len(batch.ids), width, dtype=torch.bool)
        fixed[:, 0] = True
    spec = EmbeddingModel(model, model.embed, call="embeddings", embeddings_argument="inputs_embeds",
                          mask_argument="attention_mask")
    res = attribute_encoded(spec, batch, pad_id=vocab.index[EOS],
                            target=torch.tensor(units) if units else None,
                            target_labels=labels, score=score, position="last", fixed=fixed, settings=settings)
    return dataclasses.replace(res, target=f"{score} of the next word")


def _next_word_units(model, vocab: Vocabulary, batch, next_words) -> list[int]:
    units = []
    for k, row in enumerate(batch.rows):
        word = None if next_words is None else next_words[row]
        if word is None:
            with torch.no_grad():
                weight = model.embed.weight
                logits = model(torch.tensor([batch.ids[k]], device=weight.device))
            units.append(int(logits[0, -1].argmax()))
            continue
        word = word.strip().lower()
        if word not in vocab:
            batch.notes[k].append(f"next word {word!r} is not in the vocabulary; scoring <unk>")
        units.append(vocab.id(word))
    return units


@dataclass
class LMReport:
    """Gradients of Counterfactuals Fig. 9 for one sentence, and the Fig. 8 saturation curve.

    Attributes
    ----------
    words:
        The sentence's words (the fixed leading ``<eos>`` left out; its attribution is 0).
    integrated_gradients, gradients:
        Per word: integrated gradients, and gradient x embedding at the input (alpha = 1).
    next_word, prediction:
        The scored next word and its probability (or log-probability) F(x).
    baseline_score:
        F at the zero embedding (alpha = 0).
    total_integrated_gradients:
        Sum of the integrated gradients (= prediction - baseline_score up to the quadrature error).
    alphas, curve:
        ``(K,)`` scaling factors and the score at each (the saturation curve).
    notes:
        Unknown words, truncation.
    result:
        The full :class:`TokenAttribution`.
    """

    words: list
    integrated_gradients: list
    gradients: list
    next_word: str
    prediction: float
    baseline_score: float
    total_integrated_gradients: float
    alphas: list
    curve: list
    notes: list
    result: TokenAttribution

    def __str__(self) -> str:
        width = max([len(w) for w in self.words] + [11])

        def row(name: str, cells: list[str]) -> str:
            return f"{name:<24}" + " ".join(f"{c:>{width}}" for c in cells)

        lines = [row("Sentence", self.words),
                 row("Integrated gradients", [f"{v:.4f}" for v in self.integrated_gradients]),
                 row("Gradients", [f"{v:.4f}" for v in self.gradients]),
                 (f"Prediction for {self.next_word}: {self.prediction:.4f}, "
                 f"total integrated gradient: {self.total_integrated_gradients:.4f} "
                 f"(score at the zero embedding: {self.baseline_score:.4f})")]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def lm_report(sentence: str, target: str | None = None, *, lm, score: str = "prob", truncate: bool = False,
              settings: Settings | None = None, **options) -> LMReport:
    """Fig. 9 of Gradients of Counterfactuals for ``sentence``: IG and gradients per word, the
    probability of the next word ``target`` (default: the predicted word), the total IG, and the
    Fig. 8 saturation curve (score against alpha).

    ``lm``: an object with ``.model`` and ``.vocab``, e.g. the shipped model
    ``sciattr.zoo.load_lstm_lm()``. ``settings``/``**options`` as in :func:`lm_attribution`
    (the path is always recorded: ``store_path=True``).
    """
    if not (hasattr(lm, "model") and hasattr(lm, "vocab")):
        raise InputError(f"expected lm with .model and .vocab (e.g. sciattr.zoo.load_lstm_lm()); got {describe(lm)}")
    settings = resolve_settings(settings, options).replace(store_path=True)
    res = lm_attribution(lm.model, lm.vocab, [sentence], None if target is None else [target],
                         score=score, truncate=truncate, settings=settings)
    if res.path is None or res.attention_mask is None:
        raise ModelOutputError("expected the attribution to record its path (store_path=True) and attention "
                               f"mask; got path={describe(res.path)}, attention_mask={describe(res.attention_mask)}")
    emb = res.inputs[res.embedding_name][0]
    grad_at_input = res.path.gradients[res.embedding_name][-1, 0]
    gradients = (grad_at_input * (emb - res.baselines[res.embedding_name][0])).sum(-1)
    n_real = int(res.attention_mask[0].sum())
    ig = res.example_scores(0)
    return LMReport(
        words=res.token_texts(0)[1:], integrated_gradients=ig[1:],
        gradients=[float(g) for g in gradients[1:n_real]], next_word=res.target_labels[0],
        prediction=float(res.forward_x[0]), baseline_score=float(res.forward_baseline[0]),
        total_integrated_gradients=float(sum(ig)), alphas=[float(a) for a in res.path.alphas],
        curve=[float(v) for v in res.path.scores[0]], notes=list(res.notes[0]), result=res)
