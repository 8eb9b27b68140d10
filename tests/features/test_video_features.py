"""Video file -> features with the real rgb_scratch weights, against the reference pipeline's
features of the same ActivityNet video (docs/video.md gives the recipe and the figures)."""

import numpy as np
import pytest

from sscs_tf.features import extract
from tests.testing import shared_path


@pytest.fixture(name="rgb_scratch")
def rgb_scratch_fixture(rgb_scratch_weights):
  return rgb_scratch_weights


def _cosine(a, b):
  return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.slow
def test_features_match_the_reference_pipeline_in_float32_and_bfloat16(rgb_scratch):
  path = shared_path("i3d", "v_GGSY1Qvo990.mp4")
  golden = np.load(shared_path("i3d", "v_GGSY1Qvo990_i3d_rgb_scratch.npy"))
  golden_times = np.load(shared_path("i3d", "v_GGSY1Qvo990_i3d_rgb_scratch_times.npy"))
  float32 = extract.load_extractor("stack64", rgb_scratch, "float32", batch_size=2)
  assert float32.attrs["weights_kind"] == "rgb_scratch"
  result = float32.extract(path)
  assert result.features.shape == (7, 1024)
  np.testing.assert_array_equal(result.times, golden_times)
  # The recipe followed exactly (Pillow bilinear): cosine >= 0.99999, relative L2 <= 1e-3.
  assert _cosine(result.features, golden).min() >= 0.99999
  relative = np.linalg.norm(result.features - golden, axis=1) / np.linalg.norm(golden, axis=1)
  assert relative.max() <= 1e-3
  assert result.duration == pytest.approx(18.158, abs=1e-3)
  bfloat16 = extract.load_extractor("stack64", rgb_scratch, "mixed_bfloat16", batch_size=2)
  assert bfloat16.attrs["precision"] == "mixed_bfloat16"
  low = bfloat16.extract(path)
  np.testing.assert_array_equal(low.times, golden_times)
  assert _cosine(low.features, result.features).min() >= 0.99


@pytest.mark.slow
def test_vslnet_rows_are_the_pooled_map_positions(rgb_scratch, tmp_path):
  """Each 24-frame window gives the two time positions of the pooled Mixed_5c map; their mean
  is the network's own clip feature of the same frames."""
  from sscs_tf.features import video  # pylint: disable=import-outside-toplevel
  from tests.features import tiny_videos  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, [50, 240, 320, 3], dtype=np.uint8)
  path = tiny_videos.write_video(str(tmp_path / "clip.mkv"), [round(1000 * i / 24)
                                                               for i in range(50)], 320, 240,
                                 pattern=lambda i: images[i])
  extractor = extract.load_extractor("vslnet", rgb_scratch, "float32")
  result = extractor.extract(path)
  # 50 frames: windows [0, 24), [24, 48) and, for start 48, [25, 49) (VSLNet's loop).
  assert result.features.shape == (6, 1024)
  np.testing.assert_allclose(result.times, [[0, 0.5], [0.5, 1], [1, 1.5], [1.5, 2],
                                            [25 / 24, 37 / 24], [37 / 24, 49 / 24]])
  stacks = list(video.stacks(path, video.PRESETS["vslnet"]))
  model = extractor.model
  for w, stack in enumerate(stacks):
    feature = model(stack.frames[None], training=False)["feature"].numpy()[0]
    np.testing.assert_allclose(result.features[2 * w:2 * w + 2].mean(axis=0), feature,
                               rtol=1e-4, atol=1e-5)
  assert _cosine(result.features[:1], result.features[1:2])[0] < 0.9999  # two different rows
