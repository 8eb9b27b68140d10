"""Parity with the reference 2D-TAN (PyTorch) through its exported weights and activations."""

import sys

import numpy as np
import pytest

from sscs_tf.scoring import losses
from sscs_tf.models import tan, tan_import
from tests import testing

# Channels-first reference arrays -> channels-last.
_TO_CHANNELS_LAST = {3: (0, 2, 1), 4: (0, 2, 3, 1)}


def _load(variant):
  path = testing.shared_path("parity", "2dtan", f"model_charades_{variant}.npz")
  return dict(np.load(path))


def _reference_state(data):
  return {k[len("param/"):]: v for k, v in data.items() if k.startswith("param/")}


def _model_and_inputs(data, variant, tmp_path, impl="sparse"):
  """The file's width-16 model; its word vectors become an embedding table of their own."""
  txt = data["txt"]
  batch, length, dim = txt.shape
  table = np.concatenate([np.zeros((1, dim), np.float32), txt.reshape(-1, dim)])
  path = str(tmp_path / "embeddings.npy")
  np.save(path, table)
  model = tan.TAN(feature_dim=data["vis"].shape[-1], num_clips=16, vocab_size=len(table),
                  hidden_size=16, map_type=variant, num_scale_layers=[16], map_kernel_size=5,
                  map_num_layers=8, embedding_dim=dim, embeddings_file=path, lstm_units=16,
                  lstm_layers=3, map_conv_impl=impl)
  tan_import.load_reference_weights(model, _reference_state(data))
  inputs = {"features": data["vis"],
            "feature_mask": np.ones(data["vis"].shape[:2], np.float32),
            "word_ids": (1 + np.arange(batch * length)).reshape(batch, length).astype(np.int32),
            "num_words": data["txt_mask"][..., 0].sum(axis=1).astype(np.int32)}
  return model, inputs


@pytest.mark.shared_data
@pytest.mark.parametrize("impl", tan.MAP_CONV_IMPLS)
@pytest.mark.parametrize("variant", ["conv", "pool"])
def test_forward_pass_matches_reference(variant, impl, tmp_path):
  data = _load(variant)
  model, inputs = _model_and_inputs(data, variant, tmp_path, impl)
  np.testing.assert_array_equal(inputs["num_words"], [7, 4, 1])
  outputs = {k: np.asarray(v) for k, v in model(inputs, return_intermediates=True).items()}
  mask = outputs["map_mask"]
  joint_prob = 1.0 / (1.0 + np.exp(-outputs["scores"].astype(np.float64))) * mask
  pairs = {
      "vis_h": outputs["clip_features"], "map_h": outputs["map_features"],
      "fused": outputs["fused"], "map_out": outputs["map_out"],
      "prediction": outputs["scores"], "joint_prob": joint_prob,
      "map_mask": np.broadcast_to(mask, outputs["scores"].shape),
  }
  for name, got in pairs.items():
    reference = data[name]
    if reference.ndim == 4 and reference.shape[1] == 1:
      reference = reference[:, 0]
    else:
      reference = reference.transpose(_TO_CHANNELS_LAST[reference.ndim])
    if name == "map_out" and impl == "sparse":
      # Only the valid cells reach the scores; the sparse layer computes no other.
      valid = mask.astype(bool)
      assert not got[:, ~valid].any()
      got, reference = got[:, valid], reference[:, valid]
    # atol: float32 rounding of sums whose terms are ~100x the result (map_out is ~1e-3 after
    # eight 1/c weights); relative error alone is meaningless for values crossing zero.
    np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-6 * np.abs(reference).max(),
                               err_msg=name)


@pytest.mark.shared_data
@pytest.mark.parametrize("impl", tan.MAP_CONV_IMPLS)
@pytest.mark.parametrize("variant", ["conv", "pool"])
def test_loss_matches_reference(variant, impl, tmp_path):
  data = _load(variant)
  model, inputs = _model_and_inputs(data, variant, tmp_path, impl)
  outputs = model(inputs)
  loss = losses.tan_loss(outputs["scores"], data["map_gt"][:, 0], outputs["map_mask"],
                         float(data["min_iou"]), float(data["max_iou"]))
  np.testing.assert_allclose(float(loss), float(data["loss"]), rtol=1e-5)


@pytest.mark.shared_data
def test_loss_gradients_equal_for_both_map_conv_impls(tmp_path):
  """The reference model's loss gradient on every weight is the same, sparse or dense."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  data = _load("conv")
  grads = {}
  for impl in tan.MAP_CONV_IMPLS:
    model, inputs = _model_and_inputs(data, "conv", tmp_path, impl)
    with tf.GradientTape() as tape:
      outputs = model(inputs, training=True)
      loss = losses.tan_loss(outputs["scores"], data["map_gt"][:, 0], outputs["map_mask"],
                             float(data["min_iou"]), float(data["max_iou"]))
    grads[impl] = {v.path.split("/", 1)[1]: np.asarray(g) for v, g in
                   zip(model.trainable_variables, tape.gradient(loss, model.trainable_variables))}
  assert grads["sparse"].keys() == grads["dense"].keys()
  for path, expected in grads["dense"].items():
    assert np.abs(expected).max() > 0, path
    np.testing.assert_allclose(grads["sparse"][path], expected, rtol=1e-5,
                               atol=1e-5 * np.abs(expected).max(), err_msg=path)


@pytest.mark.shared_data
def test_weight_map_covers_every_reference_parameter(tmp_path):
  for variant in ("conv", "pool"):
    data = _load(variant)
    model, _ = _model_and_inputs(data, variant, tmp_path)
    assert set(tan_import.reference_weight_map(model)) == set(_reference_state(data))
    # Every trainable Keras variable is set by exactly one reference parameter.
    targets = [v.path for v, _ in tan_import.reference_weight_map(model).values()]
    assert sorted(targets) == sorted(v.path for v in model.trainable_variables)


def _small_model():
  return tan.TAN(feature_dim=3, num_clips=64, vocab_size=5, hidden_size=4, map_type="conv",
                 num_scale_layers=[16, 8, 8], map_kernel_size=3, map_num_layers=2,
                 embedding_dim=2, lstm_units=4, lstm_layers=2)


def _reference_shape(name, keras_shape):
  """The PyTorch layout of a parameter, written out independently of the importer."""
  if len(keras_shape) == 1:
    return keras_shape
  if name.startswith("frame_layer"):  # Conv1d(in, out, 1)
    return (keras_shape[1], keras_shape[0], 1)
  if name.startswith(("fusion_layer.vis_conv", "pred_layer")):  # Conv2d(in, out, 1)
    return (keras_shape[1], keras_shape[0], 1, 1)
  if len(keras_shape) == 2:  # Linear, LSTM: (out, in)
    return keras_shape[::-1]
  if len(keras_shape) == 3:  # Conv1d: (out, in, k)
    return (keras_shape[2], keras_shape[1], keras_shape[0])
  return (keras_shape[3], keras_shape[2], keras_shape[0], keras_shape[1])  # Conv2d


def _state_of(model):
  """Random values for every reference parameter, in the reference layouts."""
  rng = np.random.default_rng(0)
  return {name: rng.normal(size=_reference_shape(name, tuple(variable.shape))).astype(np.float32)
          for name, (variable, _) in tan_import.reference_weight_map(model).items()}


def test_multiscale_names_and_layouts():
  model = _small_model()
  state = _state_of(model)
  assert "prop_layer.layers.2.7.weight" in state
  tan_import.load_reference_weights(model, state)
  conv = model.temporal_map.convs[16]  # scale 1, layer 0: Conv1d(H, H, 3, stride 2)
  np.testing.assert_array_equal(conv.kernel[:, 1, 2], state["prop_layer.layers.1.0.weight"][2, 1])
  cell = model.sentence_encoder.lstms[1].cell
  np.testing.assert_array_equal(cell.recurrent_bias,
                                state["fusion_layer.textual_encoder.bias_hh_l1"])
  np.testing.assert_array_equal(model.head.kernel[:, 0], state["pred_layer.weight"][0, :, 0, 0])


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("map_layer.convs.1.bias"), "missing.*map_layer.convs.1.bias"),
    (lambda s: s.update({"extra.weight": np.zeros(1)}), "unexpected.*extra.weight"),
    (lambda s: s.update({"map_layer.convs.0.weight": np.zeros((4, 4, 5, 5))}),
     "map_layer.convs.0.weight"),
    (lambda s: s.update({"frame_layer.vis_conv.weight": np.zeros((4, 3, 2))}),
     "frame_layer.vis_conv.weight"),
])
def test_mismatches_name_the_parameter(change, message):
  model = _small_model()
  state = _state_of(model)
  change(state)
  before = [np.array(v) for v in model.weights]
  with pytest.raises(ValueError, match=message):
    tan_import.load_reference_weights(model, state)
  for old, variable in zip(before, model.weights):  # nothing assigned
    np.testing.assert_array_equal(old, variable)


def test_torch_checkpoint_without_torch_names_the_extra(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
  (tmp_path / "model.pkl").write_bytes(b"")
  with pytest.raises(ImportError, match=r"pip install 'sscs_tf\[torch\]'"):
    tan_import.load_torch_checkpoint(str(tmp_path / "model.pkl"))
  with pytest.raises(FileNotFoundError, match="absent.pkl not found"):
    tan_import.load_torch_checkpoint(str(tmp_path / "absent.pkl"))


def test_torch_checkpoint_is_unwrapped(tmp_path):
  torch = pytest.importorskip("torch")
  model = _small_model()
  state = _state_of(model)
  path = str(tmp_path / "best.pkl")
  torch.save({"model": {f"module.{k}": torch.from_numpy(v) for k, v in state.items()}}, path)
  loaded = tan_import.load_torch_checkpoint(path)
  assert sorted(loaded) == sorted(state)
  tan_import.load_reference_weights(model, loaded)


class _Payload:
  """A pickle with a foreign global: unpickling it calls `_record_call` (in a real attack,
  os.system or anything else)."""

  def __reduce__(self):
    return (_record_call, ("ran",))


CALLS = []


def _record_call(value):
  CALLS.append(value)
  return {}


def test_a_pickle_with_a_foreign_global_is_refused(tmp_path):  # case_import_malicious_pickle
  torch = pytest.importorskip("torch")
  path = str(tmp_path / "evil.pkl")
  torch.save({"model": _Payload()}, path)
  CALLS.clear()
  with pytest.raises(ValueError, match=r"evil.pkl: refused: .*not a plain state dict"):
    tan_import.load_torch_checkpoint(path)
  assert CALLS == []  # the payload never ran
