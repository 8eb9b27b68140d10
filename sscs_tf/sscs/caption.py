"""The caption objective's pieces (Eq. 3 and 7): Phi' and the sentence decoder."""

import keras
from keras import ops

from sscs_tf.data import text
from sscs_tf.models import layers


@keras.saving.register_keras_serializable(package="sscs_tf")
class AttentivePooling(layers.AttentionWeights):
  """Phi' of Eq. 3: masked self-attention pooling over the GT clips (decision: the paper
  allows "convolutional layers or self-attention").

  The shared attentive pooling (`models.layers.AttentionWeights`) with a bias, Keras'
  initialisers, and zero weights when the clip set is empty.

  Args:
    units: hidden size of the attention scorer.
  Call: `(clips [B, T, D], members [B, T]) -> [B, D]`,
  with a_t = softmax over members of v^T tanh(W x_t + b) and the output sum_t a_t x_t.
  """

  def __init__(self, units=256, **kwargs):
    super().__init__(hidden_size=None, attention_size=units, use_bias=True, torch_init=False,
                     zero_if_empty=True, **kwargs)
    self.units = units

  def build(self, clips_shape, members_shape=None):
    super().build(clips_shape)

  def call(self, clips, members):
    return layers.attentive_pool(super().call(clips, members), clips)

  def get_config(self):
    # Only `units`: the other arguments of AttentionWeights are fixed by this class.
    return {**keras.layers.Layer.get_config(self), "units": self.units}


@keras.saving.register_keras_serializable(package="sscs_tf")
class CaptionDecoder(keras.layers.Layer):
  """log p(L_i | w_i): a 1-layer GRU, initial state Dense(w), teacher forcing (decision).

  The sentence is read as `<eos> w_1 ... w_n` and predicts `w_1 ... w_n <eos>`; `<eos>`
  doubles as the start symbol. The softmax runs over the training vocabulary.

  Args:
    vocab_size: V.
    units: GRU size.
    embedding_dim: size of the decoder's own (training-only) word embedding.
  Call: `(w [B, D], word_ids [B, L] int, num_words [B] int)` -> `[B]` negative
  log-likelihood of each sentence (sum over its n + 1 tokens).
  """

  def __init__(self, vocab_size, units=256, embedding_dim=256, **kwargs):
    super().__init__(**kwargs)
    self.vocab_size = vocab_size
    self.units = units
    self.embedding_dim = embedding_dim
    policy = self.dtype_policy  # the branch pins float32 under mixed precision
    self.initial_state = keras.layers.Dense(units, name="initial_state", dtype=policy)
    self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding",
                                            dtype=policy)
    self.gru = keras.layers.GRU(units, return_sequences=True, name="gru", dtype=policy)
    self.logits = keras.layers.Dense(vocab_size, name="logits", dtype=policy)

  def build(self, w_shape, word_ids_shape=None, num_words_shape=None):
    batch = w_shape[0]
    self.initial_state.build(w_shape)
    self.embedding.build((batch, None))
    self.gru.build((batch, None, self.embedding_dim))
    self.logits.build((batch, None, self.units))

  def call(self, w, word_ids, num_words):
    word_ids = ops.cast(word_ids, "int32")
    num_words = ops.cast(num_words, "int32")
    batch, length = ops.shape(word_ids)[0], ops.shape(word_ids)[1]
    start = ops.full((batch, 1), text.EOS_ID, "int32")
    inputs = ops.concatenate([start, word_ids], axis=1)
    position = ops.arange(length + 1, dtype="int32")[None, :]
    padded = ops.concatenate([word_ids, ops.zeros((batch, 1), "int32")], axis=1)
    targets = ops.where(position == num_words[:, None], text.EOS_ID, padded)
    # Positions past <eos> are padding; a unidirectional GRU never lets them reach earlier
    # outputs, so they are only masked out of the sum.
    states = self.gru(self.embedding(inputs), initial_state=[self.initial_state(w)])
    logits = ops.cast(self.logits(states), "float32")
    nll = ops.sparse_categorical_crossentropy(targets, logits, from_logits=True)
    valid = ops.cast(position <= num_words[:, None], "float32")
    return ops.sum(nll * valid, axis=1)

  def get_config(self):
    return {**super().get_config(), "vocab_size": self.vocab_size, "units": self.units,
            "embedding_dim": self.embedding_dim}
