"""The layers of 2D-TAN (Zhang et al., AAAI 2020; microsoft/2D-TAN, lib/models): the sentence
encoder over frozen word vectors, the clip encoder and the Hadamard fusion of the map."""

import os

import keras
import numpy as np
from keras import ops

from sscs_tf.models.layers import TwoBiasLSTMCell, dense


def load_embedding_matrix(path: str, vocab_size: int, embedding_dim: int) -> np.ndarray:
  """Reads the `[vocab_size, embedding_dim]` .npy written by data prep, checking its shape."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"model.embeddings_file {path!r} does not exist.")
  matrix = np.load(path)
  if matrix.shape != (vocab_size, embedding_dim):
    raise ValueError(f"model.embeddings_file {path!r} holds a {matrix.shape} matrix; expected "
                     f"[vocab_size, embedding_dim] = {(vocab_size, embedding_dim)}.")
  return matrix.astype(np.float32)


@keras.saving.register_keras_serializable(package="sscs_tf")
class SentenceEncoder(keras.layers.Layer):
  """Word embedding -> stacked unidirectional LSTM -> output at the last word -> Dense.

  The LSTM runs over the padded sequence, as the reference does; being unidirectional, its
  output at index `num_words - 1` does not see the padding.

  Args:
    vocab_size, embedding_dim: embedding table size.
    embeddings_file: `.npy` `[vocab_size, embedding_dim]` (GloVe rows); when given the table is
      initialised from it and frozen, when empty the table is learned.
    lstm_units, lstm_layers: LSTM width and depth.
    hidden_size: output width H.
  Call: word_ids `[B, L]` int, num_words `[B]` int -> `[B, H]`.
  """

  def __init__(self, vocab_size: int, embedding_dim: int, embeddings_file: str, lstm_units: int,
               lstm_layers: int, hidden_size: int, **kwargs):
    super().__init__(**kwargs)
    self.vocab_size = vocab_size
    self.embedding_dim = embedding_dim
    self.embeddings_file = embeddings_file
    self.lstm_units = lstm_units
    self.lstm_layers = lstm_layers
    self.hidden_size = hidden_size

  def build(self, input_shape=None):
    frozen = bool(self.embeddings_file)
    self.embedding = keras.layers.Embedding(self.vocab_size, self.embedding_dim,
                                            trainable=not frozen, name="embedding")
    self.embedding.build((None, None))
    if frozen:
      self.embedding.embeddings.assign(load_embedding_matrix(
          self.embeddings_file, self.vocab_size, self.embedding_dim))
    self.lstms = []
    width = self.embedding_dim
    for k in range(self.lstm_layers):
      cell = TwoBiasLSTMCell(self.lstm_units, name="cell")
      lstm = keras.layers.RNN(cell, return_sequences=True, name=f"lstm_{k}")
      lstm.build((None, None, width))
      self.lstms.append(lstm)
      width = self.lstm_units
    self.projection = dense(self.hidden_size, self.lstm_units, name="projection")
    self.projection.build((None, self.lstm_units))

  def call(self, word_ids, num_words):
    x = self.embedding(word_ids)
    for lstm in self.lstms:
      x = lstm(x)
    last = ops.maximum(ops.cast(num_words, "int32") - 1, 0)
    x = ops.take_along_axis(x, last[:, None, None], axis=1)[:, 0]
    return self.projection(x)

  def get_config(self):
    return {**super().get_config(), "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim, "embeddings_file": self.embeddings_file,
            "lstm_units": self.lstm_units, "lstm_layers": self.lstm_layers,
            "hidden_size": self.hidden_size}


@keras.saving.register_keras_serializable(package="sscs_tf")
class ClipEncoder(keras.layers.Layer):
  """1x1 convolution + ReLU, then average pooling with kernel = stride = S / N.

  Args:
    hidden_size: H.
    num_clips: N, must divide S.
    num_sample_clips: S, the resampled steps per video (256).
  Call: features `[B, S, D]` -> clip features `[B, N, H]`.
  """

  def __init__(self, hidden_size: int, num_clips: int, num_sample_clips: int, **kwargs):
    super().__init__(**kwargs)
    self.hidden_size = hidden_size
    self.num_clips = num_clips
    self.num_sample_clips = num_sample_clips

  def _check_steps(self, steps):
    if steps is not None and steps != self.num_sample_clips:
      raise ValueError(f"features have {steps} steps; the model expects num_sample_clips = "
                       f"{self.num_sample_clips}.")

  def build(self, input_shape):
    self._check_steps(input_shape[-2])
    feature_dim = input_shape[-1]
    self.projection = dense(self.hidden_size, feature_dim, name="projection")
    self.projection.build((None, None, feature_dim))

  def call(self, features):
    self._check_steps(features.shape[-2])
    x = ops.relu(self.projection(features))
    stride = self.num_sample_clips // self.num_clips
    # Average pooling with kernel = stride: a mean over non-overlapping windows.
    x = ops.reshape(x, (-1, self.num_clips, stride, self.hidden_size))
    return ops.mean(x, axis=2)

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size,
            "num_clips": self.num_clips, "num_sample_clips": self.num_sample_clips}


@keras.saving.register_keras_serializable(package="sscs_tf")
class MapFusion(keras.layers.Layer):
  """2D-TAN fusion: `l2_normalize(sentence * Conv2D(H, 1)(map)) * mask` over channels.

  Args:
    hidden_size: H.
  Call: map_features `[B, N, N, H]`, sentence `[B, H]`, map_mask `[N, N]` -> `[B, N, N, H]`.
  """

  def __init__(self, hidden_size: int, **kwargs):
    super().__init__(**kwargs)
    self.hidden_size = hidden_size

  def build(self, input_shape=None):
    self.projection = dense(self.hidden_size, self.hidden_size, name="projection")
    self.projection.build((None, None, None, self.hidden_size))

  def call(self, map_features, sentence, map_mask):
    x = self.projection(map_features) * sentence[:, None, None, :]
    # F.normalize: x / max(||x||, 1e-12); the norm in float32 even under mixed precision.
    x32 = ops.cast(x, "float32")
    norm = ops.sqrt(ops.sum(ops.square(x32), axis=-1, keepdims=True))
    x = ops.cast(x32 / ops.maximum(norm, 1e-12), x.dtype)
    return x * ops.cast(map_mask, x.dtype)[None, :, :, None]

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size}
