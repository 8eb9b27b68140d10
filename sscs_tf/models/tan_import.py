"""Imports the authors' PyTorch 2D-TAN weights into `sscs_tf.models.tan.TAN`.

The reference names its modules frame_layer, prop_layer, fusion_layer, map_layer and
pred_layer; its layouts are channels-first. 1x1 convolutions are Dense layers here.
"""

from typing import Dict, Mapping

import numpy as np

from sscs_tf.models import torch_checkpoint


class _LayoutError(ValueError):
  pass


def _pointwise(w):  # Conv1d (out, in, 1) or Conv2d (out, in, 1, 1) -> Dense (in, out)
  if w.ndim not in (3, 4) or any(d != 1 for d in w.shape[2:]):
    raise _LayoutError
  return w.reshape(w.shape[:2]).T


def _conv1d(w):  # (out, in, k) -> (k, in, out)
  if w.ndim != 3:
    raise _LayoutError
  return w.transpose(2, 1, 0)


def _conv2d(w):  # (out, in, kh, kw) -> (kh, kw, in, out)
  if w.ndim != 4:
    raise _LayoutError
  return w.transpose(2, 3, 1, 0)


def _linear(w):  # (out, in) -> (in, out); also LSTM (4U, in) -> (in, 4U), gates i, f, g, o
  if w.ndim != 2:
    raise _LayoutError
  return w.T


def _same(w):
  return w


def reference_weight_map(model) -> Dict[str, tuple]:
  """{reference name: (Keras variable, layout conversion)} for every reference parameter."""
  pairs = {}

  def add(prefix, layer, convert):
    pairs[f"{prefix}.weight"] = (layer.kernel, convert)
    pairs[f"{prefix}.bias"] = (layer.bias, _same)

  add("frame_layer.vis_conv", model.clip_encoder.projection, _pointwise)
  for layer, conv in zip(model.temporal_map.layout, model.temporal_map.convs):
    add(f"prop_layer.layers.{layer.scale}.{layer.index}", conv, _conv1d)
  lstm_prefix = "fusion_layer.textual_encoder"
  for k, lstm in enumerate(model.sentence_encoder.lstms):
    cell = lstm.cell
    pairs[f"{lstm_prefix}.weight_ih_l{k}"] = (cell.kernel, _linear)
    pairs[f"{lstm_prefix}.weight_hh_l{k}"] = (cell.recurrent_kernel, _linear)
    pairs[f"{lstm_prefix}.bias_ih_l{k}"] = (cell.bias, _same)
    pairs[f"{lstm_prefix}.bias_hh_l{k}"] = (cell.recurrent_bias, _same)
  add("fusion_layer.tex_linear", model.sentence_encoder.projection, _linear)
  add("fusion_layer.vis_conv", model.fusion.projection, _pointwise)
  for i, conv in enumerate(model.map_convs.convs):
    add(f"map_layer.convs.{i}", conv, _conv2d)
  add("pred_layer", model.head, _pointwise)
  return pairs


def load_reference_weights(model, state_dict: Mapping[str, np.ndarray]) -> None:
  """Copies a reference state dict (name -> numpy array) into `model`.

  Raises ValueError naming the parameter on a missing or unexpected name or a shape mismatch;
  nothing is assigned unless every parameter matches.
  """
  targets = reference_weight_map(model)
  missing = sorted(set(targets) - set(state_dict))
  unexpected = sorted(set(state_dict) - set(targets))
  if missing or unexpected:
    raise ValueError(f"Reference weights do not match this model: missing {missing}, "
                     f"unexpected {unexpected}.")
  assign_converted(targets, state_dict)


def assign_converted(targets, state_dict: Mapping[str, np.ndarray]) -> None:
  """Converts every `state_dict[name]` with `targets[name] = (variable, convert)` and assigns
  them all, or none: a parameter whose layout does not convert to its variable's shape is
  named before anything is assigned."""
  converted = []
  for name, (variable, convert) in targets.items():
    value = np.asarray(state_dict[name], np.float32)
    try:
      keras_value = convert(value)
    except _LayoutError:
      keras_value = None
    if keras_value is None or keras_value.shape != tuple(variable.shape):
      raise ValueError(f"Reference parameter {name!r} has shape {value.shape}, which does not "
                       f"convert to the Keras variable {variable.path} of shape "
                       f"{tuple(variable.shape)}.")
    converted.append((variable, keras_value))
  for variable, value in converted:
    variable.assign(value)


def load_torch_checkpoint(path: str) -> Dict[str, np.ndarray]:
  """Reads an authors' released `.pkl`/`.pth` checkpoint into {name: numpy array}.

  Unwraps a 'model' or 'state_dict' entry and the 'module.' prefix DataParallel adds. Read
  by `torch_checkpoint.read` (tensors only; PyTorch, an optional extra).
  """
  checkpoint = torch_checkpoint.read(path)
  for key in ("model", "state_dict"):
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
      checkpoint = checkpoint[key]
  if not isinstance(checkpoint, dict):
    raise ValueError(f"{path}: expected a state dict, found {type(checkpoint).__name__}.")
  state = {}
  for name, tensor in checkpoint.items():
    name = name[len("module."):] if name.startswith("module.") else name
    state[name] = torch_checkpoint.to_numpy(path, name, tensor)
  return state
