"""An LSTM language model: saturation along the scaling path, and integrated gradients against gradients.

Reproduces Section 3.2 ("Language modeling") of Sundararajan, Taly & Yan, "Gradients of
Counterfactuals" (``/work/shared/papers/``), Figures 8-10, with the word-level LSTM language model
shipped in ``sciattr.zoo`` (two LSTM layers in the style of Zaremba et al. 2014, trained on the BBC
news corpus instead of the Penn Treebank, which does not ship offline):

* **Fig. 8** -- twenty seeded sections of ten words from held-out BBC articles: the embeddings of
  the ten words are scaled by ``alpha`` (the ``<eos>`` before them stays) and the probability of
  the predicted next word is plotted against ``alpha``. The paper: "the curve starts near zero at
  alpha = 0, moves around in the middle, stabilizes, and turns flat around alpha = 1"; curves that
  start away from zero predict an out-of-vocabulary word. The script prints how much of each
  curve's rise is left after ``alpha = 0.9`` and which curves start high.
* **Figs. 9 and 10** -- the paper's own sentence "the shareholders claimed more" (next word
  "than") and a few BBC sentences: per word the integrated gradient and the gradient (times the
  embedding, at the input), the probability of the next word, and the total of the integrated
  gradients against ``F(x) - F(x')`` (completeness). Gradients at the input are small and can
  even have the wrong sign where the model is saturated; integrated gradients add up to the
  prediction.

Run: ``python tutorials/03_lstm_language_model.py [--fast] [--out DIR]``
(default ``tutorials/out/03_lstm_language_model``). ``--fast`` uses fewer sentences, sections and
quadrature nodes.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from sciattr.diagnostics.saturation import curve_from_attribution
from sciattr.text.corpus import load_bbc_articles, sentences, split_articles, tokenize
from sciattr.text.lstm_lm import lm_attribution, lm_report
from sciattr.text.render import write_html
from sciattr.zoo.text_models import load_lstm_lm

#: (sentence, next word) pairs of the Fig. 9/10 tables; the first is the paper's own sentence.
SENTENCES = (
    ("the shareholders claimed more", "than"),
    ("prime minister tony", "blair"),
    ("the company said it would", "be"),
    ("the trial of former worldcom boss bernie", "ebbers"),
)
SECTION_WORDS = 10  # words of each Fig. 8 section (the paper: "using the first 10 words")


@dataclass(frozen=True)
class Settings:
    sentences: int
    steps: int
    sections: int
    curve_steps: int


FULL = Settings(sentences=len(SENTENCES), steps=128, sections=20, curve_steps=64)
FAST = Settings(sentences=2, steps=64, sections=8, curve_steps=24)


# ---------------------------------------------------------------------------------------- Figs. 9 and 10
def print_table(report) -> None:
    """The paper's table: words, integrated gradients, gradients; scaled by 1e-3 for rare next words."""
    scale, unit = (1e3, " (*1e-3)") if report.prediction < 0.01 else (1.0, "")
    width = max(10, *(len(w) + 1 for w in report.words))
    print(f"{'Sentence':<30}" + "".join(f"{w:>{width}}" for w in report.words))
    print(
        f"{'Integrated gradients' + unit:<30}"
        + "".join(f"{scale * v:>{width}.4f}" for v in report.integrated_gradients)
    )
    print(f"{'Gradients' + unit:<30}" + "".join(f"{scale * v:>{width}.4f}" for v in report.gradients))
    delta = report.prediction - report.baseline_score
    gap = (report.total_integrated_gradients - delta) / abs(delta)
    print(
        f"Prediction for {report.next_word}: {report.prediction:.4f}, total integrated gradient: "
        f"{report.total_integrated_gradients:.4f}  "
        f"(F(x') = {report.baseline_score:.4f} at the zero embedding, "
        f"F(x) - F(x') = {delta:.4f}; completeness gap: {100 * gap:.2g}%)"
    )
    print(f"sum of the gradients: {sum(report.gradients):.4f} (they do not add up to the prediction)")
    top_ig = max(range(len(report.words)), key=lambda k: report.integrated_gradients[k])
    top_grad = max(range(len(report.words)), key=lambda k: abs(report.gradients[k]))
    print(
        f"largest integrated gradient: '{report.words[top_ig]}'; largest |gradient|: "
        f"'{report.words[top_grad]}'"
    )
    for note in report.notes:
        print(f"note: {note}")


def tables(lm, settings: Settings, out: Path) -> Path:
    chosen = SENTENCES[: settings.sentences]
    for sentence, next_word in chosen:
        print()
        print_table(lm_report(sentence, next_word, lm=lm, steps=settings.steps))
    batch = lm_attribution(
        lm.model, lm.vocab, [s for s, _ in chosen], [w for _, w in chosen], steps=settings.steps
    )
    return write_html(
        batch,
        out / "sentences.html",
        title="LSTM language model: integrated gradients of the next word's probability",
    )


# ---------------------------------------------------------------------------------------- Fig. 8
def test_sections(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """``count`` seeded ``(first ten words, eleventh word)`` sections of held-out BBC sentences."""
    held_out = split_articles(load_bbc_articles(), seed=0)["test"]
    long_enough = [s for article in held_out for s in sentences(article.text) if len(s) > SECTION_WORDS]
    sections = []
    for words in random.Random(seed).sample(long_enough, 4 * count):
        text = " ".join("1" if w == "N" else w for w in words[:SECTION_WORDS])  # any number reads as N
        if tokenize(text) == words[:SECTION_WORDS]:
            sections.append((text, words[SECTION_WORDS]))
        if len(sections) == count:
            break
    return sections


def saturation(lm, settings: Settings, out: Path) -> Path:
    sections = test_sections(settings.sections)
    result = lm_attribution(
        lm.model, lm.vocab, [s for s, _ in sections], steps=settings.curve_steps, store_path=True
    )
    curve = curve_from_attribution(result)
    alphas, scores = curve.alphas.double(), curve.scores.double()
    late = (scores[:, -1] - torch.stack([_at(alphas, row, 0.9) for row in scores])) / (
        scores[:, -1] - scores[:, 0]
    ).abs()
    print(f"\n{'section (10 words)':<66} {'next':>10} {'F(0)':>7} {'F(1)':>7} {'rise after 0.9':>15}")
    for k, (text, actual) in enumerate(sections):
        predicted = result.target_labels[k]
        mark = " (actual next word)" if predicted == actual else ""
        print(
            f"{text[:66]:<66} {predicted:>10} {float(scores[k, 0]):>7.4f} {float(scores[k, -1]):>7.4f} "
            f"{100 * float(late[k]):>14.1f}%{mark}"
        )
    start_high = [k for k in range(len(sections)) if float(scores[k, 0]) > 0.01]
    print(
        f"\n{len(sections)} curves: median share of the rise left for 0.9 <= alpha <= 1: "
        f"{100 * float(late.median()):.1f}%; alpha reaching 90% of the rise: median "
        f"{float(curve.alpha_reaching(0.9).median()):.2f}"
    )
    print(
        f"curves with F > 0.01 at alpha = 0: {len(start_high)}; their predicted words: "
        f"{sorted({result.target_labels[k] for k in start_high}) or 'none'}. At alpha = 0 every section is "
        "the same input (<eos> and ten zero embeddings), so F(0) is the model's fallback probability of "
        "the word: "
        "high for frequent tokens and <unk> (the paper saw a non-zero start only for out-of-vocabulary words)"
    )
    print(
        "largest relative completeness gap over the sections: "
        f"{100 * float(result.relative_gap.abs().max()):.2g}%"
    )
    return plot_curves(
        alphas, scores, [result.target_labels[k] for k in range(len(sections))], out / "lstm_saturation.png"
    )


def _at(alphas: torch.Tensor, row: torch.Tensor, at: float) -> torch.Tensor:
    """Linear interpolation of ``row`` (on the grid ``alphas``) at ``at``."""
    k = int(torch.searchsorted(alphas, torch.tensor(at, dtype=alphas.dtype)))
    a0, a1 = alphas[k - 1], alphas[k]
    return row[k - 1] + (row[k] - row[k - 1]) * (at - a0) / (a1 - a0)


def plot_curves(alphas: torch.Tensor, scores: torch.Tensor, labels: list[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, ax = pyplot.subplots(figsize=(6.4, 4.2))
    for row, label in zip(scores.tolist(), labels):
        style = "--" if label == "<unk>" else "-"
        ax.plot(alphas.tolist(), row, style, linewidth=1.2, alpha=0.85)
    ax.plot([], [], "k--", label="predicted word <unk>")
    ax.plot([], [], "k-", label="other predicted words")
    ax.set_xlabel("alpha (scaling of the ten word embeddings)")
    ax.set_ylabel("softmax score of the next word")
    ax.set_title(f"LSTM language model: saturation along the path ({len(labels)} test sections)")
    ax.set_xlim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path


# ---------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fast", action="store_true", help="fewer sentences, sections and nodes (for the tests)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("tutorials/out/03_lstm_language_model"), help="output folder"
    )
    args = parser.parse_args(argv)
    settings = FAST if args.fast else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    lm = load_lstm_lm()
    print(
        f"shipped LSTM language model: {lm.card['config']['num_layers']} layers of "
        f"{lm.card['config']['hidden_dim']} units, {lm.card['config']['vocab_size']} words, test perplexity "
        f"{lm.card['test_perplexity']:.1f} on held-out BBC articles (from its card)"
    )
    print(
        f"integrated gradients of the next word's probability, zero-embedding baseline, {settings.steps} "
        "Gauss-Legendre nodes; the leading <eos> stays fixed"
    )

    print("\nFigs. 9 and 10: integrated gradients against gradients")
    page = tables(lm, settings, args.out)

    print("\nFig. 8: the probability of the predicted next word as the ten words are scaled in")
    figure = saturation(lm, settings, args.out)
    print(f"\nwrote {figure} and {page} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
