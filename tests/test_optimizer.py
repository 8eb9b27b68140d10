"""The training optimizer: Adam with PyTorch's coupled weight decay (config.optim.weight_decay),
added after the loop's gradient clipping, against hand-computed and numpy steps."""

import types

import keras
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from sscs_tf.train import train_lib
from sscs_tf.train.train_state import _make_optimizer

LR, BETA_1, BETA_2, EPSILON = 0.1, 0.9, 0.999, 1e-8


def _optim(weight_decay, clip_norm=0.0):
  return ml_collections.ConfigDict(dict(name="adam", learning_rate=LR, beta_1=BETA_1,
                                        beta_2=BETA_2, epsilon=EPSILON,
                                        weight_decay=weight_decay, clip_norm=clip_norm))


def adam_l2_np(param, grads, weight_decay, clip_norm=0.0):
  """Keras' Adam update (epsilon outside the bias correction) on the gradient
  clip(g) + weight_decay * param: torch.optim.Adam(weight_decay=...) after clip_grad_norm_."""
  param = np.float64(param)
  m = v = np.zeros_like(param)
  for t, grad in enumerate(grads, 1):
    grad = np.float64(grad)
    if clip_norm:
      grad = grad * min(1.0, clip_norm / np.linalg.norm(grad))
    grad = grad + weight_decay * param
    m = BETA_1 * m + (1 - BETA_1) * grad
    v = BETA_2 * v + (1 - BETA_2) * grad ** 2
    alpha = LR * np.sqrt(1 - BETA_2 ** t) / (1 - BETA_1 ** t)
    param = param - alpha * m / (np.sqrt(v) + EPSILON)
  return param


def _run(optimizer, param, grads, clip_norm=0.0):
  """Applies `grads` as the training loop does (times the loss scale when there is one,
  then its clip-and-apply); returns the variable."""
  variable = keras.Variable(np.float32(param))
  optimizer.build([variable])
  state = types.SimpleNamespace(optimizer=optimizer,
                                config=ml_collections.ConfigDict(dict(
                                    optim=dict(clip_norm=clip_norm))))
  scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
  for grad in grads:
    loss_scale = optimizer.dynamic_scale if scaled else 1.0
    train_lib._clip_and_apply(state, [tf.constant(np.float32(grad)) * loss_scale], [variable],
                              loss_scale)
  return variable.numpy()


def test_first_step_follows_the_decayed_gradient_by_hand():
  # p = 4, g = -1, weight decay 0.5: the gradient Adam sees is -1 + 0.5 * 4 = 1, so the first
  # step (about lr * sign) lowers p where the loss gradient alone would raise it.
  got = _run(_make_optimizer(_optim(0.5), loss_scaled=False), [4.0], [[-1.0]])
  np.testing.assert_allclose(got, [4.0 - LR], rtol=1e-6)
  plain = _run(_make_optimizer(_optim(0.0), loss_scaled=False), [4.0], [[-1.0]])
  np.testing.assert_allclose(plain, [4.0 + LR], rtol=1e-6)


@pytest.mark.parametrize("loss_scaled", [False, True])
def test_weight_decay_steps_equal_numpy(loss_scaled):
  rng = np.random.default_rng(0)
  param = rng.normal(size=5)
  grads = rng.normal(size=(3, 5))
  # A loss-scaled step divides the scale out of the gradient before the decay joins it.
  got = _run(_make_optimizer(_optim(0.3), loss_scaled=loss_scaled), param, grads)
  np.testing.assert_allclose(got, adam_l2_np(param, grads, 0.3), rtol=1e-5, atol=1e-6)


def test_weight_decay_joins_after_the_clipping():
  rng = np.random.default_rng(1)
  param = rng.normal(size=4) * 3.0
  grads = rng.normal(size=(2, 4)) * 50.0  # norms ~100: clipped to 1
  got = _run(_make_optimizer(_optim(0.8), loss_scaled=False), param, grads, clip_norm=1.0)
  np.testing.assert_allclose(got, adam_l2_np(param, grads, 0.8, clip_norm=1.0), rtol=1e-5,
                             atol=1e-6)
  # Clipping the decayed gradient instead would be another step: the check tells them apart.
  clipped_after = param
  m = v = np.zeros_like(param)
  for t, grad in enumerate(grads, 1):
    grad = grad + 0.8 * clipped_after
    grad = grad * min(1.0, 1.0 / np.linalg.norm(grad))
    m = BETA_1 * m + (1 - BETA_1) * grad
    v = BETA_2 * v + (1 - BETA_2) * grad ** 2
    alpha = LR * np.sqrt(1 - BETA_2 ** t) / (1 - BETA_1 ** t)
    clipped_after = clipped_after - alpha * m / (np.sqrt(v) + EPSILON)
  assert np.abs(got - clipped_after).max() > 1e-3


def test_zero_weight_decay_is_keras_adam_exactly():
  optimizer = _make_optimizer(_optim(0.0), loss_scaled=False)
  assert type(optimizer) is keras.optimizers.Adam
  rng = np.random.default_rng(2)
  param, grads = rng.normal(size=6), rng.normal(size=(3, 6))
  reference = keras.optimizers.Adam(learning_rate=LR, beta_1=BETA_1, beta_2=BETA_2,
                                    epsilon=EPSILON)
  np.testing.assert_array_equal(_run(optimizer, param, grads), _run(reference, param, grads))
  np.testing.assert_allclose(_run(_make_optimizer(_optim(0.0), loss_scaled=False), param,
                                  grads), adam_l2_np(param, grads, 0.0), rtol=1e-5, atol=1e-6)
