"""Whole continuations of causal language models: every continuation token against everything before it.

For a prompt ``x_1 .. x_P`` and a continuation ``y_1 .. y_T`` (generated greedily, or given), the
score of output ``t`` is ``log p(y_t | x, y_<t)``. The input is the whole sequence
``x_1 .. x_P y_1 .. y_{T-1}``; its token embeddings are scaled together along one straight path from
the baseline, and each output token's score is integrated along it. The result is the
``(T, P + T - 1)`` output x input matrix: row ``t`` attributes ``y_t`` to the prompt and to the
earlier continuation tokens (the model is causal, so the columns from position ``P + t - 1`` on are
exactly zero), with the completeness gap of each row.

All output tokens share the forward passes: this goes through
:func:`sciattr.text.seq2seq.attribute_outputs`, the machinery of the encoder--decoder matrices
(strategy ``"multi_target"``: one forward pass and one backward pass per output token for each
chunk of path nodes; ``"per_token"``: one engine call per output token, the reference).

Because the model is causal, row ``t`` equals integrated gradients of ``log p(y_t | ...)`` computed
on its own for the prefix ``x y_<t`` (tested to float64 rounding).

Conventions (and how they relate to Captum's ``LLMGradientAttribution`` with
``LayerIntegratedGradients`` on the input embedding):

* the first token keeps its embedding along the path (``keep_first=True``, attribution 0): a path
  that removes it leaves the model's domain and IG does not converge. Captum scales every prompt
  token, the first included; ``keep_first=False`` gives its convention.
* the baseline of the other tokens is the zero embedding (``baselines=None``); Captum's default
  is the embedding of token id 0 (its baseline *ids* are zeros) -- ``baselines=0`` here.
* Captum attributes only the prompt: the earlier continuation tokens are appended to the input
  unchanged at every path point, so their contribution is left out of row ``t`` and the row does
  not add up to ``log p(y_t | x, y_<t)`` at the input minus at the baseline. Here they are scaled
  too and attributed (pass ``scale_continuation=False`` to keep them fixed, Captum's choice; their
  columns are then 0).

With ``keep_first=False, baselines=0, scale_continuation=False`` and the same quadrature (Captum's
default: 50 Gauss--Legendre nodes), the prompt columns equal Captum's ``token_attr`` (measured on a
tiny float64 GPT-2: within 1e-11, Captum's quadrature weights being rounded to float32); with
``keep_first=True`` they equal Captum's with the baseline mask ``[1, 0, 0, ...]`` (Captum's
attributed input is a 0/1 mask over the prompt tokens, 0 meaning the baseline token id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import torch

from sciattr.core.targets import model_output_tensor
from sciattr.errors import InputError, describe
from sciattr.settings import Settings, resolve_settings
from sciattr.text._engine import row_ids
from sciattr.text.embedding import EmbeddingModel, baseline_embeddings
from sciattr.text.huggingface import HFSeq2SeqAttribution, _baseline_id, _spec, max_positions
from sciattr.text.seq2seq import STRATEGIES, attribute_outputs

__all__ = ["CausalScores", "ContinuationAttribution", "continuation_integrated_gradients", "greedy_continuation",
           "word_ids_of"]


class CausalScores(torch.nn.Module):
    """``(rows, T)`` log-probability of each continuation token given every token before it.

    Called by the engine with the embeddings ``(rows, L, E)`` of ``prompt + continuation[:-1]``
    (right-padded), ``target_ids`` ``(rows, T)`` (the continuation), the ``attention_mask``
    ``(rows, L)``, the ids ``input_ids`` ``(rows, L)`` and ``prompt_lengths`` ``(rows,)``. Output
    ``t`` of row ``r`` is read at position ``prompt_lengths[r] - 1 + t``.
    """

    def __init__(self, spec: EmbeddingModel):
        super().__init__()
        self.spec = spec
        if isinstance(spec.model, torch.nn.Module):
            self.model = spec.model
            self.train(spec.model.training)

    def forward(self, embeddings, target_ids, attention_mask, input_ids, prompt_lengths):
        """``(rows, T)`` log-probabilities of ``target_ids`` with ``embeddings`` in place of the lookup."""
        logits = model_output_tensor(self.spec(embeddings, input_ids, attention_mask))
        if logits.dim() != 3:
            raise InputError(f"expected per-position logits (rows, seq_len, vocab) from a causal LM; got "
                             f"{describe(logits)}")
        T = target_ids.shape[1]
        where = prompt_lengths.to(logits.device).long()[:, None] - 1 + torch.arange(T, device=logits.device)
        where = where.clamp(max=logits.shape[1] - 1)  # padded outputs past the end: never attributed
        picked = logits.gather(1, where[..., None].expand(-1, -1, logits.shape[2]))
        return torch.log_softmax(picked, dim=-1).gather(2, target_ids[..., None].to(logits.device)).squeeze(2)


@dataclass(repr=False)
class ContinuationAttribution(HFSeq2SeqAttribution):
    """Output x input matrices of causal-LM continuations.

    ``tokens[i]``: prompt and continuation tokens except the last (the inputs);
    ``output_tokens[i]``: the continuation; ``prompt_lengths[i]``: prompt tokens. ``matrix(i)`` is
    ``(T_i, P_i + T_i - 1)``, zero right of each row's context; ``word_matrix(i)`` groups rows and
    columns into words (``word_ids``, ``output_word_ids``).
    """

    prompt_lengths: list = field(default_factory=list)

    __repr__ = HFSeq2SeqAttribution.__repr__

    def context_length(self, example: int, output: int) -> int:
        """Tokens output ``output`` is conditioned on: the prompt and the continuation before it."""
        return int(self.prompt_lengths[example]) + output


# ---------------------------------------------------------------------------------------- inputs
def _is_ids(value) -> bool:
    if isinstance(value, torch.Tensor):
        return value.dim() == 1 and not value.is_floating_point()
    return (isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value))


def _rows(value, what: str) -> tuple[list, bool]:
    """A batch of items (texts or id lists) and whether a single item was given."""
    if isinstance(value, str) or _is_ids(value):
        return [value], True
    if isinstance(value, torch.Tensor) and value.dim() == 2 and not value.is_floating_point():
        return [row for row in value], False
    if hasattr(value, "tolist") and not isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value), False
    raise InputError(f"expected {what} as a text, token ids, or a list / pandas Series of them; got {describe(value)}")


def _ids(item, tokenizer, special: bool, what: str) -> list[int]:
    if isinstance(item, str):
        if tokenizer is None:
            raise InputError(f"expected token ids for the {what} (or pass tokenizer= for texts); got a text {item!r}")
        if not item.strip():
            raise InputError(f"expected a non-empty {what}; got {item!r}")
        return [int(i) for i in tokenizer(item, add_special_tokens=special)["input_ids"]]
    if isinstance(item, torch.Tensor):
        item = item.tolist()
    if not (isinstance(item, Sequence) and all(isinstance(v, int) and not isinstance(v, bool) for v in item)):
        raise InputError(f"expected the {what} as a text or a list of token ids; got {describe(item)}")
    if not item:
        raise InputError(f"expected at least one token in the {what}; got none")
    return [int(i) for i in item]


@torch.no_grad()
def greedy_continuation(model, prompt: Sequence[int], max_new_tokens: int, eos_token_id=None) -> list[int]:
    """Greedy continuation of ``prompt`` (token ids): up to ``max_new_tokens`` ids, ending at ``eos_token_id``."""
    device = next(model.parameters()).device
    ids = torch.tensor([list(prompt)], dtype=torch.long, device=device)
    stops = set(eos_token_id if isinstance(eos_token_id, (list, tuple)) else [eos_token_id]) - {None}
    out = []
    for _ in range(max_new_tokens):
        logits = model_output_tensor(model(input_ids=ids))
        token = int(logits[0, -1].argmax())
        out.append(token)
        if token in stops:
            break
        ids = torch.cat([ids, torch.tensor([[token]], device=device)], dim=1)
    return out


def word_ids_of(tokenizer, ids: Sequence[int]) -> list:
    """Word index of each token of ``ids`` (``None`` for special tokens).

    A token starts a word when it is the first, follows a special token, or when the tokenizer
    writes it after the previous token with whitespace between (``convert_tokens_to_string``:
    ``Ġ``/``▁`` markers, WordPiece without ``##``). Without a tokenizer every token is a word of
    its own.
    """
    if tokenizer is None:
        return list(range(len(ids)))
    tokens = tokenizer.convert_ids_to_tokens(list(ids))
    specials = set(getattr(tokenizer, "all_special_ids", []) or [])
    out: list[int | None] = []
    word, previous = -1, None
    for token_id, token in zip(ids, tokens):
        if token_id in specials:
            out.append(None)
            previous = None
            continue
        if previous is None:
            starts = True
        else:
            joined = tokenizer.convert_tokens_to_string([previous, token]).split()
            starts = len(joined) > len(tokenizer.convert_tokens_to_string([previous]).split())
        word += 1 if starts else 0
        out.append(word)
        previous = token
    return out


# ---------------------------------------------------------------------------------------- entry point
def continuation_integrated_gradients(
    model,
    prompts,
    target=None,
    *,
    tokenizer=None,
    max_new_tokens: int = 10,
    keep_first: bool = True,
    keep_special: bool = True,
    scale_continuation: bool = True,
    strategy: str = "multi_target",
    settings: Settings | None = None,
    **options,
) -> ContinuationAttribution:
    """Attribute every token of a causal LM's continuation to the prompt and the earlier continuation tokens.

    Parameters
    ----------
    model:
        A Hugging Face causal LM (called with ``inputs_embeds``) or an
        :class:`~sciattr.text.embedding.EmbeddingModel` whose output is ``(rows, L, vocab)`` logits.
    prompts:
        A prompt or a batch: token ids (a list of ints, a 1-D tensor; a 2-D tensor is a batch of
        equal-length prompts) or texts (with ``tokenizer``); a list or pandas Series of them.
    target:
        The continuation of each prompt (token ids, or a text with ``tokenizer``, encoded without
        special tokens); ``None`` (default, also per prompt): greedy generation of up to
        ``max_new_tokens`` tokens (stopping after ``config.eos_token_id``).
    tokenizer:
        Optional: for texts, token strings and word grouping (:func:`word_ids_of`).
    keep_first, keep_special, scale_continuation:
        Tokens that keep their embedding along the path (attribution 0): the first token (see the
        module docstring), special tokens, and -- with ``scale_continuation=False`` -- the
        continuation tokens used as inputs.
    strategy:
        ``"multi_target"`` (default: all output tokens share each forward pass), ``"replicate"``
        or ``"per_token"`` (one engine call per output token); the same numbers.
    settings, **options:
        A :class:`~sciattr.settings.Settings` and/or its fields. ``baselines``: ``None``/``"zeros"``,
        ``"pad"``/``"mask"`` (with a tokenizer), a token id or an embedding tensor.

    Returns
    -------
    ContinuationAttribution
        ``matrix(i)`` ``(T_i, P_i + T_i - 1)``, ``output_gaps(i)`` the relative completeness gap
        per output token, ``word_matrix(i)``, ``to_dataframe(level)``; bad rows in ``errors``.
    """
    if strategy not in STRATEGIES:
        raise InputError(f"expected strategy in {STRATEGIES}; got {strategy!r}")
    settings = resolve_settings(settings, options)
    spec = model if isinstance(model, EmbeddingModel) else _spec(model)
    lm = spec.model
    ids_of_rows = row_ids(prompts)
    prompt_rows, single = _rows(prompts, "prompts")
    if not prompt_rows:
        raise InputError("expected at least one prompt; got none")
    if target is None:
        targets = [None] * len(prompt_rows)
    else:
        targets = [target] if single else _rows(target, "continuations")[0]
        if len(targets) != len(prompt_rows):
            raise InputError(f"expected one continuation per prompt ({len(prompt_rows)}); got {len(targets)}")
    limit = max_positions(lm)
    vocab = getattr(spec.embedding, "num_embeddings", None)
    config = getattr(lm, "config", None)
    eos = getattr(getattr(lm, "generation_config", None), "eos_token_id", None) or getattr(config, "eos_token_id", None)
    good, errors = [], []
    for row, (prompt, cont) in enumerate(zip(prompt_rows, targets)):
        try:
            p = _ids(prompt, tokenizer, True, "prompt")
            _check_range(p, vocab, "prompt")
            c = (greedy_continuation(lm, p, max_new_tokens, eos) if cont is None
                 else _ids(cont, tokenizer, False, "continuation"))
            _check_range(c, vocab, "continuation")
            if limit is not None and len(p) + len(c) - 1 > limit:
                raise InputError(f"expected prompt + continuation within the model's {limit} positions; got "
                                 f"{len(p)} + {len(c)}")
            good.append((row, p, c))
        except InputError as exc:
            errors.append({"row": row, "input": str(prompt)[:80], "message": str(exc)})
    if not good:
        raise InputError("no row could be attributed: " + "; ".join(f"row {e['row']}: {e['message']}" for e in errors))
    return _attribute(spec, good, errors, tokenizer, keep_first, keep_special, scale_continuation, strategy,
                      settings, ids_of_rows)


def _check_range(ids: list[int], vocab: int | None, what: str) -> None:
    bad = [i for i in ids if i < 0 or (vocab is not None and i >= vocab)]
    if bad:
        raise InputError(f"expected {what} token ids in [0, {vocab - 1 if vocab else '...'}]; got {bad[:5]}")


def _attribute(spec, good, errors, tokenizer, keep_first, keep_special, scale_continuation, strategy, settings,
               ids_of_rows) -> ContinuationAttribution:
    device = next(iter(spec.embedding.parameters())).device
    sequences = [p + c[:-1] for _, p, c in good]
    n, width, T = len(good), max(len(s) for s in sequences), max(len(c) for _, _, c in good)
    pad = 0 if tokenizer is None or tokenizer.pad_token_id is None else int(tokenizer.pad_token_id)
    ids = torch.full((n, width), pad, dtype=torch.long, device=device)
    mask = torch.zeros((n, width), dtype=torch.long, device=device)
    target_ids = torch.zeros((n, T), dtype=torch.long, device=device)
    keep = torch.zeros((n, width), dtype=torch.bool, device=device)
    for k, (seq, (_, p, c)) in enumerate(zip(sequences, good)):
        ids[k, : len(seq)] = torch.tensor(seq)
        mask[k, : len(seq)] = 1
        target_ids[k, : len(c)] = torch.tensor(c)
        keep[k, 0] = keep_first
        if not scale_continuation:
            keep[k, len(p): len(seq)] = True
    if keep_special and tokenizer is not None:
        specials = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long, device=device)
        keep |= torch.isin(ids, specials)
    keep |= mask == 0
    baselines = settings.baselines if tokenizer is None else _baseline_id(tokenizer, settings.baselines)
    with torch.no_grad():
        emb = spec.embed(ids).detach()
        base = torch.where(keep[..., None], emb, baseline_embeddings(spec.embed, baselines, ids, emb))
    lengths = torch.tensor([len(c) for _, _, c in good])
    prompt_lengths = torch.tensor([len(p) for _, p, _ in good], device=device)
    res = attribute_outputs(CausalScores(spec), emb, target_ids, target_lengths=lengths, strategy=strategy,
                            forward_kwargs={"attention_mask": mask, "input_ids": ids, "prompt_lengths": prompt_lengths},
                            example_names=[row for row, _, _ in good], settings=settings.replace(baselines=base))
    name = (lambda xs: tokenizer.convert_ids_to_tokens(xs)) if tokenizer is not None else (
        lambda xs: [str(x) for x in xs])
    words = [word_ids_of(tokenizer, p + c) for _, p, c in good]
    output_tokens = [name(c) for _, _, c in good]
    return cast(ContinuationAttribution, res.specialize(
        ContinuationAttribution, tokens=[name(s) for s in sequences], token_ids=ids, attention_mask=mask,
        target_labels=[" ".join(o) for o in output_tokens], notes=[[] for _ in good], errors=errors,
        rows=[row for row, _, _ in good], row_ids=ids_of_rows, output_tokens=output_tokens,
        word_ids=[w[: len(s)] for w, s in zip(words, sequences)],
        output_word_ids=[w[len(p):] for w, (_, p, _) in zip(words, good)],
        prompt_lengths=[len(p) for _, p, _ in good],
    ))
