"""I3D model structure with random weights: TF "SAME" padding, batch norm without scale,
the pooled feature and logits against NumPy, output shapes and dtypes, configs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sscs_tf.features import i3d


@pytest.fixture(scope="module")
def model():
  return i3d.build_i3d(end_points=("Conv3d_1a_7x7", "Mixed_3c", "Mixed_5c"))


def same_padding(size, kernel, stride):
  """TensorFlow's SAME: (before, after), the odd pixel after."""
  total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def test_same_padding_puts_the_extra_pixel_at_the_end():
  assert same_padding(16, 7, 2) == (2, 3)  # Conv3d_1a_7x7 on 16 frames (DeepMind's case)
  assert same_padding(224, 7, 2) == (2, 3)


def test_unit3d_is_tf_same_conv_then_offset_only_batch_norm_then_relu():
  rng = np.random.default_rng(0)
  frames = rng.normal(size=(1, 16, 10, 10, 2)).astype(np.float32)
  unit = i3d.Unit3D(4, (7, 7, 7), (2, 2, 2))
  unit.build(frames.shape)
  kernel = rng.normal(size=(7, 7, 7, 2, 4)).astype(np.float32)
  mean, variance, beta = rng.normal(size=4), rng.uniform(0.1, 2, size=4), rng.normal(size=4)
  unit.conv_3d.kernel.assign(kernel)
  unit.batch_norm.moving_mean.assign(mean)
  unit.batch_norm.moving_variance.assign(variance)
  unit.batch_norm.beta.assign(beta)
  assert unit.batch_norm.gamma is None
  # 16 -> total padding 5 in time, 10 -> 5 in rows and cols: 2 before, 3 after.
  padded = np.pad(frames, [(0, 0), same_padding(16, 7, 2), same_padding(10, 7, 2),
                           same_padding(10, 7, 2), (0, 0)])
  conv = tf.nn.conv3d(padded, kernel, strides=[1, 2, 2, 2, 1], padding="VALID").numpy()
  expected = np.maximum((conv - mean) / np.sqrt(variance + 1e-3) + beta, 0)
  np.testing.assert_allclose(unit(frames).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_max_pools_pad_at_the_end_and_ignore_the_padding(model):
  rng = np.random.default_rng(1)
  # All negative, so a zero-padded pool would show up as 0.
  net = -rng.uniform(1, 2, size=(1, 2, 4, 4, 3)).astype(np.float32)
  pooled = model.get_layer("MaxPool3d_2a_3x3")(net).numpy()  # (1, 3, 3) window, stride (1, 2, 2)
  padded = np.pad(net, [(0, 0), (0, 0), same_padding(4, 3, 2), same_padding(4, 3, 2), (0, 0)],
                  constant_values=-np.inf)
  expected = np.stack([np.stack([padded[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max(axis=(2, 3))
                                 for j in range(2)], axis=2) for i in range(2)], axis=2)
  np.testing.assert_array_equal(pooled, expected)


def test_clip_head_feature_and_logits_equal_numpy():
  rng = np.random.default_rng(2)
  mixed_5c = rng.normal(size=(2, 3, 7, 7, 1024)).astype(np.float32)
  head = i3d.ClipHead(5)
  head.build(mixed_5c.shape)
  feature, logits = head(mixed_5c)
  # (2, 7, 7) VALID window, stride 1: time positions (0, 1) and (1, 2), all 7 x 7.
  pooled = np.stack([mixed_5c[:, t:t + 2].mean(axis=(1, 2, 3)) for t in range(2)], axis=1)
  kernel = head.classifier.kernel.numpy().reshape(1024, 5)
  bias = head.classifier.bias.numpy()
  np.testing.assert_allclose(feature.numpy(), pooled.mean(axis=1), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(logits.numpy(), (pooled @ kernel + bias).mean(axis=1),
                             rtol=1e-5, atol=1e-5)


def test_clip_head_refuses_a_single_time_position():
  head = i3d.ClipHead(5)
  head.build((1, 1, 7, 7, 1024))
  with pytest.raises(ValueError, match="at least 9 frames"):
    head(np.zeros((1, 1, 7, 7, 1024), np.float32))


def test_shapes_dtypes_and_variable_count(model):
  frames = np.random.default_rng(3).uniform(-1, 1, (1, 9, 224, 224, 3)).astype(np.float32)
  outputs = model(frames)
  shapes = {name: tuple(value.shape) for name, value in outputs.items()}
  assert shapes == {"feature": (1, 1024), "logits": (1, 400),
                    "Conv3d_1a_7x7": (1, 5, 112, 112, 64), "Mixed_3c": (1, 5, 28, 28, 480),
                    "Mixed_5c": (1, 2, 7, 7, 1024)}
  assert all(value.dtype == tf.float32 for value in outputs.values())
  variables = i3d.model_variables(model)
  # DeepMind's checkpoints hold 230 tensors: 57 units x 4 and the classifier's kernel and bias.
  assert len(variables) == 230 == len(model.weights)
  assert not model.trainable_weights


def test_bfloat16_model_computes_in_bfloat16_and_returns_float32():
  model = i3d.build_i3d("bfloat16")
  unit = model.get_layer("Mixed_4b").units["Branch_1/Conv3d_0b_3x3"]
  assert unit.conv_3d.compute_dtype == "bfloat16"
  assert unit.conv_3d.kernel.dtype == "float32"
  assert model.get_layer("Logits").compute_dtype == "float32"
  assert model.output["feature"].dtype == "float32"
  assert model.output["logits"].dtype == "float32"


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match="float16"):
    i3d.build_i3d("float16")
  with pytest.raises(ValueError, match="Mixed_6a"):
    i3d.build_i3d(end_points=("Mixed_6a",))


@pytest.mark.parametrize("layer", [i3d.Unit3D(8, (3, 3, 3), (1, 2, 2), name="u"),
                                   i3d.InceptionBlock((1, 2, 3, 4, 5, 6), name="m"),
                                   i3d.ClipHead(7, name="Logits")])
def test_config_round_trip(layer):
  config = layer.get_config()
  restored = type(layer).from_config(config)
  assert restored.get_config() == config
  assert keras.saving.get_registered_object(
      keras.saving.get_registered_name(type(layer))) is type(layer)
