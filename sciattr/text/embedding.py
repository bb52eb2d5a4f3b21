"""Integrated gradients over token embeddings, for any PyTorch model that starts with a lookup.

Token ids are not differentiable, so attributions are computed for the embedding vectors
``(n_sentences, seq_len, emb_dim)``; the path scales them from a baseline (the zero embedding,
as in both papers, or the embedding of a chosen token such as PAD/UNK/MASK) to the actual
embeddings, and summing over the embedding dimension gives one signed score per token.

Two ways to feed the scaled embeddings:

* models that accept embeddings (``forward(..., inputs_embeds=...)``) are called with them
  (:class:`EmbeddingModel` with ``call="embeddings"``);
* models that take only ids are called with ids while the output of their embedding module is
  replaced, inside a ``with sciattr.core.hooks.replace_output(...)`` block (``call="ids"``).

Padding never changes attributions: padded positions (``attention_mask == 0``), excluded special
tokens and any ``fixed`` positions keep their actual embedding all along the path, so their
attribution is exactly zero, and the mask is passed to the model. The whole batch (sentences x
path steps) goes through one engine call.

Example
-------
>>> spec = EmbeddingModel(model, embedding=model.embed, call="ids", mask_argument="attention_mask")
>>> res = embedding_integrated_gradients(spec, ids, attention_mask=mask, target=3, score="prob")
>>> res.to_tokens(0)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from sciattr.core.hooks import replace_output
from sciattr.core.targets import model_output_tensor
from sciattr.errors import InputError, ModelOutputError, TargetError, describe
from sciattr.settings import Settings, resolve_settings
from sciattr.text._engine import run_engine
from sciattr.text.tokens import EMBEDDINGS, TokenAttribution

__all__ = ["SCORES", "EmbeddingModel", "attribute_encoded", "baseline_embeddings", "embedding_integrated_gradients",
           "find_embedding", "pad_batch"]

#: How the selected output row is turned into a score before the unit is picked.
SCORES = ("logit", "log_prob", "prob")

_IDS, _MASK, _POSITION, _UNIT = "_sciattr_ids", "_sciattr_mask", "_sciattr_position", "_sciattr_unit"


@dataclass
class EmbeddingModel:
    """How to call a model on embeddings.

    Attributes
    ----------
    model:
        The model (any callable; usually an ``nn.Module``).
    embedding:
        The module mapping ids ``(n, seq_len)`` to embeddings ``(n, seq_len, emb_dim)``. ``None``:
        the model's ``get_input_embeddings()`` if it has one, else its first ``nn.Embedding``.
    call:
        ``"embeddings"``: call ``model(embeddings)`` (or ``model(**{embeddings_argument: e})``);
        ``"ids"``: call ``model(ids)`` (or by ``ids_argument``) with the embedding module's output
        replaced by the path point.
    embeddings_argument, ids_argument:
        Keyword names for the embeddings / ids; ``None`` passes them as the first positional argument.
    mask_argument:
        Keyword under which the ``(n, seq_len)`` attention mask is passed; ``None``: not passed.
    """

    model: Callable
    embedding: torch.nn.Module = None  # type: ignore[assignment]  # None: found in __post_init__
    call: str = "ids"
    embeddings_argument: str | None = None
    ids_argument: str | None = None
    mask_argument: str | None = "attention_mask"

    def __post_init__(self):
        if self.call not in ("embeddings", "ids"):
            raise InputError(f"expected call='embeddings' or 'ids'; got {self.call!r}")
        if self.embedding is None:
            self.embedding = find_embedding(self.model)
        if not isinstance(self.embedding, torch.nn.Module):
            raise InputError(f"expected embedding to be a torch.nn.Module; got {describe(self.embedding)}")

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(n, seq_len, emb_dim)`` of ``ids`` ``(n, seq_len)``."""
        emb = self.embedding(ids)
        if not isinstance(emb, torch.Tensor) or emb.dim() != 3 or tuple(emb.shape[:2]) != tuple(ids.shape):
            raise ModelOutputError(
                f"expected the embedding module to map ids {tuple(ids.shape)} to a tensor of shape "
                f"{tuple(ids.shape)} + (emb_dim,); got {describe(emb)}"
            )
        return emb

    def __call__(self, embeddings: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor | None, **extra):
        """Model output with ``embeddings`` ``(rows, seq_len, emb_dim)`` in place of the lookup."""
        kwargs = dict(extra)
        if self.mask_argument is not None and mask is not None:
            kwargs[self.mask_argument] = mask
        if self.call == "embeddings":
            return _call(self.model, self.embeddings_argument, embeddings, kwargs)
        with replace_output(self.embedding, lambda out: _checked_swap(out, embeddings)):
            return _call(self.model, self.ids_argument, ids, kwargs)


def _call(model, argument: str | None, value, kwargs):
    if argument is None:
        return model(value, **kwargs)
    return model(**{argument: value}, **kwargs)


def _checked_swap(original: torch.Tensor, replacement: torch.Tensor) -> torch.Tensor:
    if not isinstance(original, torch.Tensor) or original.shape != replacement.shape:
        raise ModelOutputError(
            f"expected the embedding module to output shape {tuple(replacement.shape)} during the "
            f"attribution pass; got {describe(original)} (is the module called more than once per forward?)"
        )
    return replacement


def find_embedding(model) -> torch.nn.Module:
    """The input embedding of ``model``: ``get_input_embeddings()`` or its first ``nn.Embedding``."""
    getter = getattr(model, "get_input_embeddings", None)
    if callable(getter):
        found = getter()
        if isinstance(found, torch.nn.Module):
            return found
    if isinstance(model, torch.nn.Module):
        for module in model.modules():
            if isinstance(module, torch.nn.Embedding):
                return module
    raise InputError(f"expected a model with an nn.Embedding (or pass embedding=...); got {describe(model)}")


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int = 0,
              device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists into ``ids`` ``(n, max_len)`` and ``attention_mask`` ``(n, max_len)``."""
    if len(sequences) == 0:
        raise InputError("expected at least one sequence of token ids; got none")
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids.to(device), mask.to(device)


# ---------------------------------------------------------------------------- validation
def _check_ids(input_ids, attention_mask) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
        raise InputError(f"expected input_ids as an integer tensor (n, seq_len); got {describe(input_ids)}")
    if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
        raise InputError("expected at least one sentence with at least one token; got shape "
                         f"{tuple(input_ids.shape)}")
    if attention_mask is None:
        mask = torch.ones_like(input_ids)
    else:
        if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape:
            raise InputError(
                f"expected attention_mask of shape {tuple(input_ids.shape)}; got {describe(attention_mask)}"
            )
        mask = attention_mask.to(input_ids.device)
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise InputError("expected attention_mask to hold only 0 and 1")
    empty = (mask.sum(1) == 0).nonzero().flatten().tolist()
    if empty:
        raise InputError(f"expected every sentence to have at least one real token; rows {empty} are all "
                         "padding")
    return input_ids, mask.long()


def _check_vocabulary(embedding: torch.nn.Module, ids: torch.Tensor) -> None:
    size = getattr(embedding, "num_embeddings", None)
    if size is None:
        return
    bad = ((ids < 0) | (ids >= size)).any(1).nonzero().flatten().tolist()
    if bad:
        raise InputError(f"expected token ids in [0, {size - 1}] (the embedding's vocabulary); rows "
                         f"{bad[:10]} are outside")


def _fixed_positions(ids, mask, special_ids: Iterable[int], exclude_special: bool, fixed) -> torch.Tensor:
    keep = mask == 0
    if exclude_special:
        specials = torch.as_tensor(sorted({int(s) for s in special_ids}), dtype=ids.dtype, device=ids.device)
        if specials.numel():
            keep = keep | torch.isin(ids, specials)
    if fixed is not None:
        fixed = torch.as_tensor(fixed, device=ids.device)
        if fixed.shape != ids.shape:
            raise InputError(f"expected fixed of shape {tuple(ids.shape)} (bool per token); got "
                             f"{describe(fixed)}")
        keep = keep | fixed.bool()
    return keep


def baseline_embeddings(embed: Callable[[torch.Tensor], torch.Tensor], baselines, ids: torch.Tensor,
                        emb: torch.Tensor) -> torch.Tensor:
    """Baseline embeddings ``(n, L, E)`` for ``emb``: ``"zeros"``/``None``, a token id (every position
    gets that token's embedding, via ``embed(ids)``) or an embedding tensor broadcast to ``emb``."""
    baseline = baselines
    if baseline is None or (isinstance(baseline, str) and baseline == "zeros"):
        return torch.zeros_like(emb)
    if isinstance(baseline, bool):
        raise InputError(f"expected baselines 'zeros', a token id or an embedding tensor; got {baseline!r}")
    if isinstance(baseline, int):
        with torch.no_grad():
            return embed(torch.full_like(ids, baseline)).to(emb.dtype)
    if isinstance(baseline, torch.Tensor) and baseline.is_floating_point():
        try:
            return torch.broadcast_to(baseline.to(emb.device, emb.dtype), emb.shape).clone()
        except RuntimeError:
            raise InputError(
                f"expected baselines as an embedding broadcastable to {tuple(emb.shape)}; got shape "
                f"{tuple(baseline.shape)}"
            ) from None
    raise InputError(
        f"expected baselines 'zeros', a token id or an embedding tensor; got {describe(baseline)}"
    )


def _positions(position, mask) -> torch.Tensor | None:
    n, width = mask.shape
    if position is None:
        return None
    if isinstance(position, str):
        if position != "last":
            raise InputError(f"expected position None, 'last', an int or (n,) ints; got {position!r}")
        idx = torch.arange(width, device=mask.device).expand(n, width)
        return torch.where(mask.bool(), idx, -1).max(1).values
    pos = torch.as_tensor(position, device=mask.device)
    if pos.is_floating_point() or pos.dim() > 1:
        raise InputError(f"expected position as an int or (n,) ints; got {describe(position)}")
    pos = pos.long().expand(n).clone()
    pos = torch.where(pos < 0, pos + width, pos)
    if bool(((pos < 0) | (pos >= width)).any()):
        raise InputError(f"expected positions in [0, {width - 1}]; got {pos.tolist()}")
    return pos


# ---------------------------------------------------------------------------- the scored forward
class _ScoredForward:
    """Engine-facing forward: embeddings -> one score per replica (or the raw output for callables)."""

    def __init__(self, spec: EmbeddingModel, score: str, callable_target: Callable | None):
        self.spec, self.score, self.callable_target = spec, score, callable_target

    def output_at(self, embeddings, kwargs) -> torch.Tensor:
        ids, mask = kwargs.pop(_IDS), kwargs.pop(_MASK)
        position = kwargs.pop(_POSITION, None)
        kwargs.pop(_UNIT, None)
        out = self.spec(embeddings, ids, mask, **kwargs)
        if self.callable_target is not None and position is None:
            return out
        out = model_output_tensor(out)
        if position is not None:
            if out.dim() < 3:
                raise ModelOutputError(
                    "expected a per-position output (rows, seq_len, units) for position=...; got shape "
                    f"{tuple(out.shape)}"
                )
            out = out[torch.arange(out.shape[0], device=out.device), position.to(out.device)]
        return out

    def __call__(self, embeddings: torch.Tensor, **kwargs) -> torch.Tensor:
        unit = kwargs.get(_UNIT)
        out = self.output_at(embeddings, kwargs)
        if self.callable_target is not None:
            return self.callable_target(out)
        if out.dim() == 1:
            out = out[:, None]
        if out.dim() != 2:
            raise ModelOutputError(
                "expected an output of shape (rows, units) at the scored position; got shape "
                f"{tuple(out.shape)} (per-position outputs need position='last' or an index)"
            )
        if self.score == "log_prob":
            out = torch.log_softmax(out, dim=-1)
        elif self.score == "prob":
            out = torch.softmax(out, dim=-1)
        if unit is None:
            if out.shape[1] != 1:
                raise TargetError(f"expected one output per sentence for target=None; got {out.shape[1]} "
                                  f"units; pass target=<index>")
            return out[:, 0]
        unit = unit.to(out.device)
        if int(unit.max()) >= out.shape[1]:
            raise TargetError(f"expected targets in [0, {out.shape[1] - 1}]; got {int(unit.max())}")
        return out.gather(1, unit[:, None])[:, 0]


def _units(target, n: int, device) -> torch.Tensor | None:
    if target is None or callable(target) or isinstance(target, str):
        return None
    if isinstance(target, bool):
        raise TargetError("expected target None, an int, (n,) ints, 'predicted' or a callable; got "
                          f"{target!r}")
    units = torch.as_tensor(target, device=device)
    if units.is_floating_point() or units.dim() > 1:
        raise TargetError(f"expected target as an int or (n,) ints; got {describe(target)}")
    units = units.long().expand(n).clone() if units.dim() == 0 else units.long()
    if units.shape[0] != n:
        raise TargetError(f"expected one target per sentence ({n}); got {units.shape[0]}")
    if bool((units < 0).any()):
        raise TargetError(f"expected non-negative targets; got {units.tolist()}")
    return units


def _describe_target(target, score: str, position) -> str:
    where = "" if position is None else f" at position {position if isinstance(position, str) else 'given'}"
    if callable(target) and not isinstance(target, torch.Tensor):
        return f"{getattr(target, '__name__', 'callable')}{where}"
    if target is None:
        return f"output{where}"
    what = "predicted class" if isinstance(target, str) else "unit"
    return f"{score}[{what}]{where}"


# ---------------------------------------------------------------------------- the entry point
def embedding_integrated_gradients(
    model: EmbeddingModel | Callable,
    input_ids: torch.Tensor,
    *,
    attention_mask: torch.Tensor | None = None,
    target=None,
    score: str = "logit",
    position=None,
    special_ids: Iterable[int] = (),
    exclude_special: bool = False,
    fixed: torch.Tensor | None = None,
    tokens: list | None = None,
    forward_kwargs: dict | None = None,
    example_names: Sequence | None = None,
    settings: Settings | None = None,
    **options,
) -> TokenAttribution:
    """Attribute a text model's score to its token embeddings.

    Parameters
    ----------
    model:
        An :class:`EmbeddingModel`, or a model (wrapped as ``EmbeddingModel(model)``: called with
        ids, embedding found automatically, mask passed as ``attention_mask``).
    input_ids:
        ``(n, seq_len)`` integer token ids (padded where ``attention_mask`` is 0).
    attention_mask:
        ``(n, seq_len)`` 1 for real tokens, 0 for padding; default all ones.
    target:
        ``None`` (one output per sentence), an int or ``(n,)`` ints (class / vocabulary unit),
        ``"predicted"`` (the arg-max unit at the input) or a callable ``fn(output) -> (rows,)``
        that receives the model output (at ``position`` when given).
    score:
        ``"logit"`` (the raw output), ``"log_prob"`` or ``"prob"`` (log-softmax / softmax over
        the last dimension) -- the function whose change is attributed.
    position:
        For per-position outputs ``(n, seq_len, units)`` (language models): ``"last"`` (the last
        real token of each sentence), an int or ``(n,)`` ints; ``None`` for per-sentence outputs.
    special_ids, exclude_special:
        With ``exclude_special=True`` tokens whose id is in ``special_ids`` keep their embedding
        along the path (attribution 0); otherwise they are attributed like any token.
    fixed:
        ``(n, seq_len)`` bool, extra positions kept at their embedding (e.g. a BOS token of a
        causal language model).
    tokens:
        ``tokens[i]``: the token strings of sentence ``i`` at its real positions (for the views).
    forward_kwargs:
        Extra per-sentence tensors ``(n, ...)`` for the model, repeated along the path.
    example_names:
        A label per sentence (e.g. its row in the caller's batch) used in warnings.
    settings, **options:
        A :class:`~sciattr.settings.Settings` and/or its fields as keywords (``method``,
        ``steps``, ``rule``, ``tolerance``, ``baselines``, ...). ``baselines``: ``None`` or
        ``"zeros"`` (the zero embedding), a token id (e.g. PAD/UNK/MASK: its embedding) or an
        embedding tensor broadcastable to ``(n, seq_len, emb_dim)``.

    Returns
    -------
    TokenAttribution
        ``attributions["embeddings"]`` has shape ``(n, seq_len, emb_dim)``.
    """
    spec = model if isinstance(model, EmbeddingModel) else EmbeddingModel(model)
    if score not in SCORES:
        raise InputError(f"expected score in {SCORES}; got {score!r}")
    if isinstance(target, str) and target != "predicted":
        raise TargetError("expected target 'predicted', None, an int, (n,) ints or a callable; got "
                          f"{target!r}")
    settings = resolve_settings(settings, options)
    baseline = settings.baselines
    ids, mask = _check_ids(input_ids, attention_mask)
    _check_vocabulary(spec.embedding, ids)
    with torch.no_grad():
        emb = spec.embed(ids).detach()
        base = baseline_embeddings(spec.embed, baseline, ids, emb)
    keep = _fixed_positions(ids, mask, special_ids, exclude_special, fixed)
    base = torch.where(keep[..., None], emb, base)
    pos = _positions(position, mask)
    callable_target = target if callable(target) and not isinstance(target, torch.Tensor) else None
    forward = _ScoredForward(spec, score, callable_target)
    kwargs = {**(forward_kwargs or {}), _IDS: ids, _MASK: mask}
    if pos is not None:
        kwargs[_POSITION] = pos
    units = _units(target, ids.shape[0], ids.device)
    if target == "predicted":
        units = _predicted_units(forward, emb, kwargs, score)
    if units is not None:
        kwargs[_UNIT] = units
    res = run_engine(forward, {EMBEDDINGS: emb}, settings=settings.replace(baselines={EMBEDDINGS: base}),
                     forward_kwargs=kwargs, example_names=example_names)
    res = dataclasses.replace(res, target=_describe_target(target, score, position))
    if hasattr(res, "settings"):
        res = dataclasses.replace(res, settings=settings)
    res.meta.update({"score": score,
                     "baselines": baseline if not isinstance(baseline, torch.Tensor) else "tensor",
                     "call": spec.call, "units": None if units is None else units.tolist()})
    return res.specialize(TokenAttribution, tokens=list(tokens or []), token_ids=ids, attention_mask=mask,
                          rows=list(range(ids.shape[0])))


def _predicted_units(forward: _ScoredForward, emb, kwargs, score) -> torch.Tensor:
    with torch.no_grad():
        out = forward.output_at(emb, dict(kwargs))
    return out.reshape(out.shape[0], -1).argmax(1)


def attribute_encoded(model: EmbeddingModel | Callable, batch, *, pad_id: int = 0, target=None,
                      target_labels: list | None = None, **options) -> TokenAttribution:
    """Attribute the good rows of an encoded batch and carry its notes and errors along.

    ``batch`` has ``ids`` (lists of token ids), ``tokens``, ``notes``, ``rows`` (the caller's row
    of each) and ``errors`` (bad rows), like :class:`sciattr.text.corpus.EncodedBatch`; ``target``
    is given for the good rows only. All rows bad raises :class:`InputError` listing them.
    """
    if not batch.ids:
        listed = "; ".join(f"row {e['row']}: {e['message']}" for e in batch.errors) or "no rows given"
        raise InputError(f"expected at least one usable text; got none ({listed})")
    spec = model if isinstance(model, EmbeddingModel) else EmbeddingModel(model)
    weight = next(iter(spec.embedding.parameters()), None)
    ids, mask = pad_batch(batch.ids, pad_id, device=None if weight is None else weight.device)
    res = embedding_integrated_gradients(spec, ids, attention_mask=mask, tokens=batch.tokens, target=target,
                                         example_names=list(batch.rows), **options)
    return dataclasses.replace(res, notes=[list(n) for n in batch.notes], errors=list(batch.errors),
                               rows=list(batch.rows), target_labels=list(target_labels or []),
                               row_ids=list(getattr(batch, "row_ids", []) or []))
