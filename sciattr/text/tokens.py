"""Token-level views of an attribution over embeddings.

:class:`TokenAttribution` is the :class:`sciattr.Attribution` of a text model, with the tokens
attached. Attributions of the ``(n_examples, seq_len, emb_dim)`` embeddings are summed over the
embedding dimension to give one signed score per token; completeness carries over, because the
sum over tokens equals the sum over all embedding coordinates.

Typical use::

    res = embedding_integrated_gradients(model, ids, embedding=model.embed, tokens=tokens, target=2)
    res.to_tokens(0)          # [("the", 0.01), ("striker", 0.42), ...]
    res.to_words(0, word_ids) # subword pieces summed into words
    print(res.table(0))

Rows of a batch that could not be processed are listed in ``errors`` (one dict per bad row
with keys ``row``, ``input`` and ``message``); ``rows`` maps each example of the result back to
its row in the caller's batch. Per-example remarks (unknown words, truncation) are in ``notes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from sciattr.errors import InputError, require
from sciattr.result import Attribution

__all__ = ["LEVELS", "TokenAttribution", "aggregate_tokens", "group_by_word", "words_from_offsets"]

#: Levels of :meth:`TokenAttribution.to_dataframe`.
LEVELS = ("example", "token", "word")

#: Name under which embedding inputs are attributed.
EMBEDDINGS = "embeddings"

_AGGREGATIONS = ("sum", "abs", "l2")


def aggregate_tokens(attributions: torch.Tensor, how: str = "sum") -> torch.Tensor:
    """Collapse the embedding dimension of ``(n, seq_len, emb_dim[, T])`` attributions.

    ``how``: ``"sum"`` (signed; keeps completeness), ``"abs"`` (sum of absolute values) or
    ``"l2"`` (Euclidean norm). Returns ``(n, seq_len[, T])``.
    """
    if how not in _AGGREGATIONS:
        raise InputError(f"expected how in {_AGGREGATIONS}; got {how!r}")
    if attributions.dim() < 3:
        raise InputError(
            "expected attributions of shape (n, seq_len, emb_dim[, T]); got shape "
            f"{tuple(attributions.shape)}"
        )
    if how == "sum":
        return attributions.sum(2)
    if how == "abs":
        return attributions.abs().sum(2)
    return attributions.pow(2).sum(2).sqrt()


def words_from_offsets(text: str, offsets: Sequence[tuple[int, int]]) -> list[int | None]:
    """Word index of each token from tokenizer character offsets.

    Words are the whitespace-separated spans of ``text``; a token belongs to the word containing
    its first character. Tokens with an empty span ``(s, s)`` (special tokens) get ``None``.
    """
    spans = []
    start = None
    for pos, char in enumerate(text + " "):
        if char.isspace():
            if start is not None:
                spans.append((start, pos))
                start = None
        elif start is None:
            start = pos
    word_ids: list[int | None] = []
    for begin, end in offsets:
        if end <= begin:
            word_ids.append(None)
            continue
        owner = next((w for w, (s, e) in enumerate(spans) if s <= begin < e), None)
        word_ids.append(owner)
    return word_ids


def group_by_word(tokens: Sequence[str], scores: Sequence[float], word_ids: Sequence[int | None],
                  words: Sequence[str] | None = None) -> list[tuple[str, float]]:
    """Sum token scores into words by signed sums (the total is unchanged).

    ``word_ids[k]`` is the word of token ``k`` (``None``: the token stays on its own, e.g. a
    special token). Word text is ``words[w]`` when given, else the pieces joined with ``##``
    and ``▁``/``Ġ`` markers removed. Words appear in order of their first token.
    """
    if not (len(tokens) == len(scores) == len(word_ids)):
        raise InputError(
            f"expected tokens, scores and word_ids of equal length; got {len(tokens)}, {len(scores)}, "
            f"{len(word_ids)}"
        )
    groups: dict = {}
    order: list = []
    for k, (tok, score, wid) in enumerate(zip(tokens, scores, word_ids)):
        key = ("token", k) if wid is None else ("word", int(wid))
        if key not in groups:
            groups[key] = ([], 0.0)
            order.append(key)
        pieces, total = groups[key]
        groups[key] = (pieces + [tok], total + float(score))
    out = []
    for key in order:
        pieces, total = groups[key]
        if key[0] == "word" and words is not None:
            text = words[key[1]]
        elif key[0] == "word":
            text = _join_pieces(pieces)
        else:
            text = pieces[0]
        out.append((text, total))
    return out


def _join_pieces(pieces: Sequence[str]) -> str:
    text = "".join(p.removeprefix("##") for p in pieces)
    return text.replace("▁", "").replace("Ġ", "") or "".join(pieces)


@dataclass(repr=False)
class TokenAttribution(Attribution):
    """An :class:`~sciattr.Attribution` over token embeddings, with tokens and per-row notes.

    Extra fields
    ------------
    tokens:
        ``tokens[i]`` -- the tokens of example ``i`` at its real (unmasked) positions, in order.
    token_ids:
        ``(n, seq_len)`` token ids (padded).
    attention_mask:
        ``(n, seq_len)`` 1 at real tokens, 0 at padding.
    embedding_name:
        Name of the embedding input in ``attributions`` (``"embeddings"``).
    target_labels:
        Human-readable target of each example (the next word, a class name), or empty.
    notes:
        ``notes[i]`` -- remarks on example ``i`` (unknown words mapped to ``<unk>``, truncation).
    errors:
        Rows of the caller's batch that could not be attributed: dicts with ``row``, ``input``
        and ``message``. Those rows are absent from the tensors.
    rows:
        ``rows[i]`` -- the caller's row of example ``i``.
    row_ids:
        ``row_ids[r]`` -- the caller's id of input row ``r`` (the index of a pandas Series given
        as input), for every input row, bad ones included; empty when none was given.
    """

    tokens: list = field(default_factory=list)
    token_ids: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None
    embedding_name: str = EMBEDDINGS
    target_labels: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    row_ids: list = field(default_factory=list)

    # ------------------------------------------------------------------ per-token scores
    def token_scores(self, how: str = "sum") -> torch.Tensor:
        """``(n, seq_len[, T])`` attribution per token position (padding gives 0)."""
        return aggregate_tokens(self.attributions[self.embedding_name], how)

    def _positions(self, example: int) -> torch.Tensor:
        if not 0 <= example < self.n_examples:
            raise InputError(f"expected an example index in [0, {self.n_examples - 1}]; got {example}")
        scores = self.token_scores()
        if self.attention_mask is None:
            return torch.arange(scores.shape[1], device=scores.device)
        return self.attention_mask[example].to(scores.device).nonzero().flatten()

    def example_scores(self, example: int, how: str = "sum", target: int = 0) -> list[float]:
        """Scores of the real tokens of one example (for several targets: of target ``target``)."""
        scores = self.token_scores(how)[example][self._positions(example)]
        if self.multi_target:
            scores = scores[:, target]
        return [float(s) for s in scores]

    def token_texts(self, example: int) -> list[str]:
        """Tokens of one example (ids as strings when no tokens were attached)."""
        n_real = len(self._positions(example))
        if example < len(self.tokens) and self.tokens[example]:
            return list(self.tokens[example])
        if self.token_ids is not None:
            ids = self.token_ids[example][self._positions(example).to(self.token_ids.device)]
            return [str(int(t)) for t in ids]
        return [f"#{k}" for k in range(n_real)]

    def to_tokens(self, example: int = 0, how: str = "sum", target: int = 0) -> list[tuple[str, float]]:
        """``[(token, attribution), ...]`` for one example; ``how="sum"`` keeps completeness."""
        return list(zip(self.token_texts(example), self.example_scores(example, how, target)))

    def to_words(self, example: int = 0, word_ids: Sequence[int | None] | None = None, *,
                 offsets: Sequence[tuple[int, int]] | None = None, text: str | None = None,
                 target: int = 0) -> list[tuple[str, float]]:
        """Subword tokens summed into words (signed sums, so completeness survives).

        Give either ``word_ids`` (word index per token, ``None`` for special tokens -- e.g. a
        Hugging Face ``encoding.word_ids()``) or tokenizer ``offsets`` with the ``text`` they
        index. Without either, tokens are their own words.
        """
        tokens = self.token_texts(example)
        scores = self.example_scores(example, "sum", target)
        words = None
        if word_ids is None and offsets is not None:
            if text is None:
                raise InputError("expected text= together with offsets=; got offsets only")
            word_ids = words_from_offsets(text, offsets)
            words = text.split()
        if word_ids is None:
            return list(zip(tokens, scores))
        if len(word_ids) != len(tokens):
            raise InputError(
                f"expected one word id per real token ({len(tokens)}) of example {example}; got "
                f"{len(word_ids)}"
            )
        return group_by_word(tokens, scores, word_ids, words)

    def total(self, example: int, target: int = 0) -> float:
        """Sum of the token attributions of one example."""
        return float(sum(self.example_scores(example, "sum", target)))

    def top_tokens(self, example: int = 0, k: int = 5, target: int = 0) -> list[tuple[str, float]]:
        """The ``k`` tokens with the largest absolute attribution, largest first."""
        pairs = self.to_tokens(example, target=target)
        return sorted(pairs, key=lambda p: -abs(p[1]))[:k]

    # ------------------------------------------------------------------ presentation
    def table(self, example: int | None = None, target: int = 0) -> str:
        """Plain-text table of tokens and attributions with F(x), F(x') and the gap."""
        examples = range(self.n_examples) if example is None else [example]
        blocks = []
        for i in examples:
            fx, fb = self._scalar(self.forward_x, i, target), self._scalar(self.forward_baseline, i, target)
            label = self.target_labels[i] if i < len(self.target_labels) else self.target
            head = (f"example {self.rows[i] if i < len(self.rows) else i}: target {label}  "
                    f"F(x)={fx:.6g}  F(x')={fb:.6g}  sum={self.total(i, target):.6g}  "
                    f"gap={fx - fb - self.total(i, target):.2e}")
            lines = [head, f"  {'token':<20} {'attribution':>12}"]
            lines += [f"  {tok[:20]:<20} {score:>12.6f}" for tok, score in self.to_tokens(i, target=target)]
            if i < len(self.notes):
                lines += [f"  note: {note}" for note in self.notes[i]]
            blocks.append("\n".join(lines))
        for err in self.errors:
            blocks.append(f"row {err['row']}: error: {err['message']}")
        return "\n\n".join(blocks)

    def _scalar(self, values: torch.Tensor, example: int, target: int) -> float:
        value = values[example]
        return float(value[target] if self.multi_target else value)

    def records(self, target: int = 0) -> list[dict]:
        """One JSON-serialisable dict per example (tokens, scores, F(x), F(x'), notes), then errors."""
        out = []
        for i in range(self.n_examples):
            out.append({
                "row": self.rows[i] if i < len(self.rows) else i,
                "target": self.target_labels[i] if i < len(self.target_labels) else self.target,
                "tokens": self.token_texts(i),
                "attributions": self.example_scores(i, "sum", target),
                "forward_x": self._scalar(self.forward_x, i, target),
                "forward_baseline": self._scalar(self.forward_baseline, i, target),
                "notes": list(self.notes[i]) if i < len(self.notes) else [],
            })
        return out

    # ------------------------------------------------------------------ tables
    def row_of(self, example: int) -> int:
        """The caller's row of example ``example``."""
        return self.rows[example] if example < len(self.rows) else example

    def _row_fields(self, row: int) -> dict:
        out: dict = {"row": row}
        if self.row_ids:
            out["id"] = self.row_ids[row] if 0 <= row < len(self.row_ids) else None
        return out

    def _label(self, example: int):
        return self.target_labels[example] if example < len(self.target_labels) else self.target

    def _word_pairs(self, example: int, target: int = 0) -> list[tuple[str, float]]:
        return self.to_words(example, target=target)

    def _example_record(self, i: int) -> dict:
        fx, fb = self._scalar(self.forward_x, i, 0), self._scalar(self.forward_baseline, i, 0)
        total = self.total(i)
        return {"status": "ok", "input": " ".join(self.token_texts(i)), "target": self._label(i),
                "prediction": fx, "baseline_score": fb, "attribution_sum": total, "gap": total - (fx - fb),
                "relative_gap": float(self.relative_gap[i] if not self.multi_target else self.relative_gap[i, 0]),
                "steps": int(self.steps[i]), "notes": "; ".join(self.notes[i]) if i < len(self.notes) else "",
                "error": ""}

    def _level_records(self, i: int, level: str) -> list[dict]:
        if level == "example":
            return [self._example_record(i)]
        pairs = self.to_tokens(i) if level == "token" else self._word_pairs(i)
        return [{"status": "ok", "target": self._label(i), level: text, "position": k, "attribution": value}
                for k, (text, value) in enumerate(pairs)]

    def to_records(self, level: str = "example") -> list[dict]:
        """The rows of :meth:`to_dataframe` as dicts (no pandas needed)."""
        if level not in LEVELS:
            raise InputError(f"expected level in {LEVELS}; got {level!r}")
        lines = []
        for i in range(self.n_examples):
            row = self.row_of(i)
            lines += [(row, k, {**self._row_fields(row), **record})
                      for k, record in enumerate(self._level_records(i, level))]
        for err in self.errors:
            lines.append((err["row"], 0, {**self._row_fields(err["row"]), "status": "error",
                                          "input": str(err.get("input", "")), "error": err["message"]}))
        return [record for _, _, record in sorted(lines, key=lambda item: (item[0], item[1]))]

    def to_dataframe(self, level: str = "example"):
        """A pandas DataFrame with the input row (and its id, where given) on every line.

        ``level="example"``: one line per input row -- target, F(x) (``prediction``), F(x')
        (``baseline_score``), the sum of the attributions, the completeness gap and its relative
        size, the steps and the notes; ``"token"``: one line per token (``position``, ``token``,
        ``attribution``); ``"word"``: tokens summed into words (signed sums). Rows that could not
        be attributed appear with ``status="error"`` and the reason in ``error``. Needs pandas.
        """
        pandas = require("pandas", "dataframes")
        return pandas.DataFrame(self.to_records(level))
