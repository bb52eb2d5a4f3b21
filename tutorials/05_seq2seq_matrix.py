"""Attribution matrices of a sequence-to-sequence model: which input letters made each output phoneme.

Reproduces Figure 5 of Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks"
(``/work/shared/papers/``): for a translation model the paper attributes every output word piece
to every input word piece ("und" is mostly attributed to "and", "morgen" to "morning") and shows
the result as a matrix. No translation model ships offline, so the same picture is made with a
real pretrained encoder--decoder that does: the GRU grapheme-to-phoneme model of the ``g2p-en``
package (letters -> ARPAbet phonemes, no attention), loaded by :func:`sciattr.text.seq2seq.load_g2p`.

For each word the output sequence is fixed to the model's own greedy pronunciation (teacher
forcing); the score of output position ``t`` is ``log p(y_t | letters, y_<t)``; integrated
gradients from the zero letter embedding (``</s>`` kept fixed) give one row of the matrix. The
script prints every matrix with the completeness gap of each row (the row sums to
``log p(y_t | x) - log p(y_t | x')``), the letter each phoneme leans on most, writes one PNG heat
map and one HTML page per word plus an index page, and measures the model's greedy accuracy on a
seeded sample of CMUdict (the ``g2p-en`` model is known to get about 2 words in 3 exactly right).

Run: ``python tutorials/05_seq2seq_matrix.py [--fast] [--out DIR]``
(default ``tutorials/out/05_seq2seq_matrix``).
``--fast`` uses fewer words, fewer quadrature nodes and a smaller CMUdict sample.
"""

from __future__ import annotations

import argparse
import html
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from sciattr.text.seq2seq import (
    attribute_g2p,
    cmudict_pronunciations,
    g2p_accuracy,
    load_g2p,
    write_seq2seq_report,
)


@dataclass(frozen=True)
class Settings:
    words: tuple[str, ...]
    steps: int  # first number of Gauss-Legendre nodes; doubled until every row's gap is below TOLERANCE
    accuracy_words: int


TOLERANCE = 0.005  # relative completeness gap asked of every output row
FULL = Settings(
    words=("morning", "ladies", "gentlemen", "knight", "phoneme", "photograph", "through", "queue"),
    steps=64,
    accuracy_words=3000,
)
FAST = Settings(words=("knight", "ladies", "phoneme"), steps=32, accuracy_words=300)


def alignment(result, i: int) -> str:
    """``"N <- n (+38.4)"`` for every output phoneme: the letter with the largest attribution."""
    matrix = result.matrix(i)
    letters = result.token_texts(i)
    best = matrix.argmax(1).tolist()
    return ", ".join(
        f"{p} <- {letters[b]} ({matrix[t, b]:+.1f})"
        for t, (p, b) in enumerate(zip(result.output_tokens[i], best))
    )


def matrix_text(result, i: int) -> str:
    """The matrix as text: one row per output phoneme, one column per letter, then the row's gap."""
    letters, gaps = result.token_texts(i), result.output_gaps(i).tolist()
    lines = [f"{'':>6}" + "".join(f"{t:>9}" for t in letters) + f"{'rel. gap':>11}"]
    for phoneme, row, gap in zip(result.output_tokens[i], result.matrix(i).tolist(), gaps):
        lines.append(f"{phoneme:>6}" + "".join(f"{v:>9.3f}" for v in row) + f"{gap:>11.1e}")
    return "\n".join(lines)


def print_word(result, i: int, lexicon: dict) -> None:
    word = "".join(result.token_texts(i)[:-1])
    predicted = result.output_tokens[i]
    reference = lexicon.get(word, [])
    verdict = (
        "matches CMUdict"
        if predicted in reference
        else f"CMUdict: {' | '.join(' '.join(r) for r in reference) or 'not listed'}"
    )
    gaps = result.output_gaps(i)
    print(f"\n{word} -> {' '.join(predicted)}   ({verdict}; {int(result.steps[i])} nodes)")
    print(matrix_text(result, i))
    print(
        f"  completeness gap: {100 * float(gaps.abs().max()):.2g}% (largest over the {len(predicted)} rows; "
        f"row t sums to log p(y_t|x) - log p(y_t|x'))"
    )
    print(f"  strongest letter per phoneme: {alignment(result, i)}")


def print_silent_letter(result) -> None:
    """The silent k of "knight": the model must learn that "kn" starts with N, not K."""
    words = ["".join(result.token_texts(i)[:-1]) for i in range(result.n_examples)]
    if "knight" not in words:
        return
    i = words.index("knight")
    row = result.matrix(i)[0]
    print(
        f"\nreading the knight matrix: for the first phoneme {result.output_tokens[i][0]}, "
        "the letter n gives "
        f"{float(row[1]):+.1f} and the silent k {float(row[0]):+.1f} (alone, k would call for K); the model "
        "has learnt the 'kn' rule, as the translation model of Fig. 5 learnt that 'und' comes from 'and'"
    )


def write_pages(result, out: Path) -> list[Path]:
    """One HTML page + PNG matrix per word, and ``index.html`` showing all matrices."""
    blocks, written = [], []
    for i in range(result.n_examples):
        word = "".join(result.token_texts(i)[:-1])
        title = f"{word} -> {' '.join(result.output_tokens[i])}"
        page, png = write_seq2seq_report(result, out / f"g2p_{word}.html", title, example=i)
        written += [page, png]
        gap = 100 * float(result.output_gaps(i).abs().max())
        blocks.append(
            f"<h2><a href='{html.escape(page.name)}'>{html.escape(title)}</a></h2>"
            f"<p>largest completeness gap of a row: {gap:.4f}%</p>"
            f"<img src='{html.escape(png.name)}' alt='attribution matrix of {html.escape(word)}'>"
        )
    index = out / "index.html"
    index.write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<title>g2p attribution matrices</title></head><body>"
        "<h1>Letter -> phoneme attribution matrices (g2p-en GRU encoder-decoder)</h1>"
        "<p>Rows: output phonemes (teacher forced); columns: input letters. Red: the letter raises "
        "log p(phoneme); blue: it lowers it. Integrated gradients from the zero letter embedding.</p>"
        + "".join(blocks)
        + "</body></html>\n",
        encoding="utf-8",
    )
    return [index, *written]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fast", action="store_true", help="fewer words, nodes and CMUdict words (for the tests)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("tutorials/out/05_seq2seq_matrix"), help="output folder"
    )
    args = parser.parse_args(argv)
    settings = FAST if args.fast else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    model = load_g2p(torch.float64)
    lexicon = cmudict_pronunciations()
    print(
        "Letter -> phoneme attribution matrices of the pretrained g2p-en GRU encoder-decoder "
        "(the IG paper's Fig. 5 with a model that ships offline)"
    )
    print(
        "integrated gradients, zero letter embeddings as baseline, Gauss-Legendre nodes from "
        f"{settings.steps} "
        f"doubled until every row's completeness gap is below {100 * TOLERANCE:g}%"
    )
    result = attribute_g2p(
        list(settings.words), model=model, steps=settings.steps, tolerance=TOLERANCE, max_steps=1024
    )
    for i in range(result.n_examples):
        print_word(result, i, lexicon)
    written = write_pages(result, args.out)
    print_silent_letter(result)

    accuracy = g2p_accuracy(model, n_words=settings.accuracy_words, seed=0)
    print(
        f"\ng2p accuracy, greedy decoding, {settings.accuracy_words} CMUdict words (seed 0): "
        f"{100 * accuracy['first']:.1f}% equal the first pronunciation, "
        f"{100 * accuracy['any']:.1f}% equal one "
        f"of them; phoneme error rate {100 * accuracy['phoneme_error_rate']:.1f}%"
    )
    print(
        f"\nwrote {len(written)} files to {args.out} (index.html, g2p_{settings.words[0]}.png, ...) "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
