"""extract_videos and its HDF5 store, with a tiny stand-in network (the real one's numbers are
tested in test_video_features.py)."""

import os

import h5py
import numpy as np
import pytest

from data_prep.features import FeatureSource
from sscs_tf.features import extract, store, video
from tests.features import tiny_videos
from tests.features.standin_i3d import build_standin

SHA = "ab" * 32


@pytest.fixture(scope="module")
def standin():
  return build_standin()


def _extractor(model, preset="stack64", **kwargs):
  return extract.Extractor(model, video.PRESETS[preset], "standin", SHA, **kwargs)


def _videos(folder, counts=(64, 130)):
  """Videos of 40 ms frames; `counts` frames each (64 -> 1 stack, 130 -> 2)."""
  os.makedirs(folder, exist_ok=True)
  return [tiny_videos.write_video(os.path.join(folder, f"clip{i}.mkv"),
                                  [40 * j for j in range(n)]) for i, n in enumerate(counts)]


def test_row_times_cut_each_stack_evenly():
  assert extract.row_times(64, 64, 1, 25) == [(2.56, 5.12)]
  assert extract.row_times(24, 24, 2, 24) == [(1.0, 1.5), (1.5, 2.0)]


def test_stack64_and_vslnet_rows_and_times(standin, tmp_path):
  (path,) = _videos(str(tmp_path), [130])  # 130 frames at 25 fps, last at 5.16 s
  result = _extractor(standin, batch_size=2).extract(path)
  assert result.features.shape == (2, 1024) and result.features.dtype == np.float32
  np.testing.assert_allclose(result.times, [[0, 2.56], [2.56, 5.12]])
  one_by_one = _extractor(standin, batch_size=1).extract(path)
  np.testing.assert_allclose(one_by_one.features, result.features, rtol=1e-5, atol=1e-6)
  # vslnet: 24 fps ticks 0 .. round(24 x 5.16) = 124 -> 125 frames, windows
  # [0,24) [24,48) [48,72) [72,96) [96,120), and the last, [120, 124), moved back to [100,124).
  vsl = _extractor(standin, "vslnet").extract(path)
  assert vsl.features.shape == (12, 1024)
  np.testing.assert_allclose(vsl.times[:2], [[0, 0.5], [0.5, 1.0]])
  np.testing.assert_allclose(vsl.times[-2:], [[100 / 24, 112 / 24], [112 / 24, 124 / 24]])


def test_output_is_read_by_the_converters_with_the_extractor_attributes(standin, tmp_path):
  paths = _videos(str(tmp_path / "videos"))
  output = str(tmp_path / "features.h5")
  summary = extract.extract_videos(paths, output, _extractor(standin), log=lambda m: None)
  assert (summary.written, summary.skipped, summary.failed) == (2, 0, [])
  with FeatureSource(output) as source:
    assert source.load("clip0").shape == (1, 1024)
    assert source.load("clip1").shape == (2, 1024)
  attrs = store.read_attrs(output)
  assert attrs["preset"] == "stack64" and attrs["weights_sha256"] == SHA
  assert attrs["fps"] == 25 and attrs["weights_kind"] == "standin"
  with h5py.File(output, "r") as f:
    np.testing.assert_allclose(f["clip1"].attrs["row_times"], [[0, 2.56], [2.56, 5.12]])
    assert f["clip1"].attrs["source"] == "clip1.mkv"
    assert f["clip1"].attrs["duration"] == pytest.approx(5.2, abs=0.05)
  assert not os.path.exists(output + ".parts")


def test_failures_are_listed_and_the_others_written(standin, tmp_path):
  folder = str(tmp_path / "videos")
  good = _videos(folder, [64])
  bad = [tiny_videos.write_audio_only(os.path.join(folder, "audio.wav")),
         tiny_videos.write_video(os.path.join(folder, "short.mkv"), [0, 40, 80])]
  with open(os.path.join(folder, "corrupt.mp4"), "wb") as f:
    f.write(b"\0" * 1000)
  paths = extract.find_videos(folder)
  assert sorted(map(os.path.basename, paths)) == ["clip0.mkv", "corrupt.mp4", "short.mkv"]
  paths += bad[:1]
  output = str(tmp_path / "f.h5")
  summary = extract.extract_videos(paths, output, _extractor(standin), log=lambda m: None)
  assert summary.written == 1
  reasons = {os.path.basename(p): r for p, r in summary.failed}
  assert "not a readable video" in reasons["corrupt.mp4"]
  assert "too few frames" in reasons["short.mkv"]
  assert "no video stream" in reasons["audio.wav"]
  with h5py.File(output, "r") as f:
    assert list(f) == ["clip0"]
  assert good


def test_rerun_skips_written_videos_and_recovers_a_killed_run(standin, tmp_path):
  paths = _videos(str(tmp_path / "videos"), [64, 64, 64])
  output = str(tmp_path / "f.h5")
  extractor = _extractor(standin)
  extract.extract_videos(paths[:1], output, extractor, log=lambda m: None)
  with h5py.File(output, "r") as f:
    first = f["clip0"][()]
  # A run killed after clip1 was committed to the parts folder, before the merge.
  feature_store = store.FeatureStore(output, extractor.attrs)
  result = extractor.extract(paths[1])
  feature_store.add("clip1", result.features, result.times, result.duration, "clip1.mkv")
  with open(os.path.join(output + ".parts", ".clip2.npz.killed.tmp"), "wb") as f:
    f.write(b"half")  # a write the kill interrupted
  logs = []
  summary = extract.extract_videos(paths, output, extractor, log=logs.append)
  assert (summary.written, summary.skipped) == (1, 2)
  with h5py.File(output, "r") as f:
    assert sorted(f) == ["clip0", "clip1", "clip2"]
    np.testing.assert_array_equal(f["clip0"][()], first)
  assert not os.path.exists(output + ".parts")
  assert any("2 of 3 videos already extracted" in m for m in logs)
  assert any("ETA" in m and "s of video per s" in m for m in logs)


def test_features_of_another_kind_are_not_mixed(standin, tmp_path):
  paths = _videos(str(tmp_path / "videos"), [64])
  output = str(tmp_path / "f.h5")
  extract.extract_videos(paths, output, _extractor(standin), log=lambda m: None)
  other = extract.Extractor(standin, video.PRESETS["vslnet"], "standin", SHA)
  with pytest.raises(store.StoreError, match="preset 'stack64' \\(wanted 'vslnet'\\)"):
    extract.extract_videos(paths, output, other, log=lambda m: None)


def test_same_video_id_twice_is_refused(tmp_path):
  a = tiny_videos.write_video(str(tmp_path / "x.mkv"), [0])
  os.makedirs(tmp_path / "sub")
  b = tiny_videos.write_video(str(tmp_path / "sub" / "x.mkv"), [0])
  with pytest.raises(ValueError, match="same video id 'x'"):
    extract.check_ids([a, b])


def test_find_videos_takes_a_file_a_folder_or_a_glob(tmp_path):
  paths = _videos(str(tmp_path), [1, 1])
  (tmp_path / "notes.txt").write_text("not a video")
  assert extract.find_videos(paths[0]) == [paths[0]]
  assert extract.find_videos(str(tmp_path)) == sorted(paths)
  assert extract.find_videos(str(tmp_path / "clip*.mkv")) == sorted(paths)
  with pytest.raises(ValueError, match="no file matches"):
    extract.find_videos(str(tmp_path / "nothing*"))


RECORDED = {"extractor": "i3d_rgb", "preset": "stack64", "weights_kind": "rgb_scratch",
            "weights_sha256": "855578ebcfd316458a86820b579a43a9d35f0c02978988dff747bb495ce00af8"}


@pytest.mark.parametrize("recorded,kwargs,message", [
    (None, {}, "does not record which extractor"),
    (dict(RECORDED, extractor="c3d"), {}, "trained on 'c3d' features"),
    (RECORDED, {"preset": "vslnet"}, "preset 'stack64', not 'vslnet'"),
    (dict(RECORDED, weights_kind="rgb_imagenet", weights_sha256="cd" * 32), {},
     "rgb_imagenet weights .*pass --weights"),
    (dict(RECORDED, weights_kind="custom", weights_sha256="cd" * 32),
     {"weights": "rgb_scratch"}, "rgb_scratch weights .* another kind"),
])
def test_features_of_another_kind_are_refused_for_a_model(recorded, kwargs, message):
  with pytest.raises(extract.KindError, match=message):
    extract.extractor_for(recorded, **kwargs)


def test_command_ends_a_deliberate_error_with_one_line(tmp_path):
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  from tests.testing import REPO_ROOT  # pylint: disable=import-outside-toplevel
  result = subprocess.run(
      [sys.executable, "-m", "sscs_tf.cli.extract", f"--videos={tmp_path / 'none*.mp4'}",
       f"--output={tmp_path / 'f.h5'}"], capture_output=True, text=True, timeout=300,
      cwd=REPO_ROOT, env=dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2"))
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      f"sscs-extract: --videos {tmp_path / 'none*.mp4'}: no such file or folder, and no file "
      "matches it")
  assert "Traceback" not in result.stderr and not os.path.exists(tmp_path / "f.h5")


@pytest.mark.parametrize("preset, batch_size, message", [
    ("stack64", 0, "batch_size must be >= 1"), ("stack32", 1, "unknown preset 'stack32'")])
def test_bad_options_fail_before_the_network_is_built(monkeypatch, preset, batch_size,
                                                      message):
  def never(*args, **kwargs):
    raise AssertionError("the network was built for options that cannot run")

  monkeypatch.setattr(extract.i3d, "build_i3d", never)
  with pytest.raises(ValueError, match=message):
    extract.load_extractor(preset, "rgb_scratch", batch_size=batch_size)
