"""Imports the authors' VSLNet weights (26hzhang/VSLNet, TensorFlow 1) into
`sscs_tf.models.vslnet.VSLNet`, by their variable names.

The reference's variables come from `tf.get_variable` in model/layers.py and model/ops.py;
its checkpoints (`tf.train.Saver`, `ckpt/vslnet_<task>_.../model/*.ckpt`) hold them with the
optimizer's `adam_m` / `adam_v` slots and the global step, which are not model weights.
Every layout differs from the port's by size-1 axes only: `conv1d` kernels `[1, in, out]`
and biases `[1, 1, out]`, the depthwise filter `[k, 1, C, 1]` and pointwise `[1, 1, C, H]`,
the character filters `[1, k, dim, n]`; so each value is reshaped after its squeezed shape
is checked. The word table holds the GloVe rows only: the port's table puts them after the
padding and unknown-word rows (ids 0 and 1), as the reference's concat([zero, unk, table]).
"""

import json
import os
from typing import Dict, Mapping

import numpy as np
import tensorflow as tf

from sscs_tf.models import vslnet

# Checkpoint entries that are not model weights.
_NOT_WEIGHTS = ("/adam_m", "/adam_v", "global_step")
WORD_TABLE = "word_embeddings/word_table"


def _dense(pairs, prefix, layer):
  pairs[f"{prefix}/kernel"] = layer.kernel
  if layer.use_bias:
    pairs[f"{prefix}/bias"] = layer.bias


def _norm(pairs, prefix, layer):
  pairs[f"{prefix}/layer_norm_scale"] = layer.gamma
  pairs[f"{prefix}/layer_norm_bias"] = layer.beta


def _encoder(pairs, prefix, encoder):
  pairs[f"{prefix}/positional_embedding/position_embeddings"] = encoder.positions
  for k, (norm, conv) in enumerate(zip(encoder.conv_norms, encoder.convs)):
    _norm(pairs, f"{prefix}/conv_block/layer_norm_{k}", norm)
    conv_prefix = f"{prefix}/conv_block/depthwise_conv_layers_{k}"
    pairs[f"{conv_prefix}/depthwise_filter"] = conv.depthwise_kernel
    pairs[f"{conv_prefix}/pointwise_filter"] = conv.pointwise_kernel
    pairs[f"{conv_prefix}/bias"] = conv.bias
  block = f"{prefix}/multihead_attention_block"
  _norm(pairs, f"{block}/layer_norm_1", encoder.attention_norm)
  for name in ("query", "key", "value"):
    _dense(pairs, f"{block}/multihead_attention/{name}", getattr(encoder, name))
  _norm(pairs, f"{block}/layer_norm_2", encoder.dense_norm)
  _dense(pairs, f"{block}/dense", encoder.dense)


def reference_weight_map(model: vslnet.VSLNet) -> Dict[str, tf.Variable]:
  """{reference variable name: the port's variable} for every weight but the word table."""
  pairs = {"word_embeddings/unk": model.unk}
  if model.char_cnn is not None:
    pairs["char_embeddings/char_table"] = model.char_cnn.table
    for i, (kernel, bias) in enumerate(zip(model.char_cnn.filters, model.char_cnn.biases)):
      pairs[f"char_embeddings/filter_{i}"] = kernel
      pairs[f"char_embeddings/bias_{i}"] = bias
  _dense(pairs, "video_conv1d", model.video_projection)
  _dense(pairs, "query_conv1d", model.query_projection)
  _encoder(pairs, "feature_encoder", model.encoder)
  attention = model.attention
  trilinear = "video_query_attention/efficient_trilinear"
  pairs[f"{trilinear}/linear_kernel4arg0"] = attention.video_weight
  pairs[f"{trilinear}/linear_kernel4arg1"] = attention.query_weight
  pairs[f"{trilinear}/linear_kernel4mul"] = attention.product_weight
  _dense(pairs, "video_query_attention/dense", attention.dense)
  pairs["context_query_concat/weight"] = model.concat.pool_weight
  _dense(pairs, "context_query_concat/dense", model.concat.dense)
  _dense(pairs, "highlighting_layer/dense", model.highlighter.dense)
  predictor = model.span_predictor
  if predictor.mode == "rnn":
    for name, rnn in (("start_rnn", predictor.start_rnn), ("end_rnn", predictor.end_rnn)):
      pairs[f"conditioned_predictor/{name}/rnn/lstm_cell/kernel"] = rnn.cell.kernel
      pairs[f"conditioned_predictor/{name}/rnn/lstm_cell/bias"] = rnn.cell.bias
  else:
    _encoder(pairs, "conditioned_predictor/feature_encoder", predictor.encoder)
    _norm(pairs, "conditioned_predictor/s_layer_norm", predictor.start_norm)
    _norm(pairs, "conditioned_predictor/e_layer_norm", predictor.end_norm)
  for name in ("start_hidden", "end_hidden", "start_dense", "end_dense"):
    _dense(pairs, f"conditioned_predictor/{name}", getattr(predictor, name))
  return pairs


def _squeezed(shape):
  return tuple(d for d in shape if d != 1)


def load_reference_weights(model: vslnet.VSLNet, variables: Mapping[str, np.ndarray],
                           source: str = "the reference weights") -> None:
  """Assigns the reference's variables (name -> array) to the model.

  Raises ValueError naming the variable when one is missing, has the wrong shape, or is
  left over (a variable of another configuration, e.g. the other predictor).
  """
  pairs = reference_weight_map(model)
  weights = {k: v for k, v in variables.items() if not any(s in k for s in _NOT_WEIGHTS)}
  missing = sorted(set(pairs) - set(weights) | ({WORD_TABLE} - set(weights)))
  extra = sorted(set(weights) - set(pairs) - {WORD_TABLE})
  if extra:  # named first: with missing ones too, it is another configuration's
    raise ValueError(f"{source} holds {extra[0]!r}, which this model configuration has no "
                     f"weight for ({len(extra)} unused, {len(missing)} missing); check "
                     "model.predictor and model.char_vocab_size.")
  if missing:
    raise ValueError(f"{source} has no variable {missing[0]!r} (missing: {missing}).")
  updates = []
  for name, variable in pairs.items():
    value = np.asarray(weights[name], np.float32)
    if _squeezed(value.shape) != _squeezed(variable.shape):
      raise ValueError(f"{source}: variable {name!r} has shape {value.shape}; the model's "
                       f"{variable.path} needs {tuple(variable.shape)} (up to size-1 axes).")
    updates.append((variable, value.reshape(variable.shape)))
  table = np.asarray(weights[WORD_TABLE], np.float32)
  expected = (model.vocab_size - 2, model.embedding_dim)
  if table.shape != expected:
    raise ValueError(f"{source}: variable {WORD_TABLE!r} has shape {table.shape}; the model "
                     f"needs {expected} (vocab_size - 2 GloVe rows of embedding_dim).")
  full = np.concatenate([np.zeros((2, model.embedding_dim), np.float32), table])
  updates.append((model.word_table, full))
  for variable, value in updates:
    variable.assign(value)


def read_checkpoint(prefix: str) -> Dict[str, np.ndarray]:
  """Every variable of a TF1 checkpoint (`tf.train.Saver`'s prefix, e.g. .../vslnet_123.ckpt)."""
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def config_from_reference(configs_json: str, feature_dim: int = 0) -> dict:
  """`config.model` fields from the authors' `configs.json` (written beside their
  checkpoints by main.py)."""
  with open(configs_json, encoding="utf-8") as f:
    ref = json.load(f)
  try:
    return dict(name="vslnet", feature_dim=feature_dim or int(ref["video_feature_dim"]),
                embedding_dim=int(ref["word_dim"]), char_vocab_size=int(ref["char_size"]),
                char_dim=int(ref["char_dim"]), hidden_size=int(ref["hidden_size"]),
                num_heads=int(ref["num_heads"]), max_position_length=int(ref["max_pos_len"]),
                dropout=float(ref["drop_rate"]), predictor=str(ref["predictor"]))
  except KeyError as e:
    raise ValueError(f"{os.path.basename(configs_json)}: no field {e.args[0]!r}, which the "
                     "authors' main.py writes.") from None
