"""Building blocks shared by the grounding models: PyTorch-style initialisers, an LSTM cell
with PyTorch's two biases, and PyTorch's batch norm."""

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
