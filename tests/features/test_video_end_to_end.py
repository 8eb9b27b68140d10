"""A real video through every step: sscs-extract -> the ActivityNet Captions converter ->
training -> export -> sscs-ground --video."""

import json
import os
import re
import subprocess
import sys

import h5py
import pytest

from sscs_tf.serve import export_lib
from sscs_tf.train import train_lib
from sscs_tf.features import i3d_weights
from tests.features.tiny_videos import write_audio_only
from tests.testing import REPO_ROOT, shared_path
from tests.testing_train import tiny_config

VIDEO_ID = "v_GGSY1Qvo990"  # in val_1 (3 sentences) and val_2 of ActivityNet Captions


def _run(module, *args, cache_dir=""):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO_ROOT)
  if cache_dir:  # where the weights fixture put them, so the tools do not fetch them again
    env["SSCS_CACHE_DIR"] = cache_dir
  return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                        timeout=900, cwd=REPO_ROOT, env=env)


def train_and_export_on_val(config, tmp_path):
  """Two steps on the video's val queries (I3D rows, 1024-d), exported to tmp_path/model."""
  with config.unlocked():
    config.model.feature_dim = 1024
    config.data.train_split, config.data.eval_split = "val", "test"
    config.data.batch_size = 3
  train_lib.train_and_evaluate(config, str(tmp_path / "run"))
  export_lib.export_run(str(tmp_path / "run"), str(tmp_path / "model"))


@pytest.mark.slow
def test_real_video_from_file_to_grounded_sentence(tmp_path, rgb_scratch_weights):
  video = shared_path("i3d", f"{VIDEO_ID}.mp4")
  annotations = shared_path("annotations", "activitynet_captions")
  cache_dir = os.path.dirname(rgb_scratch_weights)
  videos = tmp_path / "videos"
  videos.mkdir()
  os.symlink(video, videos / f"{VIDEO_ID}.mp4")
  (videos / "broken.mp4").write_bytes(b"\0" * 4096)
  write_audio_only(str(videos / "speech.wav"))  # not a video extension: not listed

  features = str(tmp_path / "features.h5")
  extracted = _run("sscs_tf.cli.extract", f"--videos={videos}", f"--output={features}",
                   "--precision=mixed_bfloat16", "--batch_size=7", cache_dir=cache_dir)
  assert extracted.returncode == 1, extracted.stderr[-3000:]  # one video failed
  assert "failed\t" in extracted.stdout and "broken.mp4" in extracted.stdout
  summary = extracted.stdout.strip().splitlines()[-1]
  assert summary.startswith("sscs-extract: 1 written, 0 already there, 1 failed, of 2 videos")
  with h5py.File(features, "r") as f:
    assert list(f) == [VIDEO_ID] and f[VIDEO_ID].shape == (7, 1024)
    assert f.attrs["weights_kind"] == "rgb_scratch" and f.attrs["preset"] == "stack64"

  data = str(tmp_path / "data")
  converted = _run("data_prep.activitynet", f"--annotation_dir={annotations}",
                   f"--features={features}", f"--output_dir={data}",
                   "--allow_missing_features", "--num_shards=1")
  assert converted.returncode == 0, converted.stderr[-3000:]
  meta = json.load(open(os.path.join(data, "meta.json")))
  assert meta["extractor"]["weights_sha256"] == i3d_weights.RGB_SCRATCH_SHA256
  assert meta["splits"]["val"]["queries"] == 3 and meta["splits"]["val"]["videos"] == 1
  assert meta["splits"]["train"]["queries"] == 0
  assert meta["splits"]["train"]["skipped"]["no features"] > 30000
  skipped = open(os.path.join(data, "skipped.tsv")).read()
  assert skipped.count("\tno features\t") == sum(
      s["skipped"].get("no features", 0) for s in meta["splits"].values())

  train_and_export_on_val(tiny_config(data, "sscs=off", num_train_steps=2), tmp_path)

  sentence = "She lifts a barbell to her chest."  # val_1, [2.91, 6.54] s
  grounded = _run("sscs_tf.cli.ground", f"--model={tmp_path / 'model'}", f"--video={video}",
                  f"--query={sentence}", "--precision=mixed_bfloat16",
                  f"--html={tmp_path / 'page' / 'grounding.html'}", cache_dir=cache_dir)
  assert grounded.returncode == 0, grounded.stderr[-3000:]
  print(grounded.stdout)
  lines = grounded.stdout.splitlines()
  assert lines[0] == sentence
  assert lines[-1] == f"Report written to {tmp_path / 'page' / 'grounding.html'}"
  page = (tmp_path / "page" / "grounding.html").read_text(encoding="utf-8")
  # The page plays the video from its own folder: linked by a path relative to the page.
  relative = os.path.relpath(video, tmp_path / "page")
  assert f'<video id="video" controls preload="metadata" src="{relative}">' in page
  segments = [tuple(map(float, re.findall(r"(-?[\d.]+) s", line))) for line in lines[1:-1]]
  assert segments and all(len(s) == 2 for s in segments)
  assert all(0 <= start < end <= 18.16 + 1e-3 for start, end in segments)
