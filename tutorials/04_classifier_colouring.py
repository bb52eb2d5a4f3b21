"""Colouring the words of a text classifier's input by their attributions.

Reproduces Figure 4 of Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks"
(``/work/shared/papers/``): a question-classification model's inputs with every term coloured by
its integrated gradient -- red positive, blue negative, gray about zero -- and the predicted class
in square brackets. The question data set does not ship offline; the shipped 5-topic LSTM news
classifier of ``sciattr.zoo`` (BBC news: business, entertainment, politics, sports, tech) plays
its part. The baseline is the all-zero embedding, as in the paper.

The script

1. attributes the predicted topic's logit for a few sentences, prints each with coloured tokens
   (ANSI colours on a terminal, ``token(+0.123)`` otherwise), the predicted topic and its
   probability, and the completeness gap (the attributions add up to ``F(x) - F(x')``);
2. attributes one sentence to two topics, to show that colours answer "evidence for *which*
   class" (a product name is blue for business and red for tech);
3. attributes the true topic of every held-out BBC headline (short texts, like the paper's
   questions) and sums the attributions into the words that push each topic up;
4. writes the coloured sentences as an HTML page and as a PNG.

Run: ``python tutorials/04_classifier_colouring.py [--fast] [--out DIR]``
(default ``tutorials/out/04_classifier_colouring``). ``--fast`` uses fewer sentences and headlines.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from sciattr.text.classifier import classifier_attribution
from sciattr.text.corpus import load_bbc_articles, split_articles
from sciattr.text.render import GRAY, NEUTRAL, terminal_tokens, token_color, write_html
from sciattr.zoo.text_models import load_topic_classifier

SENTENCES = (
    "the striker scored twice as chelsea beat arsenal in the cup final",
    "the prime minister said the election would be held in may",
    "shares in the bank fell after profits dropped by 5 %",
    "microsoft released a new version of its windows software for mobile phones",
    "the film won three oscars including best actor",
    "the chancellor promised to cut taxes for small firms",
    "the band's new album went straight to number one in the charts",
    "apple's profits rose on strong ipod sales",
)
CONTRAST = ("apple's profits rose on strong ipod sales", ("business", "tech"))


@dataclass(frozen=True)
class Settings:
    sentences: int
    steps: int
    headlines: int | None  # held-out headlines (None: all 223)


FULL = Settings(sentences=len(SENTENCES), steps=64, headlines=None)
FAST = Settings(sentences=4, steps=64, headlines=40)


def probabilities(model, result) -> torch.Tensor:
    """``(n, n_topics)`` softmax of the classifier at the attributed inputs."""
    with torch.no_grad():
        logits = model(input_ids=result.token_ids, attention_mask=result.attention_mask)
    return logits.softmax(-1)


# ---------------------------------------------------------------------------------------- 1. sentences
def colour_sentences(text_model, settings: Settings):
    result = classifier_attribution(
        text_model.model, text_model.vocab, list(SENTENCES[: settings.sentences]), steps=settings.steps
    )
    probs = probabilities(text_model.model, result)
    for i in range(result.n_examples):
        topic = result.target_labels[i]
        p = float(probs[i, text_model.model.labels.index(topic)])
        print(f"\n{terminal_tokens(result.to_tokens(i))}  [{topic}]")
        print(
            f"  predicted topic: {topic} (probability {p:.3f}); "
            f"logit F(x) = {float(result.forward_x[i]):.3f}, "
            f"F(x') = {float(result.forward_baseline[i]):.3f} at the zero embedding, sum of attributions = "
            f"{result.total(i):.3f}; completeness gap: {100 * float(result.relative_gap[i]):.2g}%"
        )
        top = result.top_tokens(i, k=3)
        print("  strongest evidence: " + ", ".join(f"{t} {v:+.2f}" for t, v in top))
    return result


# ---------------------------------------------------------------------------------------- 2. two topics
def contrast(text_model, steps: int):
    text, topics = CONTRAST
    result = classifier_attribution(
        text_model.model, text_model.vocab, [text] * len(topics), list(topics), steps=steps
    )
    print(f'\n"{text}" attributed to two topics (same words, different question):')
    for i, topic in enumerate(topics):
        print(
            f"  {topic:<9} {terminal_tokens(result.to_tokens(i))}   (completeness gap: "
            f"{100 * float(result.relative_gap[i]):.2g}%)"
        )
    return result


# ------------------------------------------------------------------------------- 3. held-out headlines
def headlines(limit: int | None) -> tuple[list[str], list[str]]:
    """Headlines (first lines) of the held-out BBC articles and their topics, alternating topics."""
    by_topic: dict = defaultdict(list)
    for article in split_articles(load_bbc_articles(), seed=0)["test"]:
        by_topic[article.topic].append(article.text.strip().splitlines()[0])
    rounds = max(len(v) for v in by_topic.values())
    pairs = [(by_topic[t][k], t) for k in range(rounds) for t in sorted(by_topic) if k < len(by_topic[t])]
    pairs = pairs[:limit]
    return [h for h, _ in pairs], [t for _, t in pairs]


def topic_words(text_model, settings: Settings) -> None:
    """Which words push each topic up, summed over the held-out headlines of that topic."""
    texts, labels = headlines(settings.headlines)
    result = classifier_attribution(text_model.model, text_model.vocab, texts, labels, steps=settings.steps)
    predicted = probabilities(text_model.model, result).argmax(-1).tolist()
    correct = sum(text_model.model.labels[p] == labels[row] for p, row in zip(predicted, result.rows))
    print(
        f"\n{result.n_examples} held-out headlines (short texts, like the paper's questions): {correct} "
        f"({100 * correct / result.n_examples:.0f}%) classified correctly; attributions to the true topic, "
        f"largest completeness gap: {100 * float(result.relative_gap.abs().max()):.2g}%"
    )
    totals: dict = defaultdict(lambda: defaultdict(float))
    for i in range(result.n_examples):
        for token, value in result.to_tokens(i):
            totals[labels[result.rows[i]]][token] += value
    print("words carrying the most attribution to the true topic, summed over its headlines:")
    for topic in sorted(totals):
        best = sorted(totals[topic].items(), key=lambda kv: -kv[1])[:8]
        print(f"  {topic:<14} " + ", ".join(f"{w} {v:+.1f}" for w, v in best))


# ---------------------------------------------------------------------------------------- 4. pictures
def render_png(rows: list[tuple[str, list[tuple[str, float]]]], path: Path) -> Path:
    """Coloured tokens (red +, blue -, gray ~0), one sentence per line, the topic in brackets."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    width, line = 9.5, 0.36
    figure = pyplot.figure(figsize=(width, line * (len(rows) * 1.35 + 2.0)), dpi=100)
    renderer = figure.canvas.get_renderer()
    step = 1.0 / (len(rows) * 1.35 + 2.0)
    y = 1 - 0.9 * step
    figure.text(
        0.01,
        y,
        "Integrated gradients of the predicted topic (red: for it, blue: against it, gray: about zero)",
        fontsize=10,
        color="#444",
    )
    for label, pairs in rows:
        y -= 1.35 * step
        scale = max([abs(v) for _, v in pairs] + [1e-12])
        x = 0.01
        for token, value in pairs:
            _, rgb = token_color(value, scale, NEUTRAL)
            dark = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] < 140
            text = figure.text(
                x,
                y,
                token,
                fontsize=12,
                color="white" if dark else "black",
                bbox={"facecolor": [c / 255 for c in rgb], "edgecolor": "none", "pad": 2.5},
            )
            x += text.get_window_extent(renderer).width / figure.bbox.width + 0.008
        figure.text(
            x + 0.005,
            y,
            f"[{label}]",
            fontsize=12,
            fontweight="bold",
            bbox={"facecolor": [c / 255 for c in GRAY], "alpha": 0.0, "edgecolor": "none"},
        )
    figure.savefig(path)
    pyplot.close(figure)
    return path


def token_frames(text_model, sentence: str, out: Path, n_alphas: int) -> Path:
    """Interior gradients of one sentence's tokens as alpha goes 0 -> 1 (Fig. 3 of Gradients of
    Counterfactuals, for tokens): one bar per token at every alpha, as a GIF."""
    from functools import partial

    from sciattr.diagnostics import frames_from_attribution, grid_rule, render_bars

    result = classifier_attribution(text_model.model, text_model.vocab, [sentence], rule=grid_rule(n_alphas),
                                    steps=n_alphas, store_path=True)
    frames = frames_from_attribution(result, "embeddings")
    labels = [token for token, _ in result.to_tokens(0)]
    magnitude = frames.magnitude()[0]
    peak = int(magnitude.argmax())
    print(f"\ninterior gradients of '{sentence}' ({result.target_labels[0]}): the gradient x input magnitude "
          f"peaks at alpha = {float(frames.alphas[peak]):.2f} and is {float(magnitude[-1] / magnitude[peak]):.2f} "
          f"of that peak at alpha = 1")
    render = partial(render_bars, labels=labels, size=(6.0, 3.0))
    return frames.animate(out / "token_interior_gradients.gif", sum_trailing=1, render_frame=render)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="fewer sentences and headlines (for the tests)")
    parser.add_argument(
        "--out", type=Path, default=Path("tutorials/out/04_classifier_colouring"), help="output folder"
    )
    args = parser.parse_args(argv)
    settings = FAST if args.fast else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    text_model = load_topic_classifier(dtype=torch.float64)
    card = text_model.card
    print(
        f"shipped LSTM topic classifier: topics {', '.join(text_model.model.labels)}; held-out accuracy "
        f"{100 * card['test_accuracy_articles']:.1f}% on whole articles, "
        f"{100 * card['test_accuracy_snippets']:.1f}% "
        f"on {card['snippet_tokens']}-word snippets (from its card)"
    )
    print(
        f"integrated gradients of the topic's logit, zero-embedding baseline, {settings.steps} "
        "Gauss-Legendre "
        "nodes, summed over the embedding dimension per token"
    )

    result = colour_sentences(text_model, settings)
    contrasted = contrast(text_model, settings.steps)
    topic_words(text_model, settings)

    page = write_html(
        result,
        args.out / "classifier_tokens.html",
        title="Topic classifier: integrated gradients of the predicted topic",
    )
    write_html(contrasted, args.out / "contrast.html", title=f'"{CONTRAST[0]}" for two topics')
    rows = [(result.target_labels[i], result.to_tokens(i)) for i in range(result.n_examples)]
    rows.append(
        (f"{contrasted.target_labels[1]}: same sentence, asked for another topic", contrasted.to_tokens(1))
    )
    figure = render_png(rows, args.out / "classifier_tokens.png")
    gif = token_frames(text_model, SENTENCES[0], args.out, 6 if args.fast else 21)
    print(
        f"\nwrote {page}, {args.out / 'contrast.html'}, {figure} and {gif} in {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
