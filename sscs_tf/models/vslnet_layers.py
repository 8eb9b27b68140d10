"""The layers of VSLNet (Zhang, Sun, Jing, Zhou, ACL 2020; 26hzhang/VSLNet, model/layers.py
and model/ops.py, TensorFlow 1): the shared feature encoder, context-query attention, the
query pooling and concatenation, query-guided highlighting, the conditioned span predictor
and the character CNN. `models/vslnet.py` assembles them (docs/models.md, VSLNet).

Conventions kept from the authors' code: masked logits are `x * m - 1e30 * (1 - m)`
(`mask_logits`), layer norms use epsilon 1e-6, every weight of the authors' `tf.get_variable`
without an initialiser starts Glorot-uniform and every bias zero, and the LSTM is TF1's
`LSTMCell` (one kernel over [input, h], gates i, j, f, o, forget bias 1). Weights the authors
give their L2 regulariser are listed by `regularized_weights`; the model adds the penalty.
"""

import collections
import math
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops

MASK_VALUE = -1e30


def mask_logits(logits, mask):
  """The authors' `mask_logits`: float32 logits, members kept, non-members -1e30."""
  mask = ops.cast(mask, "float32")
  return ops.cast(logits, "float32") * mask + MASK_VALUE * (1.0 - mask)


def _conv1d(units, use_bias=True, activation=None, name=None, dtype=None):
  """The authors' `conv1d` (kernel size 1, Glorot kernel, zero bias) as a Dense."""
  return keras.layers.Dense(units, use_bias=use_bias, activation=activation, name=name,
                            dtype=dtype)


def _layer_norm(name, dtype=None):
  return keras.layers.LayerNormalization(epsilon=1e-6, name=name, dtype=dtype)


def _kernels(layer):
  """The kernel and bias of a Dense / LayerNormalization / SeparableConv1D, as the authors
  regularise them."""
  if isinstance(layer, keras.layers.LayerNormalization):
    return [layer.gamma, layer.beta]
  if isinstance(layer, keras.layers.SeparableConv1D):
    return [layer.depthwise_kernel, layer.pointwise_kernel, layer.bias]
  return [layer.kernel] + ([layer.bias] if layer.use_bias else [])


@keras.saving.register_keras_serializable(package="sscs_tf")
class FeatureEncoder(keras.layers.Layer):
  """The authors' `feature_encoder`: learned positions, 4 depthwise-separable convolutions
  (kernel 7, pre-norm, residual) and one multi-head self-attention block; VSLNet runs one
  instance on the video and on the query (shared weights).

  The attention block is theirs: pre-norm, scaled dot products over the unmasked keys, no
  output projection, then a pre-norm Dense with its own residual.

  Args:
    hidden_size: H (128), the width in and out.
    num_heads: heads of the attention (8); H must divide by it.
    max_position_length: rows of the position table (128); longer inputs are refused.
    dropout: rate after every convolution and around the attention (0.2).
    kernel_size, num_conv_layers: the convolution stack (7, 4).
  Call: x `[B, T, H]`, mask `[B, T]` -> `[B, T, H]`.
  """

  def __init__(self, hidden_size: int, num_heads: int, max_position_length: int,
               dropout: float, kernel_size: int = 7, num_conv_layers: int = 4, **kwargs):
    super().__init__(**kwargs)
    if hidden_size % num_heads:
      raise ValueError(f"model.hidden_size={hidden_size} must be a multiple of "
                       f"model.num_heads={num_heads}.")
    self.hidden_size = hidden_size
    self.num_heads = num_heads
    self.max_position_length = max_position_length
    self.dropout = dropout
    self.kernel_size = kernel_size
    self.num_conv_layers = num_conv_layers

  def build(self, input_shape=None):
    h, policy = self.hidden_size, self.dtype_policy
    self.positions = self.add_weight(shape=(self.max_position_length, h),
                                     initializer="glorot_uniform", name="position_embeddings")
    self.conv_norms = [_layer_norm(f"conv_norm_{k}", policy) for k in range(self.num_conv_layers)]
    self.convs = [keras.layers.SeparableConv1D(h, self.kernel_size, padding="same",
                                               activation="relu", name=f"conv_{k}",
                                               dtype=policy)
                  for k in range(self.num_conv_layers)]
    self.attention_norm = _layer_norm("attention_norm", policy)
    self.query, self.key, self.value = (_conv1d(h, name=n, dtype=policy)
                                        for n in ("query", "key", "value"))
    self.dense_norm = _layer_norm("dense_norm", policy)
    self.dense = _conv1d(h, name="dense", dtype=policy)
    self.drop = keras.layers.Dropout(self.dropout)
    for layer in self.conv_norms + self.convs + [self.attention_norm, self.query, self.key,
                                                 self.value, self.dense_norm, self.dense]:
      layer.build((None, None, h))

  def regularized_weights(self):
    layers = self.conv_norms + self.convs + [self.attention_norm, self.query, self.key,
                                             self.value, self.dense_norm, self.dense]
    return [w for layer in layers for w in _kernels(layer)]

  def call(self, x, mask, training=False):
    length = ops.shape(x)[1]
    if isinstance(length, int) and length > self.max_position_length:
      raise ValueError(f"{length} steps exceed the position table's "
                       f"{self.max_position_length} (model.max_position_length).")
    x = x + ops.cast(self.positions[:length], x.dtype)[None]
    for norm, conv in zip(self.conv_norms, self.convs):
      x = self.drop(conv(norm(x)), training=training) + x
    attended = self.drop(self._attend(self.drop(self.attention_norm(x), training=training),
                                      mask, training), training=training)
    residual = attended + x
    out = self.drop(self.dense(self.drop(self.dense_norm(residual), training=training)),
                    training=training)
    return out + residual

  def _heads(self, x):
    batch, length = ops.shape(x)[0], ops.shape(x)[1]
    head_size = self.hidden_size // self.num_heads
    return ops.transpose(ops.reshape(x, (batch, length, self.num_heads, head_size)),
                         (0, 2, 1, 3))

  def _attend(self, x, mask, training):
    head_size = self.hidden_size // self.num_heads
    query = self._heads(self.query(x)) * (1.0 / math.sqrt(float(head_size)))
    key, value = self._heads(self.key(x)), self._heads(self.value(x))
    scores = ops.cast(ops.matmul(query, ops.transpose(key, (0, 1, 3, 2))), "float32")
    keys = ops.cast(mask, "float32")[:, None, None, :]
    weights = ops.softmax(scores + (1.0 - keys) * MASK_VALUE, axis=-1)
    weights = self.drop(ops.cast(weights, x.dtype), training=training)
    out = ops.transpose(ops.matmul(weights, value), (0, 2, 1, 3))
    return ops.reshape(out, (ops.shape(x)[0], ops.shape(x)[1], self.hidden_size))

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size,
            "num_heads": self.num_heads, "max_position_length": self.max_position_length,
            "dropout": self.dropout, "kernel_size": self.kernel_size,
            "num_conv_layers": self.num_conv_layers}


@keras.saving.register_keras_serializable(package="sscs_tf")
class ContextQueryAttention(keras.layers.Layer):
  """The authors' `video_query_attention`: trilinear similarity S = w0.v + w1.q + (v * w).q,
  A = softmax_q(S), B = softmax_v(S); [v, A q, v * A q, v * (A B^T) v] -> Dense(H) without
  bias.

  Args:
    hidden_size: H of video and query features.
    dropout: rate on both inputs of the similarity.
  Call: video `[B, T, H]`, query `[B, L, H]`, video_mask `[B, T]`, query_mask `[B, L]` ->
    (`[B, T, H]`, similarity `[B, T, L]` float32).
  """

  def __init__(self, hidden_size: int, dropout: float, **kwargs):
    super().__init__(**kwargs)
    self.hidden_size = hidden_size
    self.dropout = dropout

  def build(self, input_shape=None):
    h = self.hidden_size
    self.video_weight = self.add_weight(shape=(h, 1), initializer="glorot_uniform",
                                        name="video_weight")
    self.query_weight = self.add_weight(shape=(h, 1), initializer="glorot_uniform",
                                        name="query_weight")
    # Glorot over the authors' [1, 1, H] shape: fans H and H.
    self.product_weight = self.add_weight(shape=(1, 1, h), initializer="glorot_uniform",
                                          name="product_weight")
    self.drop = keras.layers.Dropout(self.dropout)
    self.dense = _conv1d(h, use_bias=False, name="dense", dtype=self.dtype_policy)
    self.dense.build((None, None, 4 * h))

  def regularized_weights(self):
    return [self.video_weight, self.query_weight, self.product_weight, self.dense.kernel]

  def call(self, video, query, video_mask, query_mask, training=False):
    v, q = self.drop(video, training=training), self.drop(query, training=training)
    similarity = (ops.matmul(v, self.video_weight)
                  + ops.transpose(ops.matmul(q, self.query_weight), (0, 2, 1))
                  + ops.matmul(v * self.product_weight, ops.transpose(q, (0, 2, 1))))
    similarity = ops.cast(similarity, "float32")
    to_query = ops.softmax(mask_logits(similarity, query_mask[:, None, :]), axis=-1)
    to_video = ops.softmax(mask_logits(similarity, video_mask[:, :, None]), axis=1)
    to_query, to_video = ops.cast(to_query, video.dtype), ops.cast(to_video, video.dtype)
    video_to_query = ops.matmul(to_query, query)
    query_to_video = ops.matmul(ops.matmul(to_query, ops.transpose(to_video, (0, 2, 1))), video)
    fused = ops.concatenate([video, video_to_query, video * video_to_query,
                             video * query_to_video], axis=-1)
    return self.dense(fused), similarity

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="sscs_tf")
class QueryPoolingConcat(keras.layers.Layer):
  """The authors' `context_query_concat`: the query attentively pooled (softmax over the
  words of q.w) and concatenated to every step, then Dense(H).

  The pooled query is VSLNet's own sentence representation; the model gives it to the Sscs
  branch as `sentence_feature`.

  Args:
    hidden_size: H.
  Call: x `[B, T, H]`, query `[B, L, H]`, query_mask `[B, L]` -> (`[B, T, H]`, pooled query
    `[B, H]`).
  """

  def __init__(self, hidden_size: int, **kwargs):
    super().__init__(**kwargs)
    self.hidden_size = hidden_size

  def build(self, input_shape=None):
    h = self.hidden_size
    self.pool_weight = self.add_weight(shape=(h, 1), initializer="glorot_uniform",
                                       name="pool_weight")
    self.dense = _conv1d(h, name="dense", dtype=self.dtype_policy)
    self.dense.build((None, None, 2 * h))

  def regularized_weights(self):
    return [self.pool_weight] + _kernels(self.dense)

  def call(self, x, query, query_mask):
    logits = ops.squeeze(ops.matmul(query, self.pool_weight), -1)
    alphas = ops.cast(ops.softmax(mask_logits(logits, query_mask), axis=-1), query.dtype)
    pooled = ops.einsum("bl,blh->bh", alphas, query)
    tiled = ops.broadcast_to(pooled[:, None, :], ops.shape(x))
    return self.dense(ops.concatenate([x, tiled], axis=-1)), pooled

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size}


@keras.saving.register_keras_serializable(package="sscs_tf")
class Highlighter(keras.layers.Layer):
  """The authors' `highlight_layer`'s scores: sigmoid of Dense(1) over the video steps,
  masked (padding scores 0). The loss is `vslnet.highlight_loss_per_example`.

  Args:
    hidden_size: H of the input.
  Call: x `[B, T, H]`, mask `[B, T]` -> masked logits `[B, T]` float32.
  """

  def __init__(self, hidden_size: int, **kwargs):
    super().__init__(**kwargs)
    self.hidden_size = hidden_size

  def build(self, input_shape=None):
    self.dense = _conv1d(1, name="dense", dtype=self.dtype_policy)
    self.dense.build((None, None, self.hidden_size))

  def regularized_weights(self):
    return _kernels(self.dense)

  def call(self, x, mask):
    return mask_logits(ops.squeeze(self.dense(x), -1), mask)

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size}


@keras.saving.register_keras_serializable(package="sscs_tf")
class TF1LSTMCell(keras.layers.Layer):
  """TensorFlow 1's `tf.nn.rnn_cell.LSTMCell` (no peepholes): z = [x, h] W + b split into
  gates i, j, f, o; c' = c sigmoid(f + 1) + sigmoid(i) tanh(j); h' = tanh(c') sigmoid(o).
  Glorot-uniform kernel, zero bias (`tf.get_variable`'s defaults).

  Args:
    units: U.
  Call: inputs `[B, D]`, states `[h [B, U], c [B, U]]` -> `(h, [h, c])`.
  """

  def __init__(self, units: int, forget_bias: float = 1.0, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.forget_bias = forget_bias
    self.state_size = [units, units]
    self.output_size = units

  def build(self, input_shape):
    self.kernel = self.add_weight(shape=(input_shape[-1] + self.units, 4 * self.units),
                                  initializer="glorot_uniform", name="kernel")
    self.bias = self.add_weight(shape=(4 * self.units,), initializer="zeros", name="bias")

  def call(self, inputs, states, training=False):
    h, c = states
    z = ops.matmul(ops.concatenate([inputs, h], axis=-1), self.kernel) + self.bias
    i, j, f, o = ops.split(z, 4, axis=-1)
    c = c * ops.sigmoid(f + self.forget_bias) + ops.sigmoid(i) * ops.tanh(j)
    h = ops.tanh(c) * ops.sigmoid(o)
    return h, [h, c]

  def get_config(self):
    return {**super().get_config(), "units": self.units, "forget_bias": self.forget_bias}


PREDICTORS = ("rnn", "transformer")


@keras.saving.register_keras_serializable(package="sscs_tf")
class ConditionedSpanPredictor(keras.layers.Layer):
  """The authors' `conditioned_predictor`: a start encoder, an end encoder over the start
  features, each concatenated with the input and scored by Dense(H, relu) -> Dense(1).

  "rnn" (their default): two LSTMs over the valid steps (zero output past the length, as
  `dynamic_rnn`). "transformer": one `FeatureEncoder` run twice, then a layer norm each.

  Args:
    hidden_size: H.
    mode: "rnn" or "transformer".
    num_heads, max_position_length, dropout: the transformer encoder's.
  Call: x `[B, T, H]`, mask `[B, T]` -> (start logits `[B, T]`, end logits `[B, T]`), masked,
    float32.
  """

  def __init__(self, hidden_size: int, mode: str = "rnn", num_heads: int = 8,
               max_position_length: int = 128, dropout: float = 0.0, **kwargs):
    super().__init__(**kwargs)
    if mode not in PREDICTORS:
      raise ValueError(f"model.predictor must be one of {PREDICTORS}, got {mode!r}.")
    self.hidden_size = hidden_size
    self.mode = mode
    self.num_heads = num_heads
    self.max_position_length = max_position_length
    self.dropout = dropout

  def build(self, input_shape=None):
    h, policy = self.hidden_size, self.dtype_policy
    if self.mode == "rnn":
      self.start_rnn = keras.layers.RNN(TF1LSTMCell(h, name="cell"), return_sequences=True,
                                        name="start_rnn", dtype=policy)
      self.end_rnn = keras.layers.RNN(TF1LSTMCell(h, name="cell"), return_sequences=True,
                                      name="end_rnn", dtype=policy)
      self.start_rnn.build((None, None, h))
      self.end_rnn.build((None, None, h))
    else:
      self.encoder = FeatureEncoder(h, self.num_heads, self.max_position_length,
                                    self.dropout, name="encoder", dtype=policy)
      self.encoder.build((None, None, h))
      self.start_norm, self.end_norm = _layer_norm("start_norm", policy), _layer_norm(
          "end_norm", policy)
      self.start_norm.build((None, None, h))
      self.end_norm.build((None, None, h))
    self.start_hidden = _conv1d(h, activation="relu", name="start_hidden", dtype=policy)
    self.end_hidden = _conv1d(h, activation="relu", name="end_hidden", dtype=policy)
    self.start_dense = _conv1d(1, name="start_dense", dtype=policy)
    self.end_dense = _conv1d(1, name="end_dense", dtype=policy)
    for layer in (self.start_hidden, self.end_hidden):
      layer.build((None, None, 2 * h))
    for layer in (self.start_dense, self.end_dense):
      layer.build((None, None, h))

  def regularized_weights(self):
    own = [self.start_hidden, self.end_hidden, self.start_dense, self.end_dense]
    if self.mode == "transformer":
      own += [self.start_norm, self.end_norm]
    weights = [w for layer in own for w in _kernels(layer)]
    return weights + (self.encoder.regularized_weights() if self.mode == "transformer" else [])

  def encode(self, x, mask, training=False):
    """(start features, end features) `[B, T, H]` before the scoring Dense layers."""
    if self.mode == "rnn":
      steps = ops.cast(mask, x.dtype)[..., None]
      # The mask is a prefix: a step's output reads only earlier steps, and past the
      # length dynamic_rnn outputs zeros.
      start = self.start_rnn(x) * steps
      return start, self.end_rnn(start) * steps
    start = self.encoder(x, mask, training=training)
    end = self.encoder(start, mask, training=training)
    return self.start_norm(start), self.end_norm(end)

  def call(self, x, mask, training=False):
    start, end = self.encode(x, mask, training)
    start = self.start_hidden(ops.concatenate([start, x], axis=-1))
    end = self.end_hidden(ops.concatenate([end, x], axis=-1))
    return (mask_logits(ops.squeeze(self.start_dense(start), -1), mask),
            mask_logits(ops.squeeze(self.end_dense(end), -1), mask))

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size, "mode": self.mode,
            "num_heads": self.num_heads, "max_position_length": self.max_position_length,
            "dropout": self.dropout}


CHAR_KERNELS, CHAR_FILTERS = (1, 2, 3, 4), (10, 20, 30, 40)


@keras.saving.register_keras_serializable(package="sscs_tf")
class CharCNN(keras.layers.Layer):
  """The authors' `char_embedding_lookup`: a character table (row 0 zero, padding), dropout,
  convolutions of widths 1-4 with 10/20/30/40 filters over each word's characters, relu,
  max over the characters; 100 features per word.

  Args:
    char_vocab_size: the authors' `char_size` (their table has char_size - 1 learned rows).
    char_dim: character vector width (50).
    dropout: rate on the character vectors.
  Call: char_ids `[B, L, C]` int (0 = padding), C >= 4 -> `[B, L, 100]`.
  """

  def __init__(self, char_vocab_size: int, char_dim: int = 50, dropout: float = 0.0,
               **kwargs):
    super().__init__(**kwargs)
    self.char_vocab_size = char_vocab_size
    self.char_dim = char_dim
    self.dropout = dropout

  def build(self, input_shape=None):
    self.table = self.add_weight(shape=(self.char_vocab_size - 1, self.char_dim),
                                 initializer="glorot_uniform", name="char_table")
    self.filters = [self.add_weight(shape=(k, self.char_dim, n), initializer="glorot_uniform",
                                    name=f"filter_{i}")
                    for i, (k, n) in enumerate(zip(CHAR_KERNELS, CHAR_FILTERS))]
    self.biases = [self.add_weight(shape=(n,), initializer="zeros", name=f"bias_{i}")
                   for i, n in enumerate(CHAR_FILTERS)]
    self.drop = keras.layers.Dropout(self.dropout)

  def regularized_weights(self):
    return self.filters + self.biases

  def call(self, char_ids, training=False):
    table = ops.concatenate([ops.zeros((1, self.char_dim), self.table.dtype), self.table], 0)
    chars = self.drop(ops.take(table, ops.cast(char_ids, "int32"), axis=0), training=training)
    batch, words = ops.shape(chars)[0], ops.shape(chars)[1]
    flat = ops.reshape(chars, (-1, ops.shape(chars)[2], self.char_dim))
    outputs = []
    for kernel, bias in zip(self.filters, self.biases):
      conv = ops.conv(flat, ops.cast(kernel, flat.dtype), padding="valid") + bias
      outputs.append(ops.max(ops.relu(conv), axis=1))
    return ops.reshape(ops.concatenate(outputs, -1), (batch, words, sum(CHAR_FILTERS)))

  def get_config(self):
    return {**super().get_config(), "char_vocab_size": self.char_vocab_size,
            "char_dim": self.char_dim, "dropout": self.dropout}


def word_char_table(tokens: Sequence[str], char_vocab_size: int,
                    reserved: int = 3) -> np.ndarray:
  """Each vocabulary word's character ids, `[len(tokens), C]` int32, C = max(longest word, 4).

  The authors' character dictionary (util/data_gen.py `vocab_emb_gen`): 0 padding, 1 unknown,
  then characters most common first; here counted over the vocabulary's words (the authors
  count over every token, keeping those seen 5 times), up to char_vocab_size - 2 of them.
  The first `reserved` tokens (<pad>, <unk>, <eos>) have no characters.
  """
  counts = collections.Counter(c for word in tokens[reserved:] for c in word)
  ids = {c: i + 2 for i, (c, _) in enumerate(counts.most_common(char_vocab_size - 2))}
  width = max([len(w) for w in tokens[reserved:]] + [max(CHAR_KERNELS)])
  table = np.zeros((len(tokens), width), np.int32)
  for row, word in enumerate(tokens[reserved:], start=reserved):
    table[row, :len(word)] = [ids.get(c, 1) for c in word]
  return table


def longest_word(char_ids):
  """The most characters of a word in `char_ids [B, L, C]` (int32)."""
  return ops.max(ops.sum(ops.cast(ops.not_equal(char_ids, 0), "int32"), axis=-1))


def cut_to_longest_word(char_ids, length=None):
  """`char_ids [B, L, C]` cut (or zero-padded) to the batch's longest word, `length` when
  given (at least the widest kernel, 4), as the authors' loader pads characters to the
  batch's longest word: the kernel-k windows over padding reach the max, so how many
  padded characters there are matters."""
  length = longest_word(char_ids) if length is None else length
  return fit_axis(char_ids, ops.maximum(length, max(CHAR_KERNELS)), axis=2)


def fit_axis(x, length, axis: int):
  """`x` cut or zero-padded on `axis` to `length` entries."""
  missing = tf.maximum(length - tf.shape(x)[axis], 0)
  pad = [[0, 0]] * len(x.shape)
  pad[axis] = [0, missing]
  index = [slice(None)] * len(x.shape)
  index[axis] = slice(None, length)
  return tf.pad(x, pad)[tuple(index)]
