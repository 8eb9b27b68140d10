"""The training optimizers: Adam with PyTorch's coupled weight decay (config.optim.weight_decay),
added after the loop's gradient clipping, against hand-computed and numpy steps."""

import types

import keras
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from sscs_tf.train import train_lib
from sscs_tf.train import optimizers

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
  got = _run(optimizers.make_optimizer(_optim(0.5), loss_scaled=False), [4.0], [[-1.0]])
  np.testing.assert_allclose(got, [4.0 - LR], rtol=1e-6)
  plain = _run(optimizers.make_optimizer(_optim(0.0), loss_scaled=False), [4.0], [[-1.0]])
  np.testing.assert_allclose(plain, [4.0 + LR], rtol=1e-6)


@pytest.mark.parametrize("loss_scaled", [False, True])
def test_weight_decay_steps_equal_numpy(loss_scaled):
  rng = np.random.default_rng(0)
  param = rng.normal(size=5)
  grads = rng.normal(size=(3, 5))
  # A loss-scaled step divides the scale out of the gradient before the decay joins it.
  got = _run(optimizers.make_optimizer(_optim(0.3), loss_scaled=loss_scaled), param, grads)
  np.testing.assert_allclose(got, adam_l2_np(param, grads, 0.3), rtol=1e-5, atol=1e-6)


def test_weight_decay_joins_after_the_clipping():
  rng = np.random.default_rng(1)
  param = rng.normal(size=4) * 3.0
  grads = rng.normal(size=(2, 4)) * 50.0  # norms ~100: clipped to 1
  got = _run(optimizers.make_optimizer(_optim(0.8), loss_scaled=False), param, grads, clip_norm=1.0)
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


def test_zero_weight_decay_is_keras_adam_fused():
  optimizer = optimizers.make_optimizer(_optim(0.0), loss_scaled=False)
  assert type(optimizer) is optimizers.FusedAdam
  rng = np.random.default_rng(2)
  param, grads = rng.normal(size=6), rng.normal(size=(3, 6))
  reference = keras.optimizers.Adam(learning_rate=LR, beta_1=BETA_1, beta_2=BETA_2,
                                    epsilon=EPSILON)
  got = _run(optimizer, param, grads)
  # numpy's in float64 to float32 rounding; Keras' float32 arithmetic differs in the order
  # of its operations, by less than 1e-5 of the distance moved.
  np.testing.assert_allclose(got, adam_l2_np(param, grads, 0.0), rtol=1e-6, atol=1e-6)
  keras_adam = _run(reference, param, grads)
  moved = np.abs(keras_adam - np.float32(param))
  assert moved.min() > 0.04  # up to lr per step
  assert 0 < np.abs(got - keras_adam).max() < 1e-5 * moved.max()


def test_fused_adam_keeps_keras_adams_variables(tmp_path):
  # A checkpoint written with Keras' Adam restores into the fused one, moments included,
  # and the next steps agree.
  rng = np.random.default_rng(3)
  param, grads = rng.normal(size=(4, 3)), rng.normal(size=(4, 4, 3))
  kwargs = dict(learning_rate=LR, beta_1=BETA_1, beta_2=BETA_2, epsilon=EPSILON)
  states = []
  for optimizer in (keras.optimizers.Adam(**kwargs), optimizers.FusedAdam(**kwargs)):
    variable = keras.Variable(np.float32(param))
    optimizer.build([variable])
    states.append((optimizer, variable, tf.train.Checkpoint(optimizer=optimizer, v=variable)))
  keras_adam, keras_variable, keras_checkpoint = states[0]
  fused, fused_variable, fused_checkpoint = states[1]
  assert ([v.shape for v in keras_adam.variables] == [v.shape for v in fused.variables]
          and len(fused.variables) == 4)  # iteration, learning rate, the two moments
  for grad in grads[:2]:
    keras_adam.apply_gradients([(tf.constant(np.float32(grad)), keras_variable)])
  fused_checkpoint.restore(keras_checkpoint.save(str(tmp_path / "ckpt"))).assert_consumed()
  assert int(fused.iterations) == 2
  for grad in grads[2:]:
    for optimizer, variable, _ in states:
      optimizer.apply_gradients([(tf.constant(np.float32(grad)), variable)])
  np.testing.assert_allclose(fused_variable.numpy(), keras_variable.numpy(), rtol=1e-5)
  assert np.abs(fused_variable.numpy() - np.float32(param)).max() > 0.1  # it moved


# VSLNet's optimizer (26hzhang/VSLNet model/ops.py): BERT's AdamWeightDecayOptimizer.
WD_EPSILON = 1e-6


def _bert_optim(weight_decay, schedule="constant", warmup=0.0, exclude=()):
  return ml_collections.ConfigDict(dict(
      name="adam_weight_decay", learning_rate=LR, beta_1=BETA_1, beta_2=BETA_2,
      epsilon=WD_EPSILON, weight_decay=weight_decay, weight_decay_exclude=exclude,
      schedule=schedule, warmup_proportion=warmup, clip_norm=0.0))


def reference_learning_rate(step, initial, total, warmup):
  """tf.train.polynomial_decay(power 1, end 0, cycle False) and the warm-up of
  create_optimizer, step by step as the reference computes them."""
  decayed = (initial - 0.0) * (1 - min(step, total) / total) ** 1.0 + 0.0
  if warmup and step < warmup:
    return initial * step / warmup
  return decayed


def adam_weight_decay_np(param, grads, weight_decay, decayed=True, total=0, warmup=0):
  """AdamWeightDecayOptimizer.apply_gradients in float64: no bias correction, epsilon added
  to sqrt(v), decay added to the update before the learning rate."""
  param = np.float64(param)
  m = v = np.zeros_like(param)
  for step, grad in enumerate(grads):
    rate = reference_learning_rate(step, LR, total, warmup) if total else LR
    m = BETA_1 * m + (1 - BETA_1) * grad
    v = BETA_2 * v + (1 - BETA_2) * np.square(grad)
    update = m / (np.sqrt(v) + WD_EPSILON)
    if decayed:
      update = update + weight_decay * param
    param = param - rate * update
  return param


def test_adam_weight_decay_first_step_by_hand():
  # w = 1, g = 2: m = 0.2, v = 0.004, u = 0.2 / (sqrt(0.004) + 1e-6) + 0.01 * 1; no bias
  # correction, so the step is ~3.16 lr where Adam's would be lr.
  got = _run(optimizers.make_optimizer(_bert_optim(0.01), loss_scaled=False), [1.0], [[2.0]])
  np.testing.assert_allclose(got, [1.0 - LR * (0.2 / (0.004 ** 0.5 + 1e-6) + 0.01)],
                             rtol=1e-6)
  assert abs(got[0] - (1.0 - 0.317227)) < 1e-5


def test_adam_weight_decay_steps_equal_numpy_with_the_linear_schedule():
  rng = np.random.default_rng(3)
  param, grads = rng.normal(size=5), rng.normal(size=(6, 5))
  optim = _bert_optim(0.3, schedule="linear")
  got = _run(optimizers.make_optimizer(optim, loss_scaled=False, total_steps=8), param, grads)
  np.testing.assert_allclose(got, adam_weight_decay_np(param, grads, 0.3, total=8),
                             rtol=1e-5, atol=1e-6)
  # Without the schedule, or with Keras' bias-corrected Adam, the steps differ.
  assert np.abs(got - adam_weight_decay_np(param, grads, 0.3)).max() > 1e-3
  assert np.abs(got - adam_l2_np(param, grads, 0.0)).max() > 1e-3


def test_excluded_variables_are_not_decayed():
  rng = np.random.default_rng(4)
  grads = rng.normal(size=(3, 4))
  optimizer = optimizers.make_optimizer(_bert_optim(0.5, exclude=(r"bias", r"/gamma$")),
                                        loss_scaled=False)
  kernel = keras.Variable(np.ones(4, np.float32), name="kernel")
  bias = keras.Variable(np.ones(4, np.float32), name="bias")
  assert optimizer.decays(kernel) and not optimizer.decays(bias)
  optimizer.build([kernel, bias])
  for grad in grads:
    optimizer.apply_gradients([(tf.constant(grad, tf.float32), kernel),
                               (tf.constant(grad, tf.float32), bias)])
  np.testing.assert_allclose(kernel.numpy(), adam_weight_decay_np(np.ones(4), grads, 0.5),
                             rtol=1e-5)
  np.testing.assert_allclose(bias.numpy(), adam_weight_decay_np(np.ones(4), grads, 0.5,
                                                                decayed=False), rtol=1e-5)


@pytest.mark.parametrize("warmup, warmup_steps", [(0.0, 0), (0.25, 5), (3.0, 3)])
def test_linear_schedule_is_the_references(warmup, warmup_steps):
  optim = _bert_optim(0.0, schedule="linear", warmup=warmup)
  assert optimizers.warmup_steps(optim, 20) == warmup_steps  # > 1: a count, else a share
  optimizer = optimizers.make_optimizer(optim, loss_scaled=False, total_steps=20)
  schedule = optimizer._learning_rate  # the schedule object; .learning_rate is its value
  assert isinstance(schedule, optimizers.LinearWarmupDecay)
  for step in range(23):
    np.testing.assert_allclose(float(schedule(step)),
                               reference_learning_rate(step, LR, 20, warmup_steps),
                               rtol=1e-6, atol=1e-12)
  assert float(schedule(20)) == 0.0 and float(schedule(22)) == 0.0


def test_a_linear_schedule_needs_the_run_length():
  with pytest.raises(ValueError, match="number of training steps"):
    optimizers.make_optimizer(_bert_optim(0.0, schedule="linear"), loss_scaled=False)


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_unknown_optimizer_is_named(name):
  optim = _optim(0.0)
  optim.name = name
  with pytest.raises(ValueError, match=f"Unknown optimizer '{name}'"):
    optimizers.make_optimizer(optim, loss_scaled=False)
