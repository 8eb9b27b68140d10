"""The layers of LGI (Mun, Cho, Han, CVPR 2020; JonghwanMun/LGI4temporalgrounding,
src/model): the query encoder and sequential query attention, the video encoder, the
phrase-level local context and the non-local blocks. Equation numbers are the LGI paper's;
`models/lgi.py` assembles them (docs/models.md).
"""

import keras
from keras import ops

from sscs_tf.models import layers


def torch_embedding_init() -> keras.initializers.Initializer:
  """N(0, 1), PyTorch's `nn.Embedding` default, kept by the reference for words and positions."""
  return keras.initializers.RandomNormal(stddev=1.0)


def _take_steps(x, index):
  """`x[b, index[b, t]]` for `x [B, L, C]`, `index [B, L]`."""
  return ops.take_along_axis(x, index[:, :, None], axis=1)


@keras.saving.register_keras_serializable(package="sscs_tf")
class QueryEncoder(keras.layers.Layer):
  """Word embedding -> stacked bidirectional LSTM over the real words only.

  The backward direction reads each sentence reversed within its length (padding stays at
  the end), which is what PyTorch's packed sequences compute.

  Args:
    vocab_size, embedding_dim: the learned embedding table.
    units: U per direction.
    num_layers: stacked BiLSTM layers.
    dropout: rate on the outputs of every layer but the last (nn.LSTM's `dropout`).
  Call: word_ids `[B, L]` int, num_words `[B]` int -> (word_features `[B, L, 2U]`, zero past
    num_words; sentence_feature `[B, 2U]` = [forward state at the last word ; backward state
    at word 0]; word_mask `[B, L]` bool).
  """

  def __init__(self, vocab_size: int, embedding_dim: int, units: int, num_layers: int,
               dropout: float, **kwargs):
    super().__init__(**kwargs)
    self.vocab_size = vocab_size
    self.embedding_dim = embedding_dim
    self.units = units
    self.num_layers = num_layers
    self.dropout = dropout

  def build(self, input_shape=None):
    self.embedding = keras.layers.Embedding(self.vocab_size, self.embedding_dim,
                                            embeddings_initializer=torch_embedding_init(),
                                            name="embedding")
    self.embedding.build((None, None))
    self.lstms = []
    width = self.embedding_dim
    for k in range(self.num_layers):
      pair = []
      for direction in ("forward", "backward"):
        lstm = keras.layers.RNN(layers.TwoBiasLSTMCell(self.units, name="cell"),
                                return_sequences=True, name=f"{direction}_{k}")
        lstm.build((None, None, width))
        pair.append(lstm)
      self.lstms.append(pair)
      width = 2 * self.units
    self.dropout_layer = keras.layers.Dropout(self.dropout)

  def call(self, word_ids, num_words, training=False):
    num_words = ops.cast(num_words, "int32")
    positions = ops.arange(ops.shape(word_ids)[1], dtype="int32")[None, :]
    word_mask = positions < num_words[:, None]
    reverse = ops.where(word_mask, num_words[:, None] - 1 - positions, positions)
    x = self.embedding(word_ids)
    keep = ops.cast(word_mask, x.dtype)[:, :, None]
    for k, (forward, backward) in enumerate(self.lstms):
      if k:
        x = self.dropout_layer(x, training=training)
      backward_out = _take_steps(backward(_take_steps(x, reverse)), reverse)
      x = ops.concatenate([forward(x), backward_out], axis=-1) * keep
    last = ops.maximum(num_words - 1, 0)[:, None]
    sentence = ops.concatenate([_take_steps(x[:, :, :self.units], last)[:, 0],
                                x[:, 0, self.units:]], axis=-1)
    return x, sentence, word_mask

  def get_config(self):
    return {**super().get_config(), "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim, "units": self.units,
            "num_layers": self.num_layers, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="sscs_tf")
class SequentialQueryAttention(keras.layers.Layer):
  """N phrase features, each an attention over the words guided by the previous one.

  Args:
    num_phrases: N.
    hidden_size: H, the width of the words and the sentence.
    attention_size: A of the attention MLP.
  Call: sentence `[B, H]`, words `[B, L, H]`, word_mask `[B, L]` -> (phrases `[B, N, H]`,
    attention `[B, N, L]` float32, zero at padded words).
  """

  def __init__(self, num_phrases: int, hidden_size: int, attention_size: int, **kwargs):
    super().__init__(**kwargs)
    self.num_phrases = num_phrases
    self.hidden_size = hidden_size
    self.attention_size = attention_size

  def build(self, input_shape=None):
    h, a = self.hidden_size, self.attention_size
    self.phrase_queries = [layers.dense(h, h, name=f"query_{n}") for n in range(self.num_phrases)]
    self.guide = layers.dense(h, 2 * h, name="guide")
    self.word_key = layers.dense(a, h, name="word_key")
    self.guide_key = layers.dense(a, h, name="guide_key")
    self.score = layers.dense(1, a, name="score")
    for layer in self.phrase_queries + [self.word_key, self.guide_key]:
      layer.build((None, h))
    self.guide.build((None, 2 * h))
    self.score.build((None, a))

  def call(self, sentence, words, word_mask):
    word_keys = self.word_key(words)
    phrase = ops.zeros_like(sentence)  # e_0 = 0
    phrases, attentions = [], []
    for query in self.phrase_queries:
      guide = ops.relu(self.guide(ops.concatenate([query(sentence), phrase], axis=-1)))  # Eq. 4
      logits = self.score(ops.tanh(word_keys + self.guide_key(guide)[:, None, :]))  # Eq. 5
      attention = layers.masked_softmax(ops.squeeze(logits, -1), word_mask)  # Eq. 6
      phrase = ops.einsum("bl,blh->bh", ops.cast(attention, words.dtype), words)  # Eq. 7
      phrases.append(phrase)
      attentions.append(attention)
    return ops.stack(phrases, axis=1), ops.stack(attentions, axis=1)

  def get_config(self):
    return {**super().get_config(), "num_phrases": self.num_phrases,
            "hidden_size": self.hidden_size, "attention_size": self.attention_size}


@keras.saving.register_keras_serializable(package="sscs_tf")
class VideoEncoder(keras.layers.Layer):
  """relu(Dense(v)) and a learned position embedding, each dropped out and masked, summed.

  Args:
    hidden_size: H.
    num_segments: S, rows of the position embedding and steps of the input.
    dropout: rate on both terms.
  Call: features `[B, S, D]`, mask `[B, S]` -> `[B, S, H]`, zero at padded segments.
  """

  def __init__(self, hidden_size: int, num_segments: int, dropout: float, **kwargs):
    super().__init__(**kwargs)
    self.hidden_size = hidden_size
    self.num_segments = num_segments
    self.dropout = dropout

  def _check_steps(self, steps):
    if steps is not None and steps != self.num_segments:
      raise ValueError(f"features have {steps} steps; the model expects num_segments = "
                       f"{self.num_segments}.")

  def build(self, input_shape):
    self._check_steps(input_shape[-2])
    self.projection = layers.dense(self.hidden_size, input_shape[-1], name="projection")
    self.projection.build((None, None, input_shape[-1]))
    self.positions = self.add_weight(shape=(self.num_segments, self.hidden_size),
                                     initializer=torch_embedding_init(), name="positions")
    self.dropout_layer = keras.layers.Dropout(self.dropout)

  def call(self, features, mask, training=False):
    self._check_steps(features.shape[-2])
    x = self.dropout_layer(ops.relu(self.projection(features)), training=training)
    mask = ops.cast(mask, x.dtype)[:, :, None]
    # One dropout mask for the whole batch, as the reference drops out before broadcasting.
    positions = ops.relu(ops.cast(self.positions, x.dtype))[None]
    return x * mask + self.dropout_layer(positions, training=training) * mask

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size,
            "num_segments": self.num_segments, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="sscs_tf")
class PhraseLocalContext(keras.layers.Layer):
  """One phrase's branch: segment-level fusion (Eq. 8), then local context (Eq. 9).

  m = relu(W_m (relu(W_v v) * relu(W_e e))); out = relu(m + BN(Conv(relu(BN(Conv(m)))))),
  the convolutions without bias, "same" padding (PyTorch's K // 2 for odd K).

  Args:
    hidden_size: H.
    kernel_size: K, odd.
  Call: video `[B, T, H]`, phrase `[B, H]` -> `[B, T, H]`.
  """

  def __init__(self, hidden_size: int, kernel_size: int, **kwargs):
    super().__init__(**kwargs)
    self.hidden_size = hidden_size
    self.kernel_size = kernel_size

  def build(self, input_shape=None):
    h, k = self.hidden_size, self.kernel_size
    self.fusion = [layers.dense(h, h, name=name) for name in ("video", "phrase", "fused")]
    for layer in self.fusion:
      layer.build((None, h))
    self.convs = [keras.layers.Conv1D(h, k, padding="same", use_bias=False,
                                      kernel_initializer=layers.torch_uniform(h * k),
                                      name=f"conv_{j}") for j in range(2)]
    self.norms = [layers.TorchBatchNorm(name=f"norm_{j}") for j in range(2)]
    for layer in self.convs + self.norms:
      layer.build((None, None, h))

  def fuse(self, video, phrase):
    """m `[B, T, H]` (Eq. 8)."""
    to_video, to_phrase, to_fused = self.fusion
    return ops.relu(to_fused(ops.relu(to_video(video)) * ops.relu(to_phrase(phrase))[:, None]))

  def local_residual(self, m, training=False):
    """BN(Conv(relu(BN(Conv(m))))), the residual branch of Eq. 9, before the sum."""
    y = ops.relu(self.norms[0](self.convs[0](m), training=training))
    return self.norms[1](self.convs[1](y), training=training)

  def call(self, video, phrase, training=False):
    m = self.fuse(video, phrase)
    return ops.relu(m + self.local_residual(m, training=training))

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size,
            "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="sscs_tf")
class NonLocalBlock(keras.layers.Layer):
  """Global context (Eq. 12): x + multi-head attention over the valid segments.

  Per head, softmax_j(k_i . q_j / sqrt(H / heads)) weights v_j, with k = W_k x and
  [q, v] = W_qv x; no output projection and no normalisation, as in the reference.

  Args:
    hidden_size: H, divisible by num_heads.
    num_heads: heads, each a contiguous slice of H / num_heads channels.
  Call: x `[B, T, H]`, mask `[B, T]` -> `[B, T, H]`; with return_attention also the weights
    `[B, heads, T, T]` float32 (row i the output segment, column j the attended one).
  """

  def __init__(self, hidden_size: int, num_heads: int, **kwargs):
    super().__init__(**kwargs)
    self.hidden_size = hidden_size
    self.num_heads = num_heads

  def build(self, input_shape=None):
    h = self.hidden_size
    self.key = layers.dense(h, h, name="key")
    self.query_value = layers.dense(2 * h, h, name="query_value")
    for layer in (self.key, self.query_value):
      layer.build((None, h))

  def call(self, x, mask, return_attention=False):
    batch, steps = ops.shape(x)[0], ops.shape(x)[1]
    heads, depth = self.num_heads, self.hidden_size // self.num_heads
    split = lambda y: ops.reshape(y, (batch, steps, heads, depth))
    query, value = ops.split(self.query_value(x), 2, axis=-1)
    key, query, value = split(self.key(x)), split(query), split(value)
    logits = ops.einsum("bihd,bjhd->bhij", key, query) / (depth ** 0.5)
    weights = layers.masked_softmax(logits, ops.cast(mask, "float32")[:, None, None, :])
    relation = ops.einsum("bhij,bjhd->bihd", ops.cast(weights, x.dtype), value)
    out = x + ops.reshape(relation, (batch, steps, self.hidden_size))
    return (out, weights) if return_attention else out

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size,
            "num_heads": self.num_heads}
