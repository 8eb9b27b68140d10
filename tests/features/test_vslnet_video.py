"""A real video through VSLNet: sscs-extract --preset vslnet -> the ActivityNet Captions
converter -> VSLNet training -> export -> sscs-ground --video."""

import os
import re

import h5py
import pytest

from tests.features.test_video_end_to_end import VIDEO_ID, _run, train_and_export_on_val
from tests.testing import shared_path
from tests.testing_train import tiny_vslnet_config


@pytest.mark.slow
def test_real_video_through_vslnet(tmp_path, rgb_scratch_weights):
  video = shared_path("i3d", f"{VIDEO_ID}.mp4")
  cache_dir = os.path.dirname(rgb_scratch_weights)
  videos = tmp_path / "videos"
  videos.mkdir()
  os.symlink(video, videos / f"{VIDEO_ID}.mp4")
  features = str(tmp_path / "features.h5")
  extracted = _run("sscs_tf.cli.extract", f"--videos={videos}", f"--output={features}",
                   "--preset=vslnet", "--precision=mixed_bfloat16", cache_dir=cache_dir)
  assert extracted.returncode == 0, extracted.stderr[-3000:]
  with h5py.File(features, "r") as f:
    rows, width = f[VIDEO_ID].shape
    assert f.attrs["preset"] == "vslnet" and width == 1024
  # 24 fps windows of 24 frames over 18.16 s, two rows per window (docs/video.md).
  assert 30 <= rows <= 40, rows

  data = str(tmp_path / "data")
  converted = _run("data_prep.activitynet",
                   f"--annotation_dir={shared_path('annotations', 'activitynet_captions')}",
                   f"--features={features}", f"--output_dir={data}",
                   "--allow_missing_features", "--num_shards=1")
  assert converted.returncode == 0, converted.stderr[-3000:]

  train_and_export_on_val(tiny_vslnet_config(data, "sscs=off", num_train_steps=2), tmp_path)

  sentence = "She lifts a barbell to her chest."  # val_1, [2.91, 6.54] s
  grounded = _run("sscs_tf.cli.ground", f"--model={tmp_path / 'model'}", f"--video={video}",
                  f"--query={sentence}", "--precision=mixed_bfloat16", cache_dir=cache_dir)
  assert grounded.returncode == 0, grounded.stderr[-3000:]
  print(grounded.stdout)
  lines = grounded.stdout.splitlines()
  assert lines[0] == sentence
  segments = [tuple(map(float, re.findall(r"(-?[\d.]+) s", line))) for line in lines[1:]]
  segments = [s for s in segments if len(s) == 2]
  # The top 5 start-end pairs, inside the video.
  assert len(segments) == 5
  assert all(0 <= start < end <= 18.16 + 1e-3 for start, end in segments)
