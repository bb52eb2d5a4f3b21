"""Text models: integrated gradients over token embeddings.

Import the submodules you need (nothing heavy is imported here):

* :mod:`sciattr.text.embedding` -- :func:`~sciattr.text.embedding.embedding_integrated_gradients`
  and :class:`~sciattr.text.embedding.EmbeddingModel` for any model whose first step is an
  embedding lookup;
* :mod:`sciattr.text.tokens` -- :class:`~sciattr.text.tokens.TokenAttribution`, the result with
  token and word views;
* :mod:`sciattr.text.render` -- HTML heatmaps, terminal colouring, seq2seq matrices;
* :mod:`sciattr.text.lstm_lm`, :mod:`sciattr.text.classifier` -- the shipped LSTM language model
  and topic classifier; :mod:`sciattr.text.report` -- reports and the command-line entry points;
* :mod:`sciattr.text.seq2seq` -- output-by-input attribution matrices for encoder-decoders and the
  shipped grapheme-to-phoneme GRU; :mod:`sciattr.text.huggingface` -- Hugging Face classifiers,
  causal LMs and encoder-decoders through ``inputs_embeds``; :mod:`sciattr.text.continuation` --
  whole continuations of causal LMs (every output token against the prompt and the earlier output
  tokens, in one call); :mod:`sciattr.text.smiles_tokens` -- reaction SMILES tokens mapped back to atoms.
"""

from sciattr.text.embedding import EmbeddingModel, embedding_integrated_gradients, pad_batch
from sciattr.text.tokens import TokenAttribution

__all__ = ["EmbeddingModel", "TokenAttribution", "embedding_integrated_gradients", "pad_batch"]
