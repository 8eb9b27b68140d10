"""The training optimizers (`config.optim`) and their learning-rate schedules.

`optim.name`:
  "adam": Adam, Keras' update and variables computed by TensorFlow's fused kernel
    (`FusedAdam`); `weight_decay` > 0 adds PyTorch's coupled L2 term to each gradient, as
    torch.optim.Adam(weight_decay=...) in 2D-TAN's and LGI's train.py.
  "adam_weight_decay": the "AdamWeightDecayOptimizer" of BERT that VSLNet trains with
    (26hzhang/VSLNet model/ops.py): Adam moments without bias correction, epsilon added to
    sqrt(v), and the decoupled decay `weight_decay * variable` added to the update before
    the learning rate multiplies it; variables whose path matches one of
    `weight_decay_exclude` (regular expressions) are not decayed.

`optim.schedule`:
  "constant": the learning rate is a variable (ReduceLROnPlateau may lower it).
  "linear": warm up linearly from 0 over `warmup_proportion` of the steps (a value > 1 is
    a step count), then decay linearly to 0 at the last step, as VSLNet's
    `create_optimizer` (tf.train.polynomial_decay, power 1, end 0, plus its warm-up).
"""

import re

import keras
from keras import ops
import tensorflow as tf

NAMES = ("adam", "adam_weight_decay")
SCHEDULES = ("constant", "linear")


class FusedAdam(keras.optimizers.Adam):
  """keras.optimizers.Adam whose update step is one `ResourceApplyAdam` per variable.

  The same update (bias-corrected rate, `m += (g - m)(1 - b1)`, `v += (g^2 - v)(1 - b2)`,
  `w -= rate m / (sqrt(v) + epsilon)`) and the same variables (a checkpoint of either loads
  into the other), computed in place by TensorFlow's kernel instead of a dozen whole-size
  temporaries per variable, so a step traces one op per variable. Its float32 result differs
  from Keras' own by rounding only: over a few steps it stays within 1e-6 of a float64 numpy
  Adam, closer than Keras' update (tests/test_optimizer.py).
  """

  def update_step(self, gradient, variable, learning_rate):
    if self.amsgrad:
      super().update_step(gradient, variable, learning_rate)
      return
    index = self._get_variable_index(variable)
    m, v = self._momentums[index].value, self._velocities[index].value
    dtype = variable.dtype
    step = tf.cast(self.iterations + 1, dtype)
    tf.raw_ops.ResourceApplyAdam(
        var=variable.handle, m=m.handle, v=v.handle,
        beta1_power=tf.pow(tf.constant(self.beta_1, dtype), step),
        beta2_power=tf.pow(tf.constant(self.beta_2, dtype), step),
        lr=tf.cast(learning_rate, dtype), beta1=tf.constant(self.beta_1, dtype),
        beta2=tf.constant(self.beta_2, dtype), epsilon=tf.constant(self.epsilon, dtype),
        grad=tf.cast(tf.convert_to_tensor(gradient), dtype))


class AdamWithL2(FusedAdam):
  """Adam with PyTorch's `weight_decay`: each gradient gets `l2 * variable` before the
  moments, as torch.optim.Adam computes it (2D-TAN's train.py builds its Adam so). Keras'
  own `weight_decay` is the decoupled AdamW decay, another update.

  The term joins inside the update step: after the loss scale is divided out, after the
  replicas' gradients are summed and after the loop's clipping (`train_lib._clip_and_apply`),
  as the reference adds it inside `optimizer.step()`, after `clip_grad_norm_`.
  """

  def __init__(self, l2: float, **kwargs):
    super().__init__(**kwargs)
    self.l2 = l2

  def update_step(self, gradient, variable, learning_rate):
    gradient = ops.cast(gradient, variable.dtype) + ops.cast(self.l2, variable.dtype) * variable
    super().update_step(gradient, variable, learning_rate)

  def get_config(self):
    return {**super().get_config(), "l2": self.l2}


class AdamWeightDecay(keras.optimizers.Optimizer):
  """BERT's AdamWeightDecayOptimizer, as VSLNet's model/ops.py computes it:

    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
    u = m / (sqrt(v) + epsilon) [+ weight_decay * w unless w's path matches an exclusion]
    w <- w - lr * u

  No bias correction: its first steps are larger than Adam's (about 3.2x at step 1 with
  b1 0.9, b2 0.999). The decay is decoupled from the moments, unlike AdamWithL2's.
  """

  def __init__(self, learning_rate, weight_decay_rate: float = 0.0, beta_1: float = 0.9,
               beta_2: float = 0.999, epsilon: float = 1e-6, exclude=(),
               name="adam_weight_decay", **kwargs):
    super().__init__(learning_rate=learning_rate, name=name, **kwargs)
    self.weight_decay_rate, self.beta_1, self.beta_2 = weight_decay_rate, beta_1, beta_2
    self.epsilon = epsilon
    self.exclude = tuple(exclude)
    self._patterns = [re.compile(p) for p in self.exclude]
    self._decayed = {}

  def decays(self, variable) -> bool:
    """Whether `variable` (a Keras variable, by its path) gets the weight decay."""
    return bool(self.weight_decay_rate) and not any(p.search(variable.path)
                                                    for p in self._patterns)

  def build(self, var_list):
    if self.built:
      return
    super().build(var_list)
    self._m, self._v = self.add_optimizer_variables(var_list, ["m", "v"])
    # The update step sees the backend's variable, whose name lacks the layer path.
    self._decayed = {self._var_key(v): self.decays(v) for v in var_list}

  def update_step(self, gradient, variable, learning_rate):
    index = self._get_variable_index(variable)
    m, v = self._m[index], self._v[index]
    gradient = ops.cast(gradient, variable.dtype)
    learning_rate = ops.cast(learning_rate, variable.dtype)
    self.assign(m, ops.add(ops.multiply(self.beta_1, m), ops.multiply(1.0 - self.beta_1,
                                                                      gradient)))
    self.assign(v, ops.add(ops.multiply(self.beta_2, v),
                           ops.multiply(1.0 - self.beta_2, ops.square(gradient))))
    update = ops.divide(m, ops.add(ops.sqrt(v), self.epsilon))
    if self._decayed[self._var_key(variable)]:
      update = ops.add(update, ops.multiply(self.weight_decay_rate, variable))
    self.assign(variable, ops.subtract(variable, ops.multiply(learning_rate, update)))

  def get_config(self):
    return {**super().get_config(), "weight_decay_rate": self.weight_decay_rate,
            "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
            "exclude": list(self.exclude)}


class LinearWarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
  """lr(step) = initial * step / warmup for step < warmup, else initial * (1 - step / total)
  (0 from `total` on): VSLNet's `create_optimizer`, whose decay counts from step 0, the
  warm-up included (tf.train.polynomial_decay, power 1, end 0, cycle False)."""

  def __init__(self, initial_learning_rate: float, total_steps: int, warmup_steps: int = 0):
    if total_steps < 1:
      raise ValueError(f"A linear schedule needs the number of training steps, got "
                       f"{total_steps}.")
    self.initial_learning_rate = initial_learning_rate
    self.total_steps, self.warmup_steps = int(total_steps), int(warmup_steps)

  def __call__(self, step):
    step = ops.cast(step, "float32")
    initial = ops.cast(self.initial_learning_rate, "float32")
    decayed = initial * (1.0 - ops.minimum(step, float(self.total_steps)) / self.total_steps)
    if not self.warmup_steps:
      return decayed
    warming = initial * step / float(self.warmup_steps)
    return ops.where(step < float(self.warmup_steps), warming, decayed)

  def get_config(self):
    return {"initial_learning_rate": self.initial_learning_rate,
            "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}


def schedule_of(optim) -> str:
  """`optim.schedule`; "constant" for configs written before it existed."""
  return optim.get("schedule", "constant")


def warmup_steps(optim, total_steps: int) -> int:
  """VSLNet's rule: `warmup_proportion` > 1 is a step count, else a share of the steps."""
  proportion = optim.get("warmup_proportion", 0.0)
  return int(proportion) if proportion > 1.0 else int(total_steps * proportion)


def make_optimizer(optim, loss_scaled: bool, total_steps: int = 0):
  """The optimizer `config.optim` describes; `total_steps` (the run's last step) is what a
  linear schedule decays over."""
  schedule = schedule_of(optim)
  if optim.name not in NAMES:
    raise ValueError(f"Unknown optimizer {optim.name!r}; config.optim.name must be one of "
                     f"{NAMES}.")
  if schedule not in SCHEDULES:
    raise ValueError(f"Unknown schedule {schedule!r}; config.optim.schedule must be one of "
                     f"{SCHEDULES}.")
  rate = optim.learning_rate
  if schedule == "linear":
    rate = LinearWarmupDecay(optim.learning_rate, total_steps, warmup_steps(optim, total_steps))
  kwargs = dict(learning_rate=rate, beta_1=optim.beta_1, beta_2=optim.beta_2,
                epsilon=optim.epsilon)
  if optim.name == "adam_weight_decay":
    optimizer = AdamWeightDecay(weight_decay_rate=optim.weight_decay,
                                exclude=optim.get("weight_decay_exclude", ()), **kwargs)
  elif optim.weight_decay:
    optimizer = AdamWithL2(optim.weight_decay, **kwargs)
  else:
    optimizer = FusedAdam(**kwargs)
  return keras.optimizers.LossScaleOptimizer(optimizer) if loss_scaled else optimizer
