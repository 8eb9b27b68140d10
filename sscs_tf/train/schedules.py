"""ReduceLROnPlateau for a custom loop, with its state in variables so it is checkpointed."""

import math

import tensorflow as tf


class ReduceLROnPlateau(tf.Module):
  """Multiplies the optimizer's learning rate by `factor` after `patience` evaluations
  without improvement of the monitored value, as PyTorch's scheduler (mode, threshold 1e-4
  relative, no cooldown, min_lr 0) that the baselines use.

  Args:
    optimizer: a Keras optimizer whose `learning_rate` is a variable.
    factor, patience: as in PyTorch.
    mode: "min" for a loss, "max" for a metric.
  """

  def __init__(self, optimizer, factor: float, patience: int, mode: str = "min",
               threshold: float = 1e-4, name=None):
    super().__init__(name=name)
    if mode not in ("min", "max"):
      raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if not 0.0 < factor < 1.0:
      raise ValueError(f"factor must be in (0, 1), got {factor}")
    self.optimizer = optimizer
    self.factor, self.patience, self.mode, self.threshold = factor, patience, mode, threshold
    self.best = tf.Variable(math.inf if mode == "min" else -math.inf, dtype=tf.float64,
                            trainable=False, name="best")
    self.bad_evaluations = tf.Variable(0, dtype=tf.int64, trainable=False,
                                       name="bad_evaluations")

  def _improved(self, value: float) -> bool:
    best = float(self.best.numpy())
    if self.mode == "min":
      return value < best * (1.0 - self.threshold)
    return value > best * (1.0 + self.threshold)

  def update(self, value: float) -> bool:
    """Records one evaluation; returns True when the learning rate was reduced."""
    if not math.isfinite(value):
      raise ValueError(f"ReduceLROnPlateau got a non-finite monitored value {value}")
    if self._improved(value):
      self.best.assign(value)
      self.bad_evaluations.assign(0)
      return False
    self.bad_evaluations.assign_add(1)
    if int(self.bad_evaluations.numpy()) > self.patience:
      learning_rate = self.optimizer.learning_rate
      learning_rate.assign(learning_rate * self.factor)
      self.bad_evaluations.assign(0)
      return True
    return False
