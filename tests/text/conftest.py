"""Small seeded text models shared by the text tests (float64, a nine-word vocabulary)."""

import pytest
import torch

from sciattr.text.classifier import LSTMTopicClassifier
from sciattr.text.corpus import EOS, PAD, UNK, Vocabulary
from sciattr.text.lstm_lm import LSTMLanguageModel

WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "more", "than"]


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    vocab = Vocabulary([UNK, EOS] + WORDS)
    return LSTMLanguageModel(len(vocab), 6, 6, dropout=0.0).double().eval(), vocab


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    vocab = Vocabulary([PAD, UNK] + WORDS)
    return LSTMTopicClassifier(len(vocab), ["business", "sports"], 6, 6, dropout=0.0).double().eval(), vocab
