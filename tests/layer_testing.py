"""One check of a Keras layer, in the spirit of keras-hub's `run_layer_test`
(keras_hub/src/tests/test_case.py): config round trip, symbolic against eager shapes, weight
counts, a training step, mixed precision and a save/reload.

Inputs come in three forms, as the project's layers take them:
  - a dict: passed as the one positional argument (`TAN`, `LGI`, `SscsBranch`);
  - a tuple: the positional arguments (`MapFusion(map_features, sentence, map_mask)`); an
    element may itself be a list (`TwoBiasLSTMCell(inputs, [h, c])`);
  - anything else: the one positional argument.
Outputs may be a tensor, a tuple/list or a dict of tensors; expected shapes and dtypes are
given in the same structure (lists and tuples are interchangeable).
"""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf
from keras import tree

MIXED_POLICY = "mixed_bfloat16"


def run_layer_test(layer_cls, init_kwargs, input_data, *, call_kwargs=None,
                   expected_output_shape=None, expected_num_trainable_weights=None,
                   expected_num_non_trainable_weights=None, expected_num_trainable_params=None,
                   expected_num_non_trainable_params=None, weights_without_gradient=(),
                   expected_mixed_precision_dtype=None, run_training_check=True,
                   run_mixed_precision_check=True, run_saving_check=True,
                   run_dtype_argument_check=False):
  """Builds `layer_cls(**init_kwargs)`, calls it on `input_data` and runs every check.

  Args:
    layer_cls: a `keras.layers.Layer` (or `keras.Model`) subclass.
    init_kwargs: constructor arguments; each must come back unchanged from `get_config()`.
    input_data: numpy arrays in one of the forms of the module docstring.
    call_kwargs: non-tensor call arguments (`return_attention=True`).
    expected_output_shape: the eager output shapes, in the outputs' structure.
    expected_num_*: tensor and parameter counts of `layer.trainable_weights` and
      `layer.non_trainable_weights`; None skips that count.
    weights_without_gradient: substrings of the paths (below the layer's own name, e.g.
      "score/bias") of the trainable weights that the outputs do not depend on; those must
      get no gradient, every other one a finite non-zero one.
    expected_mixed_precision_dtype: under the "mixed_bfloat16" global policy, a dtype every
      floating output must have, or a structure of dtypes for all outputs; None means the
      layer's compute dtype.
    run_training_check, run_mixed_precision_check, run_saving_check: switch those checks off.
    run_dtype_argument_check: also check `dtype="mixed_bfloat16"` given to the constructor
      (keras-hub's way): it must reach every sublayer, the outputs as under the global policy.
      Only for the layers built that way.
  Raises:
    AssertionError naming the layer and the check that failed.
  """
  call_kwargs = dict(call_kwargs or {})
  name = layer_cls.__name__
  layer = layer_cls(**init_kwargs)
  outputs = call_layer(layer, input_data, call_kwargs)
  if expected_output_shape is not None:
    assert _normalize(_shapes(outputs)) == _normalize(expected_output_shape), (
        f"{name}: output shapes {_shapes(outputs)}, expected {expected_output_shape}")
  check_weight_counts(layer, trainable=expected_num_trainable_weights,
                      non_trainable=expected_num_non_trainable_weights,
                      trainable_params=expected_num_trainable_params,
                      non_trainable_params=expected_num_non_trainable_params)
  check_config_round_trip(layer, init_kwargs, input_data, call_kwargs, outputs)
  check_symbolic_shapes(layer, input_data, call_kwargs, outputs)
  if run_saving_check:
    check_save_and_reload(layer, input_data, call_kwargs)
  if run_training_check:
    check_training_step(layer, input_data, call_kwargs, weights_without_gradient)
  if run_mixed_precision_check:
    check_mixed_precision(layer_cls, init_kwargs, input_data, call_kwargs,
                          expected_mixed_precision_dtype)
  if run_dtype_argument_check:
    check_dtype_argument(layer_cls, init_kwargs, input_data, call_kwargs,
                         expected_mixed_precision_dtype)


def call_layer(layer, input_data, call_kwargs):
  """`layer` applied to `input_data` in the forms of the module docstring."""
  if isinstance(input_data, tuple):
    return layer(*input_data, **call_kwargs)
  return layer(input_data, **call_kwargs)


def check_weight_counts(layer, *, trainable=None, non_trainable=None, trainable_params=None,
                        non_trainable_params=None):
  """Tensor and parameter counts of the trainable and non-trainable weights."""
  actual = {
      "trainable weights": len(layer.trainable_weights),
      "non-trainable weights": len(layer.non_trainable_weights),
      "trainable parameters": _num_params(layer.trainable_weights),
      "non-trainable parameters": _num_params(layer.non_trainable_weights)}
  expected = {"trainable weights": trainable, "non-trainable weights": non_trainable,
              "trainable parameters": trainable_params,
              "non-trainable parameters": non_trainable_params}
  wrong = {key: (actual[key], value) for key, value in expected.items()
           if value is not None and actual[key] != value}
  assert not wrong, (f"{type(layer).__name__}: (actual, expected) counts {wrong}; weights: "
                     f"{[(w.path, tuple(w.shape), w.trainable) for w in layer.weights]}")


def check_config_round_trip(layer, init_kwargs, input_data, call_kwargs, outputs):
  """Every constructor argument is in the config; the layer revived by its registered name
  has the same config and, given the same weights, the same outputs."""
  name = type(layer).__name__
  config = layer.get_config()
  for key, value in init_kwargs.items():
    assert key in config, f"{name}.get_config() drops the constructor argument {key!r}"
    if key == "dtype":
      same = keras.dtype_policies.get(config[key]).name == keras.dtype_policies.get(value).name
    else:
      same = _normalize(config[key]) == _normalize(value)
    assert same, f"{name}.get_config()[{key!r}] = {config[key]!r}, constructed with {value!r}"
  revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
  assert type(revived) is type(layer), (
      f"{name} serialized by its registered name revives as {type(revived).__name__}")
  assert revived.get_config() == config, (
      f"{name}: config after from_config {revived.get_config()} != {config}")
  call_layer(revived, input_data, call_kwargs)  # builds it
  revived.set_weights(layer.get_weights())
  _assert_outputs_equal(outputs, call_layer(revived, input_data, call_kwargs),
                        f"{name} revived from its config, with the same weights")


def check_symbolic_shapes(layer, input_data, call_kwargs, outputs):
  """The symbolic call (compute_output_spec) gives the eager shapes and dtypes; with the
  batch dimension unknown, every other dimension still matches."""
  name = type(layer).__name__
  symbolic = call_layer(layer, _symbolic_inputs(input_data, unknown_batch=False), call_kwargs)
  assert _normalize(_shapes(symbolic)) == _normalize(_shapes(outputs)), (
      f"{name}: symbolic shapes {_shapes(symbolic)} != eager shapes {_shapes(outputs)}")
  assert _normalize(_dtypes(symbolic)) == _normalize(_dtypes(outputs)), (
      f"{name}: symbolic dtypes {_dtypes(symbolic)} != eager dtypes {_dtypes(outputs)}")
  unknown = call_layer(layer, _symbolic_inputs(input_data, unknown_batch=True), call_kwargs)
  for sym, eager in zip(tree.flatten(unknown), tree.flatten(outputs)):
    sym_shape, eager_shape = tuple(sym.shape), tuple(eager.shape)
    compatible = len(sym_shape) == len(eager_shape) and all(
        s is None or s == e for s, e in zip(sym_shape, eager_shape))
    assert compatible, (f"{name}: with an unknown batch size the symbolic output has shape "
                        f"{sym_shape}, the eager one {eager_shape}")


def check_save_and_reload(layer, input_data, call_kwargs):
  """A `.keras` file of the layer (a model as it is, a layer inside a functional model)
  reloads by registered name to the same outputs."""
  name = type(layer).__name__
  if isinstance(layer, keras.Model):
    model, model_inputs = layer, input_data
  else:
    inputs = _as_lists(_symbolic_inputs(input_data, unknown_batch=False, as_input=True))
    model = keras.Model(inputs, call_layer(layer, _as_call_args(inputs, input_data), call_kwargs))
    model_inputs = _as_lists(input_data)
  with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "model.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
  _assert_outputs_equal(model(model_inputs), reloaded(model_inputs),
                        f"{name} saved to a .keras file and reloaded")


def check_training_step(layer, input_data, call_kwargs, weights_without_gradient=()):
  """One GradientTape step on a random projection of the outputs (a plain sum would give no
  gradient through a softmax or a normalisation): every trainable weight the outputs depend
  on gets a finite non-zero gradient and changes; the others get none."""
  name = type(layer).__name__
  variables = layer.trainable_variables
  exempt = lambda variable: any(p in _local_path(variable) for p in weights_without_gradient)
  unused = [p for p in weights_without_gradient
            if not any(p in _local_path(v) for v in variables)]
  assert not unused, f"{name}: weights_without_gradient {unused} match no trainable weight"
  if not variables:
    return
  with tf.GradientTape() as tape:
    outputs = call_layer(layer, input_data, {**call_kwargs, "training": True})
    loss = _random_projection(outputs)
  grads = [None if g is None else tf.convert_to_tensor(g)
           for g in tape.gradient(loss, variables)]
  before = [np.array(v) for v in variables]
  for grad, variable in zip(grads, variables):
    if exempt(variable):
      assert grad is None or not np.any(grad), (
          f"{name}: {variable.path} is listed without gradient but gets one")
      continue
    assert grad is not None, f"{name}: {variable.path} gets no gradient"
    assert np.all(np.isfinite(grad)), f"{name}: {variable.path} has a non-finite gradient"
    assert np.any(grad), f"{name}: {variable.path} has an all-zero gradient"
  keras.optimizers.Adam(1e-2).apply_gradients(
      [(g, v) for g, v in zip(grads, variables) if g is not None])
  for grad, variable, old in zip(grads, variables, before):
    if grad is not None and np.any(grad):
      assert not np.array_equal(old, np.array(variable)), (
          f"{name}: {variable.path} did not change in the training step")


def check_mixed_precision(layer_cls, init_kwargs, input_data, call_kwargs, expected_dtype=None):
  """Under the "mixed_bfloat16" global policy (how training runs it): finite outputs,
  float32 variables, the documented output dtypes, and the sublayers of a layer that pins
  its own policy (`SscsBranch`: float32) on that policy."""
  name = layer_cls.__name__
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(MIXED_POLICY)
  try:
    layer = layer_cls(**init_kwargs)
    outputs = call_layer(layer, input_data, call_kwargs)
  finally:
    keras.config.set_dtype_policy(previous)
  wrong = [(w.path, w.dtype) for w in layer.weights if _is_float(w.dtype) and w.dtype != "float32"]
  assert not wrong, f"{name}: under {MIXED_POLICY} these variables are not float32: {wrong}"
  policy = layer.dtype_policy.name
  if policy != MIXED_POLICY:  # a layer that pins its policy must pin its sublayers' too
    others = sorted({f"{sub.name}: {sub.dtype_policy.name}" for sub in layer._flatten_layers()
                     if sub.dtype_policy.name != policy and not _is_container(sub)})
    assert not others, (f"{name} computes in {policy} under {MIXED_POLICY}, but not these "
                        f"sublayers: {others}")
  _check_output_dtypes(outputs, expected_dtype, layer.compute_dtype,
                       f"{name}: under {MIXED_POLICY}")


def check_dtype_argument(layer_cls, init_kwargs, input_data, call_kwargs, expected_dtype=None):
  """`dtype="mixed_bfloat16"` as a constructor argument, the global policy float32: every
  sublayer takes that policy, the variables stay float32, the outputs have `expected_dtype`
  (as in `check_mixed_precision`; None: bfloat16)."""
  name = layer_cls.__name__
  layer = layer_cls(**{**init_kwargs, "dtype": MIXED_POLICY})
  outputs = call_layer(layer, input_data, call_kwargs)
  others = sorted({f"{sub.name}: {sub.dtype_policy.name}" for sub in layer._flatten_layers()
                   if sub.dtype_policy.name != MIXED_POLICY})
  assert not others, f"{name}(dtype={MIXED_POLICY!r}) has sublayers with other policies: {others}"
  wrong = [(w.path, w.dtype) for w in layer.weights if _is_float(w.dtype) and w.dtype != "float32"]
  assert not wrong, f"{name}(dtype={MIXED_POLICY!r}): variables not float32: {wrong}"
  _check_output_dtypes(outputs, expected_dtype, "bfloat16", f"{name}(dtype={MIXED_POLICY!r})")


def _check_output_dtypes(outputs, expected_dtype, default_dtype, what):
  """Outputs finite and of `expected_dtype`: a structure of dtypes, or one dtype (None:
  `default_dtype`) for every floating output."""
  dtypes = _dtypes(outputs)
  if expected_dtype is None or isinstance(expected_dtype, str):
    float_dtype = expected_dtype or default_dtype
    expected = tree.map_structure(lambda d: float_dtype if _is_float(d) else d, dtypes)
  else:
    expected = expected_dtype
  assert _normalize(dtypes) == _normalize(expected), (
      f"{what} the outputs have dtypes {dtypes}, expected {expected}")
  for tensor in tree.flatten(outputs):
    if _is_float(tensor.dtype):
      assert np.all(np.isfinite(np.asarray(tf.cast(tensor, tf.float32)))), (
          f"{what} an output is not finite")


def _is_container(layer):
  """A Sequential (which takes no dtype) and its input layer compute nothing and cast
  nothing: their sublayers' policies are what counts."""
  return isinstance(layer, (keras.Sequential, keras.layers.InputLayer))


def _local_path(variable):
  """The variable's path below the tested layer: `score/bias` of `attention/score/bias`."""
  return variable.path.split("/", 1)[-1]


def _num_params(weights):
  return int(sum(np.prod(w.shape) for w in weights))


def _shapes(outputs):
  return tree.map_structure(lambda t: tuple(t.shape), outputs)


def _dtypes(outputs):
  return tree.map_structure(lambda t: keras.backend.standardize_dtype(t.dtype), outputs)


def _is_float(dtype):
  return "float" in keras.backend.standardize_dtype(dtype)


def _normalize(structure):
  """Lists as tuples, so that `[h, c]` and `(h, c)` compare equal; shapes stay tuples."""
  if isinstance(structure, dict):
    return {key: _normalize(value) for key, value in structure.items()}
  if isinstance(structure, (list, tuple)):
    return tuple(_normalize(value) for value in structure)
  return structure


def _as_lists(structure):
  """Tuples and lists as lists: a functional model takes nested lists, not tuples."""
  if isinstance(structure, dict):
    return {key: _as_lists(value) for key, value in structure.items()}
  if isinstance(structure, (list, tuple)):
    return [_as_lists(value) for value in structure]
  return structure


def _as_call_args(inputs, input_data):
  """The model inputs back in `input_data`'s form (positional arguments as a tuple)."""
  return tuple(inputs) if isinstance(input_data, tuple) else inputs


def _symbolic_inputs(input_data, unknown_batch, as_input=False):
  """KerasTensors of the inputs' shapes and dtypes; with `unknown_batch` the first dimension
  of every input that has the batch size of the first input is None."""
  batch = np.shape(tree.flatten(input_data)[0])[:1]

  def symbolic(array, name=None):
    shape = tuple(np.shape(array))
    if unknown_batch and shape[:1] == batch:
      shape = (None,) + shape[1:]
    dtype = keras.backend.standardize_dtype(np.asarray(array).dtype)
    if as_input:
      return keras.Input(batch_shape=shape, dtype=dtype, name=name)
    return keras.KerasTensor(shape, dtype=dtype, name=name)

  if isinstance(input_data, dict):  # named after their keys, as a functional model wants
    return {key: symbolic(value, key) for key, value in input_data.items()}
  return tree.map_structure(symbolic, input_data)


def _random_projection(outputs):
  """sum(output * r) over the floating outputs, r fixed normal noise, in float32."""
  rng = np.random.default_rng(0)
  total = tf.constant(0.0)
  for tensor in tree.flatten(outputs):
    if _is_float(tensor.dtype):
      noise = rng.normal(size=tuple(tensor.shape)).astype(np.float32)
      total += tf.reduce_sum(tf.cast(tensor, tf.float32) * noise)
  return total


def _assert_outputs_equal(expected, actual, what):
  assert _normalize(_shapes(expected)) == _normalize(_shapes(actual)), (
      f"{what}: output shapes {_shapes(actual)} != {_shapes(expected)}")
  for want, got in zip(tree.flatten(expected), tree.flatten(actual)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=what)
