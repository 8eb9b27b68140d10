"""Building blocks shared by the grounding models and the Sscs branch: PyTorch-style
initialisers, an LSTM cell with PyTorch's two biases, PyTorch's batch norm, the masked softmax
and attentive pooling."""

import keras
import numpy as np
from keras import ops


def torch_uniform(fan_in: int) -> keras.initializers.Initializer:
  """U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

  PyTorch's default for Linear/Conv weights and biases (kaiming_uniform with a=sqrt(5)) and for
  every LSTM tensor (fan_in = hidden size there). The reference 2D-TAN keeps these defaults, so
  training from scratch starts from the same distribution. A new instance per weight, since an
  unseeded Keras initializer reused across weights would repeat its values.
  """
  bound = 1.0 / np.sqrt(fan_in)
  return keras.initializers.RandomUniform(-bound, bound)


def dense(units: int, fan_in: int, **kwargs) -> keras.layers.Dense:
  """A Dense (= 1x1 convolution on the last axis) initialised as PyTorch would."""
  return keras.layers.Dense(units, kernel_initializer=torch_uniform(fan_in),
                            bias_initializer=torch_uniform(fan_in), **kwargs)


@keras.saving.register_keras_serializable(package="sscs_tf")
class TwoBiasLSTMCell(keras.layers.Layer):
  """LSTM cell with an input bias and a recurrent bias, as PyTorch's `nn.LSTM`.

  Keeping both biases makes parameter counts equal the published ones and makes importing the
  reference weights a copy. Gate order i, f, g, o (PyTorch's and Keras' order).

  Args:
    units: hidden size U.
  Call: inputs `[B, D]`, states `[h [B, U], c [B, U]]` -> `(h, [h, c])`.
  """

  def __init__(self, units: int, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.state_size = [units, units]
    self.output_size = units

  def build(self, input_shape):
    four = 4 * self.units
    self.kernel = self.add_weight(shape=(input_shape[-1], four), name="kernel",
                                  initializer=torch_uniform(self.units))
    self.recurrent_kernel = self.add_weight(shape=(self.units, four), name="recurrent_kernel",
                                            initializer=torch_uniform(self.units))
    self.bias = self.add_weight(shape=(four,), name="bias", initializer=torch_uniform(self.units))
    self.recurrent_bias = self.add_weight(shape=(four,), name="recurrent_bias",
                                          initializer=torch_uniform(self.units))

  def call(self, inputs, states, training=False):
    h, c = states
    z = (ops.matmul(inputs, self.kernel) + self.bias
         + ops.matmul(h, self.recurrent_kernel) + self.recurrent_bias)
    i, f, g, o = ops.split(z, 4, axis=-1)
    c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
    h = ops.sigmoid(o) * ops.tanh(c)
    return h, [h, c]

  def get_config(self):
    return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="sscs_tf")
class TorchBatchNorm(keras.layers.BatchNormalization):
  """PyTorch's BatchNorm1d over the last axis: eps 1e-5, running averages with weight 0.1.

  In training the batch is normalised with its biased variance, as in Keras, but the moving
  variance is updated with the unbiased one, var * n / (n - 1) over the n pooled steps
  (padded steps included), which is PyTorch's rule; Keras' own layer would keep the biased
  variance and drift from the reference's running statistics.
  """

  def __init__(self, momentum=0.9, epsilon=1e-5, **kwargs):
    super().__init__(momentum=momentum, epsilon=epsilon, **kwargs)

  def call(self, inputs, training=None, mask=None):
    if not (training and self.trainable):
      return super().call(inputs, training=False)
    x = ops.cast(inputs, "float32")
    mean, variance = ops.moments(x, axes=self._reduction_axes)
    count = ops.cast(ops.size(x) // ops.shape(x)[-1], "float32")
    unbiased = variance * count / ops.maximum(count - 1.0, 1.0)
    self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
    self.moving_variance.assign(self.moving_variance * self.momentum
                                + unbiased * (1.0 - self.momentum))
    out = ops.batch_normalization(x, mean, variance, axis=self.axis, offset=self.beta,
                                  scale=self.gamma, epsilon=self.epsilon)
    return ops.cast(out, self.compute_dtype)


# The reference LGI's masked_fill value: masked logits get exactly zero weight in float32.
NEG_INF = -1e9


def masked_softmax(logits, mask=None, axis=-1, zero_if_empty=False):
  """Softmax over `axis` of the logits where `mask` is non-zero (everywhere if None), float32.

  Non-members get exactly 0 in a row with a member. A row without members gets 1/M everywhere
  (PyTorch's masked_fill(-1e9) + softmax, which LGI's parity needs), or 0 everywhere with
  `zero_if_empty` (an empty Sscs support set pools to nothing). Float32 whatever the logits'
  dtype: in float16, -1e9 is -inf and an empty row would give NaN. Written out because
  keras.ops.softmax warns on an axis of size 1, which the phrase pooling has with one phrase
  (weight 1, as in the reference).
  """
  logits = ops.cast(logits, "float32")
  members = None if mask is None else ops.cast(mask, "float32") > 0
  if members is not None:
    logits = ops.where(members, logits, NEG_INF)
  # The shift has no gradient (softmax is shift-invariant): stopping it saves the max's.
  exp = ops.exp(logits - ops.stop_gradient(ops.max(logits, axis=axis, keepdims=True)))
  if members is None or not zero_if_empty:
    return exp / ops.sum(exp, axis=axis, keepdims=True)
  # A row with a member sums to >= 1 (its largest term is exp(0)); an empty one to 0.
  exp = exp * ops.cast(members, "float32")
  return exp / ops.maximum(ops.sum(exp, axis=axis, keepdims=True), 1e-30)


def attentive_pool(weights, items):
  """sum_m weights[b, m] items[b, m]: weights `[B, M]`, items `[B, M, H]` -> `[B, H]`."""
  return ops.einsum("bm,bmh->bh", ops.cast(weights, items.dtype), items)


@keras.saving.register_keras_serializable(package="sscs_tf")
class AttentionWeights(keras.layers.Layer):
  """Attentive pooling's weights: a masked softmax over the items of w^T tanh(W x + b).

  LGI uses it bare for its phrase pooling and temporal attention (Eq. 11, 13 of LGI: no bias,
  PyTorch's initialisers, an empty row uniform as in the reference); the Sscs caption
  objective's Phi' (`sscs.caption.AttentivePooling`) with a bias, Keras' initialisers and
  zero weights for an empty support set. `attentive_pool` sums the items with the weights.

  Args:
    hidden_size: H of the items, the fan-in of PyTorch's initialiser; None: H is read from
      the input shape at build (Keras' initialisers only).
    attention_size: A, the width of W.
    use_bias: whether W has a bias b.
    torch_init: PyTorch's default initialisers (`torch_uniform`) rather than Keras' (Glorot
      uniform, zero bias).
    zero_if_empty: what a row without members gets (see `masked_softmax`).
  Call: items `[B, M, H]`, mask `[B, M]` or None -> weights `[B, M]` float32.
  """

  def __init__(self, hidden_size=None, attention_size: int = 256, use_bias: bool = False,
               torch_init: bool = True, zero_if_empty: bool = False, **kwargs):
    super().__init__(**kwargs)
    if torch_init and not hidden_size:
      raise ValueError("AttentionWeights with torch_init needs hidden_size (the fan-in).")
    self.hidden_size = hidden_size
    self.attention_size = attention_size
    self.use_bias = use_bias
    self.torch_init = torch_init
    self.zero_if_empty = zero_if_empty
    self.hidden = self.score = None
    # The sublayers take this layer's policy (the Sscs branch pins float32 under mixed
    # precision).
    if not torch_init:
      # Keras' initialisers draw their seed when made: made here, where they always were, a
      # seeded run keeps its initial weights.
      self.hidden = keras.layers.Dense(attention_size, use_bias=use_bias, name="hidden",
                                       dtype=self.dtype_policy)
      self.score = keras.layers.Dense(1, use_bias=False, name="score", dtype=self.dtype_policy)

  def build(self, input_shape=None):
    width = self.hidden_size or input_shape[-1]
    if self.hidden is None:
      self.hidden = dense(self.attention_size, width, use_bias=self.use_bias, name="hidden",
                          dtype=self.dtype_policy)
      self.score = dense(1, self.attention_size, use_bias=False, name="score",
                         dtype=self.dtype_policy)
    self.hidden.build((None, width))
    self.score.build((None, self.attention_size))

  def call(self, items, mask=None):
    logits = ops.squeeze(self.score(ops.tanh(self.hidden(items))), -1)
    return masked_softmax(logits, mask, zero_if_empty=self.zero_if_empty)

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size,
            "attention_size": self.attention_size, "use_bias": self.use_bias,
            "torch_init": self.torch_init, "zero_if_empty": self.zero_if_empty}
