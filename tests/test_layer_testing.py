"""`run_layer_test` passes a correct toy layer and fails each deliberately broken one, with a
message naming what is wrong."""

import keras
import numpy as np
import pytest
from keras import ops

from tests import layer_testing
from tests.layer_testing import run_layer_test

INPUTS = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)


@keras.saving.register_keras_serializable(package="layer_testing_toys")
class Affine(keras.layers.Layer):
  """x W + b, the toy every broken one below departs from. Call: `[B, D]` -> `[B, units]`."""

  def __init__(self, units, **kwargs):
    super().__init__(**kwargs)
    self.units = units

  def build(self, input_shape):
    self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
    self.bias = self.add_weight(shape=(self.units,), name="bias", initializer="random_normal")

  def call(self, x):
    return ops.matmul(x, self.kernel) + self.bias

  def get_config(self):
    return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="layer_testing_toys")
class DropsUnits(Affine):
  """get_config forgets `units`; from_config then falls back to a default of 1."""

  def __init__(self, units=1, **kwargs):
    super().__init__(units, **kwargs)

  def get_config(self):
    config = super().get_config()
    del config["units"]
    return config


@keras.saving.register_keras_serializable(package="layer_testing_toys")
class DeadBias(Affine):
  """The bias reaches the output only through stop_gradient: it gets no gradient."""

  def call(self, x):
    return ops.matmul(x, self.kernel) + ops.stop_gradient(self.bias)


@keras.saving.register_keras_serializable(package="layer_testing_toys")
class HiddenState(Affine):
  """An offset drawn in build() that is neither a weight nor in the config: a revived or
  reloaded copy computes something else."""

  def build(self, input_shape):
    super().build(input_shape)
    self.offset = np.random.default_rng().normal(size=self.units).astype(np.float32)

  def call(self, x):
    return super().call(x) + self.offset


@keras.saving.register_keras_serializable(package="layer_testing_toys")
class WrongSpec(Affine):
  """compute_output_spec disagrees with call about the output width."""

  def compute_output_spec(self, x):
    return keras.KerasTensor(tuple(x.shape[:-1]) + (self.units + 1,), dtype=self.compute_dtype)


@keras.saving.register_keras_serializable(package="layer_testing_toys")
class HalfVariables(Affine):
  """Creates its kernel in bfloat16 whatever the policy: mixed precision wants float32."""

  def build(self, input_shape):
    self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel",
                                  dtype="bfloat16")
    self.bias = self.add_weight(shape=(self.units,), name="bias", initializer="random_normal")


@keras.saving.register_keras_serializable(package="layer_testing_toys")
class Wrapper(keras.layers.Layer):
  """A Dense inside, created without this layer's dtype policy."""

  def __init__(self, units, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.inner = keras.layers.Dense(units, name="inner")

  def build(self, input_shape):
    self.inner.build(input_shape)

  def call(self, x):
    return self.inner(x)

  def get_config(self):
    return {**super().get_config(), "units": self.units}


def run_affine(layer_cls=Affine, **overrides):
  args = dict(expected_output_shape=(2, 4), expected_num_trainable_weights=2,
              expected_num_non_trainable_weights=0, expected_num_trainable_params=16,
              expected_num_non_trainable_params=0)
  args.update(overrides)
  run_layer_test(layer_cls, {"units": 4}, INPUTS, **args)


def test_a_correct_layer_passes():
  run_affine()


@pytest.mark.parametrize("overrides, message", [
    (dict(expected_num_trainable_weights=3), "trainable weights': \\(2, 3\\)"),
    (dict(expected_num_trainable_params=15), "trainable parameters': \\(16, 15\\)"),
    (dict(expected_num_non_trainable_weights=1), "non-trainable weights': \\(0, 1\\)"),
    (dict(expected_output_shape=(2, 5)), "output shapes"),
])
def test_wrong_expectations_fail(overrides, message):
  with pytest.raises(AssertionError, match=message):
    run_affine(**overrides)


def test_a_config_that_drops_an_argument_fails():
  with pytest.raises(AssertionError, match="drops the constructor argument 'units'"):
    run_affine(DropsUnits)


def test_a_weight_without_gradient_fails_unless_listed():
  with pytest.raises(AssertionError, match="bias has an all-zero gradient|bias gets no gradient"):
    run_affine(DeadBias)
  run_affine(DeadBias, weights_without_gradient=("bias",))


def test_a_listed_weight_that_gets_a_gradient_fails():
  with pytest.raises(AssertionError, match="listed without gradient but gets one"):
    run_affine(weights_without_gradient=("bias",))
  with pytest.raises(AssertionError, match="match no trainable weight"):
    run_affine(weights_without_gradient=("gamma",))


def test_state_outside_weights_and_config_fails_the_round_trip_and_the_reload():
  with pytest.raises(AssertionError, match="revived from its config"):
    run_affine(HiddenState)
  layer = HiddenState(4)
  layer(INPUTS)
  with pytest.raises(AssertionError, match="saved to a .keras file and reloaded"):
    layer_testing.check_save_and_reload(layer, INPUTS, {})


def test_a_symbolic_shape_that_differs_from_the_eager_one_fails():
  with pytest.raises(AssertionError, match="symbolic shapes"):
    run_affine(WrongSpec)


def test_mixed_precision_checks_variables_and_output_dtypes():
  with pytest.raises(AssertionError, match="not float32: \\[\\('half_variables.*/kernel'"):
    # (The training check fails too: Adam's 1e-2 steps are below bfloat16's resolution.)
    run_affine(HalfVariables, run_training_check=False)
  with pytest.raises(AssertionError, match="outputs have dtypes bfloat16, expected float32"):
    run_affine(expected_mixed_precision_dtype="float32")
  assert keras.config.dtype_policy().name == "float32"  # restored after the check


def test_a_policy_that_does_not_reach_the_sublayers_fails():
  with pytest.raises(AssertionError,
                     match="has sublayers with other policies: \\['inner: float32'"):
    run_affine(Wrapper, run_dtype_argument_check=True)
  # Pinned to float32 under the mixed global policy, the Dense still computes in bfloat16.
  with pytest.raises(AssertionError, match="computes in float32 under mixed_bfloat16, but not "
                     "these sublayers: \\['inner: mixed_bfloat16'"):
    run_layer_test(Wrapper, {"units": 4, "dtype": "float32"}, INPUTS,
                   expected_mixed_precision_dtype="float32")
