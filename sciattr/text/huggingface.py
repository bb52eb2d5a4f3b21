"""Hugging Face transformers: sequence classifiers, causal language models and encoder--decoders.

Every model is fed the path points through ``inputs_embeds`` (the word embeddings; position and
token-type embeddings are added by the model as usual). Only a model whose ``forward`` has no
``inputs_embeds`` is called with ids while its embedding output is replaced inside a scoped
hook. Attention masks travel per example, so padding never changes a sentence's attributions.

Baselines: the zero embedding (default) or the embedding of the PAD / MASK token (or any token
id). Special tokens ([CLS], [SEP], BOS, </s>) keep their embedding along the path by default
(``keep_special=True``), so their attribution is 0; for causal language models the first token
is always kept as well -- a baseline that removes it makes the path leave the model's domain.

Subword tokens are summed into words (signed sums, so completeness survives) with
``result.to_words(i)``: word indices come from fast tokenizers' ``word_ids()`` or, for
pre-split inputs (SMILES tokens), one word per piece.

Texts longer than the model's ``max_position_embeddings`` are reported as bad rows unless
``truncation=True``, which keeps the first tokens with a warning and a note on the row. Bad rows
(empty text, too long, not a string) are listed in ``result.errors``; the others are attributed.

``transformers`` is optional (``pip install 'sciattr[text]'``); it is imported only here.
"""

from __future__ import annotations

import inspect
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sciattr.errors import InputError, TargetError, describe, require
from sciattr.result import Attribution
from sciattr.settings import Settings, resolve_settings
from sciattr.text._engine import as_list
from sciattr.text._engine import row_ids as ids_of
from sciattr.text.embedding import EmbeddingModel, baseline_embeddings, embedding_integrated_gradients
from sciattr.text.seq2seq import Seq2SeqAttribution, attribute_outputs
from sciattr.text.tokens import TokenAttribution

__all__ = [
    "KINDS",
    "WEIGHT_FILES",
    "EncodedTexts",
    "HFSeq2SeqAttribution",
    "HFTokenAttribution",
    "TeacherForcedScores",
    "causal_lm_integrated_gradients",
    "classifier_integrated_gradients",
    "encode_texts",
    "hf_integrated_gradients",
    "load_local_model",
    "max_positions",
    "model_kind",
    "seq2seq_integrated_gradients",
]

KINDS = ("classifier", "causal_lm", "seq2seq")
Splitter = Callable[[str], Sequence[str]]


# ---------------------------------------------------------------------------------------- encoding
@dataclass
class EncodedTexts:
    """A tokenized batch: the good rows padded into tensors, the bad rows described.

    ``ids`` and ``attention_mask`` are ``(n_good, L)``; ``tokens[i]``, ``word_ids[i]`` list the
    real tokens of good row ``i`` and the word each belongs to (``None`` for special tokens);
    ``rows[i]`` is its index in the caller's batch; ``errors`` holds ``{"row", "input",
    "message"}`` for the rows that could not be encoded; ``row_ids`` the caller's id of every
    row (a pandas Series' index) or empty.
    """

    ids: torch.Tensor
    attention_mask: torch.Tensor
    tokens: list
    word_ids: list
    rows: list
    errors: list
    notes: list
    row_ids: list = field(default_factory=list)


def max_positions(model) -> int | None:
    """Longest input the model accepts (``config.max_position_embeddings``), ``None`` if unbounded."""
    config = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _encode_one(tokenizer, text: str, split: Splitter | None, limit: int | None):
    """``(ids, tokens, word_ids)`` of one text, truncated to ``limit`` tokens when given."""
    if split is None:
        enc = tokenizer(text, add_special_tokens=True, truncation=limit is not None, max_length=limit)
        ids = list(enc["input_ids"])
        try:
            word_ids = list(enc.word_ids())
        except (AttributeError, ValueError):
            word_ids = _word_ids_from_offsets(tokenizer, text, ids)
        return ids, tokenizer.convert_ids_to_tokens(ids), word_ids
    pieces = list(split(text))
    first = [tokenizer.cls_token_id] if tokenizer.cls_token_id is not None else []
    last = [tokenizer.sep_token_id] if tokenizer.sep_token_id is not None else []
    if limit is not None:
        pieces = pieces[: max(limit - len(first) - len(last), 0)]
    ids = first + list(tokenizer.convert_tokens_to_ids(pieces)) + last
    word_ids = [None] * len(first) + list(range(len(pieces))) + [None] * len(last)
    tokens = tokenizer.convert_ids_to_tokens(first) + pieces + tokenizer.convert_ids_to_tokens(last)
    return ids, tokens, word_ids


def _word_ids_from_offsets(tokenizer, text, ids):
    from sciattr.text.tokens import words_from_offsets

    enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
    if list(enc["input_ids"]) != ids:
        return [None] * len(ids)
    return words_from_offsets(text, enc["offset_mapping"])


def encode_texts(tokenizer, texts: str | Sequence[str], *, max_length: int | None = None,
                 truncation: bool = False, split: Splitter | None = None, device=None) -> EncodedTexts:
    """Tokenize ``texts`` row by row; rows that cannot be used are reported, not raised.

    Parameters
    ----------
    tokenizer:
        A Hugging Face tokenizer.
    texts:
        A text, or a list, tuple or pandas Series of texts (a Series' index becomes ``row_ids``).
    max_length:
        Most tokens a row may have (special tokens included); ``None``: no limit.
    truncation:
        Longer rows are cut to ``max_length`` tokens with a warning (``True``) or reported as
        errors (``False``, default).
    split:
        Optional pre-tokenizer ``text -> pieces`` whose pieces are vocabulary tokens (e.g.
        :func:`sciattr.text.smiles_tokens.split_smiles`); each piece is one word.

    Raises
    ------
    InputError
        If no row is usable (the message lists every row's problem).
    """
    ids_of_rows = ids_of(texts)
    texts = as_list(texts)
    if len(texts) == 0:
        raise InputError("expected a text or a non-empty list of texts; got an empty list")
    good, errors, notes = [], [], []
    for row, text in enumerate(texts):
        try:
            encoded, note = _checked_encoding(tokenizer, text, split, max_length, truncation)
        except InputError as exc:
            errors.append({"row": row, "input": text, "message": str(exc)})
            continue
        good.append((row, *encoded))
        notes.append(note)
    if not good:
        raise InputError("no row could be used: " + "; ".join(f"row {e['row']}: {e['message']}" for e in errors))
    width = max(len(ids) for _, ids, _, _ in good)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(good), width), pad, dtype=torch.long)
    mask = torch.zeros((len(good), width), dtype=torch.long)
    for k, (_, row_ids, _, _) in enumerate(good):
        ids[k, : len(row_ids)] = torch.tensor(row_ids)
        mask[k, : len(row_ids)] = 1
    return EncodedTexts(ids.to(device), mask.to(device), [g[2] for g in good], [g[3] for g in good],
                        [g[0] for g in good], errors, notes, ids_of_rows)


def _checked_encoding(tokenizer, text, split, max_length, truncation):
    if not isinstance(text, str):
        raise InputError(f"expected a text (str); got {describe(text)}")
    if not text.strip():
        raise InputError(f"expected a non-empty text; got {text!r}")
    ids, tokens, word_ids = _encode_one(tokenizer, text, split, None)
    notes = []
    if max_length is not None and len(ids) > max_length:
        if not truncation:
            raise InputError(f"expected at most {max_length} tokens (the model's max_position_embeddings); got "
                             f"{len(ids)}; pass truncation=True (command line: --truncate) to keep the first "
                             f"{max_length}")
        message = f"truncated from {len(ids)} to {max_length} tokens (the model's maximum)"
        warnings.warn(f"{message}: {text[:40]!r}...", stacklevel=4)
        notes.append(message)
        ids, tokens, word_ids = _encode_one(tokenizer, text, split, max_length)
    if not any(w is not None for w in word_ids):
        raise InputError(f"expected the text to contain at least one token besides special tokens; got {text!r}")
    unknown = _unknown_pieces(tokenizer, text, split, ids, tokens)
    if unknown:
        notes.append(f"{len(unknown)} token(s) not in the vocabulary became {tokenizer.unk_token}: {unknown[:10]}")
    return (ids, tokens, word_ids), notes


def _unknown_pieces(tokenizer, text, split, ids, tokens) -> list:
    unk = tokenizer.unk_token_id
    if unk is None:
        return []
    if split is not None:
        return [tok for tok, i in zip(tokens, ids) if i == unk and tok != tokenizer.unk_token]
    if unk not in ids or tokenizer.unk_token in text:
        return []
    try:
        offsets = tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)["offset_mapping"]
    except (NotImplementedError, KeyError, ValueError, TypeError):
        return [tok for tok, i in zip(tokens, ids) if i == unk]
    return [text[a:b] for (a, b), i in zip(offsets, ids) if i == unk]


# ---------------------------------------------------------------------------------------- results
@dataclass(repr=False)
class HFTokenAttribution(TokenAttribution):
    """A :class:`TokenAttribution` that knows the word of every token (``word_ids[i]``)."""

    word_ids: list = field(default_factory=list)

    def to_words(self, example: int = 0, word_ids=None, **options) -> list[tuple[str, float]]:
        """Tokens summed into words by signed sums; by default with the tokenizer's word ids."""
        if word_ids is None and options.get("offsets") is None and example < len(self.word_ids):
            word_ids = self.word_ids[example]
        return super().to_words(example, word_ids, **options)

    __repr__ = Attribution.__repr__


@dataclass(repr=False)
class HFSeq2SeqAttribution(HFTokenAttribution, Seq2SeqAttribution):
    """A :class:`~sciattr.text.seq2seq.Seq2SeqAttribution` with the source tokens' word ids."""


def _finish(res: Attribution, batch: EncodedTexts, cls, **extra):
    return res.specialize(cls, **{**_token_fields(res), "tokens": batch.tokens, "rows": batch.rows,
                                  "errors": batch.errors, "notes": batch.notes, "word_ids": batch.word_ids,
                                  "row_ids": batch.row_ids, **extra})


def _token_fields(res) -> dict:
    if not isinstance(res, TokenAttribution):
        return {}
    return {"token_ids": res.token_ids, "attention_mask": res.attention_mask, "embedding_name": res.embedding_name,
            "target_labels": res.target_labels}


# ---------------------------------------------------------------------------------------- models
def model_kind(model) -> str:
    """``"classifier"``, ``"causal_lm"`` or ``"seq2seq"`` from the model's class and config."""
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    name = type(model).__name__
    if "SequenceClassification" in name:
        return "classifier"
    if "CausalLM" in name or "LMHead" in name:
        return "causal_lm"
    raise InputError(f"expected a Hugging Face sequence classifier, causal LM or encoder-decoder; got {name}")


def _accepts_embeddings(model) -> bool:
    forward = getattr(model, "forward", None)
    if forward is None:
        return False
    try:
        return "inputs_embeds" in inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return False


def _spec(model) -> EmbeddingModel:
    """How the engine calls ``model``: ``inputs_embeds=`` when it can, else ids with a scoped hook."""
    embedding = model.get_input_embeddings()
    if _accepts_embeddings(model):
        return EmbeddingModel(model, embedding=embedding, call="embeddings", embeddings_argument="inputs_embeds")
    return EmbeddingModel(model, embedding=embedding, call="ids", ids_argument="input_ids")


def _baseline_id(tokenizer, baseline):
    """``None``, ``"zeros"`` / a float tensor stays; ``"pad"`` / ``"mask"`` become that token's id."""
    if isinstance(baseline, str) and baseline in ("pad", "mask"):
        token_id = getattr(tokenizer, f"{baseline}_token_id", None)
        if token_id is None:
            raise InputError(f"expected the tokenizer to have a {baseline.upper()} token for baselines={baseline!r}; "
                             f"it has none")
        return int(token_id)
    if isinstance(baseline, str) and baseline != "zeros":
        raise InputError(f"expected baselines 'zeros', 'pad', 'mask', a token id or an embedding tensor; got "
                         f"{baseline!r}")
    return baseline


def _check_model(model) -> None:
    require("transformers", "text")
    if not isinstance(model, torch.nn.Module) or not callable(getattr(model, "get_input_embeddings", None)):
        raise InputError(f"expected a Hugging Face PreTrainedModel; got {describe(model)}")


def _device(model):
    return next(model.parameters()).device


def classifier_integrated_gradients(
    model, tokenizer, texts, *, target="predicted", score: str = "logit", keep_special: bool = True,
    truncation: bool = False, split: Splitter | None = None, settings: Settings | None = None, **options,
) -> HFTokenAttribution:
    """Attribute a sequence classifier's class score to the tokens of each text.

    Parameters
    ----------
    model, tokenizer:
        A ``...ForSequenceClassification`` model and its tokenizer.
    texts:
        A text, or a list, tuple or pandas Series of texts (bad rows are reported in
        ``result.errors``; a Series' index becomes each row's ``id``).
    target:
        ``"predicted"`` (each text's arg-max class), a class index, a label name of
        ``config.label2id``, or per-text indices.
    score:
        ``"logit"``, ``"log_prob"`` or ``"prob"``.
    keep_special:
        Keep [CLS]/[SEP]/... at their embedding along the path (attribution 0).
    truncation, split:
        See :func:`encode_texts`.
    settings, **options:
        A :class:`~sciattr.settings.Settings` and/or its fields as keywords (``steps``, ``rule``,
        ``tolerance``, ``batch_size``...). ``baselines``: ``None``/``"zeros"``, ``"pad"``,
        ``"mask"``, a token id or an embedding tensor.

    Returns
    -------
    HFTokenAttribution
        ``attributions["embeddings"]`` ``(n, L, hidden)``; ``to_tokens(i)``, ``to_words(i)``.
    """
    _check_model(model)
    batch = encode_texts(tokenizer, texts, max_length=max_positions(model), truncation=truncation, split=split,
                         device=_device(model))
    target = _per_row(target, batch, lambda t: _class_unit(model, t))
    settings = _hf_settings(tokenizer, settings, options)
    res = embedding_integrated_gradients(
        _spec(model), batch.ids, attention_mask=batch.attention_mask, target=target, score=score,
        special_ids=tokenizer.all_special_ids, exclude_special=keep_special, example_names=batch.rows,
        settings=settings)
    labels = _class_labels(model, res.meta.get("units"))
    return _finish(res, batch, HFTokenAttribution, target_labels=labels)


def _hf_settings(tokenizer, settings, options) -> Settings:
    settings = resolve_settings(settings, options)
    return settings.replace(baselines=_baseline_id(tokenizer, settings.baselines))


def _per_row(target, batch: EncodedTexts, convert):
    """A scalar target converted, or per-row targets of the caller's batch restricted to the usable rows."""
    if hasattr(target, "tolist") and not isinstance(target, torch.Tensor):
        target = target.tolist()  # a pandas Series or a numpy array
    if isinstance(target, (list, tuple)) or (isinstance(target, torch.Tensor) and target.dim() == 1):
        total = len(batch.rows) + len(batch.errors)
        if len(target) != total:
            raise TargetError(f"expected one target per text ({total}); got {len(target)}")
        return [convert(target[row]) for row in batch.rows]
    return convert(target)


def _class_unit(model, target):
    if isinstance(target, torch.Tensor) and target.dim() == 0:
        target = int(target)
    if isinstance(target, str) and target != "predicted":
        label2id = getattr(model.config, "label2id", {}) or {}
        if target not in label2id:
            raise TargetError(f"expected 'predicted', a class index or a label in {sorted(label2id)[:20]}; "
                              f"got {target!r}")
        return int(label2id[target])
    return target


def _class_labels(model, units) -> list:
    if units is None:
        return []
    id2label = getattr(model.config, "id2label", {}) or {}
    return [str(id2label.get(int(u), u)) for u in units]


def causal_lm_integrated_gradients(
    model, tokenizer, texts, *, target="predicted", score: str = "log_prob", keep_special: bool = True,
    truncation: bool = False, settings: Settings | None = None, **options,
) -> HFTokenAttribution:
    """Attribute a causal LM's next-token score (after each text's last token) to the tokens.

    ``target``: ``"predicted"`` (the arg-max next token), a token id, a token string of the
    vocabulary, or per-text ids. The first token of every text stays at its embedding along the
    path (attribution 0), as do special tokens when ``keep_special``. Other options as in
    :func:`classifier_integrated_gradients`. For a whole continuation (every generated token
    against the prompt and the earlier generated tokens) use
    :func:`sciattr.text.continuation.continuation_integrated_gradients`.
    """
    _check_model(model)
    batch = encode_texts(tokenizer, texts, max_length=max_positions(model), truncation=truncation,
                         device=_device(model))
    fixed = torch.zeros_like(batch.ids, dtype=torch.bool)
    fixed[:, 0] = True
    res = embedding_integrated_gradients(
        _spec(model), batch.ids, attention_mask=batch.attention_mask, target=_per_row(target, batch, lambda t: _token_unit(tokenizer, t)),
        score=score, position="last", special_ids=tokenizer.all_special_ids, exclude_special=keep_special,
        fixed=fixed, example_names=batch.rows, settings=_hf_settings(tokenizer, settings, options))
    units = res.meta.get("units") or []
    return _finish(res, batch, HFTokenAttribution, target_labels=tokenizer.convert_ids_to_tokens(list(units)))


def _token_unit(tokenizer, target):
    if isinstance(target, torch.Tensor) and target.dim() == 0:
        target = int(target)
    if not isinstance(target, str) or target == "predicted":
        return target
    token_id = tokenizer.convert_tokens_to_ids(target)
    if token_id is None or (token_id == tokenizer.unk_token_id and target != tokenizer.unk_token):
        raise TargetError(f"expected 'predicted', a token id or a vocabulary token; got {target!r}, "
                          f"which is not in the vocabulary")
    return int(token_id)


# ---------------------------------------------------------------------------------------- encoder-decoder
class TeacherForcedScores(torch.nn.Module):
    """``(rows, T)`` log-probability of each output token given the source and ``y_<t`` (teacher forcing).

    Called with the source embeddings (``forward``, what the engine integrates over) or with the
    source ids (:meth:`from_ids`, for layer-attribution tools).
    """

    def __init__(self, model):
        super().__init__()
        self.model = model
        start = getattr(model.config, "decoder_start_token_id", None)
        if start is None:
            raise InputError(f"expected config.decoder_start_token_id on {type(model).__name__}; got None")
        self.start = int(start)
        self.train(model.training)

    def forward(self, embeddings, target_ids, attention_mask):
        """``(rows, T)`` scores with the source given as embeddings ``(rows, S, E)``."""
        return self._scores(target_ids, inputs_embeds=embeddings, attention_mask=attention_mask)

    def from_ids(self, input_ids, target_ids, attention_mask):
        """``(rows, T)`` scores with the source given as token ids ``(rows, S)``."""
        return self._scores(target_ids, input_ids=input_ids, attention_mask=attention_mask)

    def _scores(self, target_ids, **source):
        start = torch.full_like(target_ids[:, :1], self.start)
        decoder_ids = torch.cat([start, target_ids[:, :-1]], dim=1)
        logits = self.model(**source, decoder_input_ids=decoder_ids, use_cache=False).logits
        return torch.log_softmax(logits, dim=-1).gather(2, target_ids[..., None]).squeeze(2)


def _output_ids(model, tokenizer, batch: EncodedTexts, outputs, max_new_tokens) -> tuple[torch.Tensor, torch.Tensor]:
    """Output ids ``(n, T)`` (padded) and lengths ``(n,)``: given, or greedy-generated."""
    dev = batch.ids.device
    if outputs is None:
        with torch.no_grad():
            generated = model.generate(input_ids=batch.ids, attention_mask=batch.attention_mask, do_sample=False,
                                       num_beams=1, max_new_tokens=max_new_tokens)
        rows = [_strip_generated(model, row) for row in generated.tolist()]
    else:
        if isinstance(outputs, str) or len(outputs) != len(batch.rows) + len(batch.errors):
            raise InputError(f"expected one output per text ({len(batch.rows) + len(batch.errors)}); "
                             f"got {describe(outputs)}")
        rows = [_output_row(tokenizer, outputs[r]) for r in batch.rows]
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    ids = torch.full((len(rows), int(lengths.max())), 0, dtype=torch.long)
    for k, r in enumerate(rows):
        ids[k, : len(r)] = torch.tensor(r)
    return ids.to(dev), lengths


def _strip_generated(model, row: list) -> list:
    start, eos = model.config.decoder_start_token_id, model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos]) - {None}
    body = row[1:] if row and row[0] == start else row
    for k, token in enumerate(body):
        if token in eos:
            return body[: k + 1]
    if not body:
        raise InputError("expected the model to generate at least one token; got none")
    return body


def _output_row(tokenizer, output) -> list:
    if isinstance(output, str):
        ids = tokenizer(output, add_special_tokens=True)["input_ids"]
        unknown = _unknown_pieces(tokenizer, output, None, ids, tokenizer.convert_ids_to_tokens(ids))
        if unknown:
            warnings.warn(f"output {output!r}: {len(unknown)} piece(s) not in the vocabulary became "
                          f"{tokenizer.unk_token} and are attributed as such: {unknown[:10]}", stacklevel=3)
    elif isinstance(output, torch.Tensor):
        ids = output.tolist()
    else:
        ids = list(output)
    if not ids:
        raise InputError(f"expected a non-empty output sequence; got {output!r}")
    return [int(i) for i in ids]


def seq2seq_integrated_gradients(
    model, tokenizer, sources, target=None, *, max_new_tokens: int = 10, keep_special: bool = True,
    truncation: bool = False, strategy: str = "multi_target", settings: Settings | None = None, **options,
) -> HFSeq2SeqAttribution:
    """Attribute every output token of an encoder--decoder to every source token.

    Parameters
    ----------
    model, tokenizer:
        A Hugging Face encoder--decoder (T5, BART, Marian...) and its tokenizer.
    sources:
        A text, or a list, tuple or pandas Series of texts.
    target:
        The output of each text (a string, or a list of token ids); default: greedy generation of
        up to ``max_new_tokens`` tokens.
    keep_special, truncation:
        As in :func:`classifier_integrated_gradients` (only the source embeddings are attributed).
    settings, **options:
        As in :func:`classifier_integrated_gradients`; ``strategy`` as in
        :func:`sciattr.text.seq2seq.attribute_outputs`.
        For T5-like models (RMS norm, no absolute position embeddings) use ``baselines="pad"``:
        their output is scale-invariant in the input embeddings, so along the zero-embedding
        path it changes only near ``alpha = 0`` and the quadrature misses it (a large
        completeness gap shows it).

    Returns
    -------
    HFSeq2SeqAttribution
        ``matrix(i)`` is the ``(T_i, L_i)`` output x source matrix of text ``i``; completeness
        holds per output token.
    """
    _check_model(model)
    if not _accepts_embeddings(model):
        raise InputError(f"expected an encoder-decoder whose forward takes inputs_embeds; {type(model).__name__} "
                         f"does not")
    batch = encode_texts(tokenizer, sources, max_length=max_positions(model), truncation=truncation,
                         device=_device(model))
    outputs = None if target is None else (as_list(target, "outputs", scalar=None)
                                           if not isinstance(target, str) else [target])
    target_ids, lengths = _output_ids(model, tokenizer, batch, outputs, max_new_tokens)
    embedding = _encoder_embedding(model)
    settings = resolve_settings(settings, options)
    with torch.no_grad():
        emb = embedding(batch.ids)
        base = _source_baseline(embedding, tokenizer, batch, settings.baselines, keep_special, emb)
    res = attribute_outputs(TeacherForcedScores(model), emb, target_ids, target_lengths=lengths,
                            strategy=strategy, forward_kwargs={"attention_mask": batch.attention_mask},
                            example_names=batch.rows, settings=settings.replace(baselines=base))
    output_tokens = [tokenizer.convert_ids_to_tokens(target_ids[k, : int(n)].tolist()) for k, n in enumerate(lengths)]
    return _finish(res, batch, HFSeq2SeqAttribution, token_ids=batch.ids, attention_mask=batch.attention_mask,
                   output_tokens=output_tokens, target_labels=[" ".join(t) for t in output_tokens])


def _encoder_embedding(model) -> torch.nn.Module:
    """The module that embeds the encoder's input ids (tied to, but not always the same object as,
    ``get_input_embeddings()``)."""
    encoder = model.get_encoder() if callable(getattr(model, "get_encoder", None)) else None
    if encoder is not None and callable(getattr(encoder, "get_input_embeddings", None)):
        return encoder.get_input_embeddings()
    return model.get_input_embeddings()


def _source_baseline(embedding, tokenizer, batch: EncodedTexts, baseline, keep_special, emb) -> torch.Tensor:
    base = baseline_embeddings(embedding, _baseline_id(tokenizer, baseline), batch.ids, emb)
    keep = batch.attention_mask == 0
    if keep_special:
        specials = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=batch.ids.dtype, device=batch.ids.device)
        keep = keep | torch.isin(batch.ids, specials)
    return torch.where(keep[..., None], emb, base)


# ---------------------------------------------------------------------------------------- dispatch, loading
def hf_integrated_gradients(model, tokenizer, texts, target=None, *, settings: Settings | None = None, **options):
    """Dispatch on :func:`model_kind`: classifier, causal LM or encoder--decoder.

    ``target`` means the class (classifier), the next token (causal LM) or the output sequence
    (encoder--decoder); ``None`` takes the model's own prediction.
    """
    kind = model_kind(model)
    if kind == "seq2seq":
        outputs = None if target is None else ([target] if isinstance(texts, str) else target)
        return seq2seq_integrated_gradients(model, tokenizer, texts, outputs, settings=settings, **options)
    call = classifier_integrated_gradients if kind == "classifier" else causal_lm_integrated_gradients
    return call(model, tokenizer, texts, target="predicted" if target is None else target, settings=settings,
                **options)


#: Files that hold a Hugging Face model's weights.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def load_local_model(path, dtype: torch.dtype = torch.float64):
    """``(model, tokenizer)`` from a local folder, offline; the model class comes from its config.

    Raises :class:`~sciattr.errors.InputError` when the folder is not a loadable model: no
    ``config.json``, a config that is not JSON or names no ``model_type``, no weights file
    (:data:`WEIGHT_FILES`), or weights whose names do not match the model (the missing and
    unexpected names are listed -- nothing is initialised at random).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers = require("transformers", "text")
    path = Path(path)
    if not (path / "config.json").is_file():
        raise InputError(f"expected a Hugging Face model folder with config.json; got {str(path)!r}")
    try:
        raw = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"expected a JSON config in {str(path / 'config.json')!r}; got {exc}") from None
    if not isinstance(raw, dict) or not raw.get("model_type"):
        raise InputError(f"expected config.json in {str(path)!r} to name its model_type (e.g. 'bert', 'gpt2'); "
                         "it names none, so the folder is not a loadable model")
    weights = [name for name in WEIGHT_FILES if (path / name).is_file()]
    if not weights:
        raise InputError(f"expected model weights in {str(path)!r} (one of {list(WEIGHT_FILES)}); found none")
    try:
        config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"expected a loadable config in {str(path)!r}; transformers refused it: {exc}") from None
    architecture = (getattr(config, "architectures", None) or [""])[0]
    cls = getattr(transformers, architecture, None) if architecture else None
    if cls is None:
        auto = (transformers.AutoModelForSeq2SeqLM if config.is_encoder_decoder
                else transformers.AutoModelForSequenceClassification)
        cls = auto
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model, info = cls.from_pretrained(path, local_files_only=True, output_loading_info=True)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
            raise InputError(f"expected loadable weights in {str(path)!r}; loading failed: "
                             f"{str(exc)[:500]}") from None
    _check_loading(info, path)
    tokenizer = _load_tokenizer(transformers, path, config)
    return model.to(dtype).eval(), tokenizer


def _check_loading(info: dict, path: Path) -> None:
    """Refuse weights that left parameters of the model at their random initialisation."""
    missing = sorted(info.get("missing_keys") or [])
    mismatched = [f"{k}" for k, *_ in (info.get("mismatched_keys") or [])]
    if missing or mismatched:
        unexpected = sorted(info.get("unexpected_keys") or [])
        raise InputError(f"expected the weights in {str(path)!r} to match the model; missing {missing[:10]}"
                         f"{' ...' if len(missing) > 10 else ''}, unexpected {unexpected[:10]}"
                         f"{' ...' if len(unexpected) > 10 else ''}, wrong shape {mismatched[:10]}")


def _load_tokenizer(transformers, path: Path, config):
    try:
        return transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        if (path / "vocab.txt").is_file() and getattr(config, "model_type", "") == "bert":
            return transformers.BertTokenizer(str(path / "vocab.txt"), do_lower_case=False)
        raise InputError(f"expected a tokenizer in {str(path)!r}; loading it failed: {exc}") from None
