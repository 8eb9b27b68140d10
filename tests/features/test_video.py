"""The streaming video reader: timestamps, frame selection, resize, crop, stacks, errors."""

import fractions

import av
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from sscs_tf.features import video
from tests.features import tiny_videos
from tests.testing import shared_path

STACK64, VSLNET = video.PRESETS["stack64"], video.PRESETS["vslnet"]


def _nearest_reference(times, fps, count):
  """Independent rule: argmin over i of |t_i - k / fps| in exact rationals; min() returns the
  first of equal keys, i.e. the earlier frame on a tie."""
  return [min(range(len(times)), key=lambda i: abs(times[i] - fractions.Fraction(k, fps)))
          for k in range(count)]


def _selected(path, fps, rule="nearest"):
  return [source for _, source, _ in video.resampled_frames(video.decoded_frames(path), fps,
                                                             rule)]


def test_frame_selection_reproduces_the_golden_recipe():
  path = shared_path("i3d", "v_GGSY1Qvo990.mp4")
  golden = np.load(shared_path("i3d", "v_GGSY1Qvo990_i3d_rgb_scratch_extras.npz"))
  np.testing.assert_array_equal(_selected(path, 25), golden["src_frame_index"])


def test_crops_equal_the_golden_crops():
  golden = np.load(shared_path("i3d", "v_GGSY1Qvo990_i3d_rgb_scratch_extras.npz"))
  path = shared_path("i3d", "v_GGSY1Qvo990.mp4")
  wanted = dict(zip(golden["sample_crop_frame_index"].tolist(), golden["sample_crops"]))
  found = {}
  for k, _, frame in video.resampled_frames(video.decoded_frames(path), 25):
    if k in wanted:
      found[k] = video.crop_uint8(frame, STACK64)
  assert sorted(found) == sorted(wanted)
  for k, crop in found.items():  # Pillow BILINEAR as in the recipe: identical pixels
    np.testing.assert_array_equal(crop, wanted[k], err_msg=f"25 fps frame {k}")
  stack = next(video.stacks(path, STACK64))
  np.testing.assert_array_equal(stack.frames[0], (2.0 * wanted[0].astype(np.float32)) / 255 - 1)


def test_variable_frame_rate_picks_the_nearest_frame_ties_to_the_earlier(tmp_path):
  # 20 ms and 60 ms are equally near to 40 ms: the earlier (20 ms) must be used.
  times_ms = [0, 20, 60, 61, 100, 180, 200, 330, 331, 480]
  path = tiny_videos.write_video(str(tmp_path / "vfr.mkv"), times_ms)
  decoded = [t for t, _ in video.decoded_frames(path)]
  assert decoded == [fractions.Fraction(t, 1000) for t in times_ms]
  selected = _selected(path, 25)
  assert len(selected) == 13  # k = 0 .. floor(25 x 0.48)
  assert selected == _nearest_reference(decoded, 25, 13)
  assert selected[1] == 1
  # And the pixels come from those frames.
  values = [int(f[0, 0, 0]) for f in _pixels(path)]
  assert values == [tiny_videos.frame_value(i) for i in selected]


def _pixels(path):
  return [frame.to_ndarray(format="rgb24")
          for _, _, frame in video.resampled_frames(video.decoded_frames(path), 25)]


def test_timestamps_are_relative_to_the_first_frame(tmp_path):
  path = tiny_videos.write_video(str(tmp_path / "late.mkv"), [500, 540, 580])
  assert [t for t, _ in video.decoded_frames(path)] == [0, fractions.Fraction(1, 25),
                                                         fractions.Fraction(2, 25)]


@pytest.mark.parametrize("name", ["v_GGSY1Qvo990.mp4", "v_ZNVhz7ctTq0.mp4"])
def test_vslnet_frames_are_those_of_ffmpeg_fps_filter(name):
  path = shared_path("i3d", name)
  assert _selected(path, 24, "ffmpeg_fps") == _ffmpeg_fps_filter(path, 24)


def _ffmpeg_fps_filter(path, fps):
  """Source indices of the frames ffmpeg's `fps` filter outputs (run through PyAV)."""
  with av.open(path) as container:
    stream = container.streams.video[0]
    graph = av.filter.Graph()
    source = graph.add_buffer(template=stream)
    fps_filter, sink = graph.add("fps", str(fps)), graph.add("buffersink")
    source.link_to(fps_filter)
    fps_filter.link_to(sink)
    graph.configure()
    index_of_pts, out = {}, []
    for i, frame in enumerate(container.decode(stream)):
      index_of_pts[frame.pts] = i
      graph.push(frame)
      out += _drain(graph)
    graph.push(None)
    out += _drain(graph)
  # The filter gives each output its own pts; the source frame is found by its pixels.
  with av.open(path) as container:
    first_index = {}
    for i, frame in enumerate(container.decode(video=0)):
      first_index.setdefault(bytes(frame.planes[0]), i)
  return [first_index[bytes(frame.planes[0])] for frame in out]


def _drain(graph):
  frames = []
  while True:
    try:
      frames.append(graph.pull())
    except (av.error.BlockingIOError, av.error.EOFError):
      return frames


@pytest.mark.parametrize("width,height,size", [
    (320, 240, (341, 256)),  # the golden video: 341.33 -> 341
    (251, 187, (344, 256)),  # odd sizes: 343.62 -> 344
    (180, 300, (256, 427)),  # portrait: 426.67 -> 427
    (512, 384, (341, 256)),  # downscaled: 341.33 -> 341
    (2, 3, (256, 384)),      # 384 exactly
])
def test_stack64_resize_keeps_aspect_round_half_up(width, height, size):
  assert video.resized_size(width, height, STACK64) == size


def test_vslnet_resizes_only_short_sides_under_226():
  assert video.resized_size(480, 270, VSLNET) == (480, 270)
  assert video.resized_size(320, 180, VSLNET) == (402, 226)  # 401.78
  assert video.resized_size(226, 400, VSLNET) == (226, 400)
  assert video.crop_offset(270, VSLNET) == 23  # round(23.0)
  assert video.crop_offset(225, VSLNET) == 0  # round(0.5) = 0, half to even
  assert video.crop_offset(227, VSLNET) == 2  # round(1.5) = 2
  assert video.crop_offset(227, STACK64) == 1


def test_odd_sized_frames_are_resized_with_pillow_bilinear_and_centre_cropped(tmp_path):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, [187, 251, 3], dtype=np.uint8)
  path = tiny_videos.write_video(str(tmp_path / "odd.mkv"), [0], 251, 187,
                                 pattern=lambda i: image)
  _, frame = next(video.decoded_frames(path))
  crop = video.crop_uint8(frame, STACK64)
  decoded = frame.to_ndarray(format="rgb24")
  np.testing.assert_array_equal(decoded, image)  # FFV1 RGB is lossless
  expected = np.asarray(Image.fromarray(image).resize((344, 256), Image.BILINEAR))
  np.testing.assert_array_equal(crop, expected[16:240, 60:284])


def test_downscaling_is_antialiased():
  """On the 480x360 video (downscaled to 341x256) the crops match TF's antialiased bilinear
  within one level and are far from the non-antialiased one."""
  path = shared_path("i3d", "v_ZNVhz7ctTq0.mp4")
  _, frame = next(video.decoded_frames(path))
  crop = video.crop_uint8(frame, STACK64).astype(np.float32)
  rgb = tf.constant(frame.to_ndarray(format="rgb24"), tf.float32)

  def tf_crop(antialias):
    resized = tf.image.resize(rgb, (256, 341), "bilinear", antialias=antialias).numpy()
    return resized[16:240, 58:282]

  with_aa = np.abs(crop - tf_crop(True))
  without_aa = np.abs(crop - tf_crop(False))
  assert with_aa.max() <= 1.0 + 1e-3
  assert without_aa.mean() > 3 * with_aa.mean()


def test_second_video_stacks_and_times():
  path = shared_path("i3d", "v_ZNVhz7ctTq0.mp4")  # 420 frames at 30 fps, last at 13.967 s
  firsts = []
  for stack in video.stacks(path, STACK64):
    assert stack.frames.shape == (64, 224, 224, 3) and stack.frames.dtype == np.float32
    assert -1.0 <= stack.frames.min() and stack.frames.max() <= 1.0
    firsts.append(stack.first)
  assert firsts == [0, 64, 128, 192, 256]  # 350 frames at 25 fps: 5 stacks, tail dropped


def test_stacks_stream_without_reading_the_whole_video(tmp_path, monkeypatch):
  path = tiny_videos.write_video(str(tmp_path / "long.mkv"), [40 * i for i in range(400)])
  decoded = []

  def counting(p):
    for item in _decoded(p):
      decoded.append(item[0])
      yield item

  _decoded = video.decoded_frames
  monkeypatch.setattr(video, "decoded_frames", counting)
  stream = video.stacks(path, STACK64)
  first = next(stream)
  assert first.first == 0 and len(decoded) <= 66  # 64 frames plus the look-ahead
  assert [s.first for s in stream] == [64, 128, 192, 256, 320]
  assert len(decoded) == 400


def _vslnet_windows(t, size=24):
  """VSLNet's loop (prepare/extract_charades.py), as written there."""
  windows = []
  for start in range(0, t, size):
    end = min(t - 1, start + size)
    if end - start < size:
      start = max(0, end - size)
    windows.append((start, end))
  return windows


@pytest.mark.parametrize("t", [9, 10, 24, 25, 26, 47, 48, 49, 50, 71, 72, 73, 100])
def test_vslnet_windows_follow_their_loop(t):
  crops = (np.full([1], i) for i in range(t))
  got = [(first, first + len(frames), [int(f[0]) for f in frames])
         for first, frames in video._shift_back_groups(crops, 24)]
  assert [(s, e) for s, e, _ in got] == _vslnet_windows(t)
  for start, end, values in got:
    assert values == list(range(start, end))


@pytest.mark.parametrize("make,message", [
    (lambda d: tiny_videos.write_audio_only(str(d / "audio.wav")), "no video stream"),
    (lambda d: tiny_videos.write_no_frames(str(d / "empty.avi")), "zero decodable"),
    (lambda d: _write_bytes(d / "corrupt.mp4", b"not a video" * 50), "not a readable video"),
    (lambda d: str(d / "missing.mp4"), "not a readable video"),
    (lambda d: tiny_videos.write_video(str(d / "short.mkv"), [40 * i for i in range(60)]),
     "too few frames"),
])
def test_unusable_videos_raise_a_named_error(tmp_path, make, message):
  path = make(tmp_path)
  with pytest.raises(video.VideoError, match=message) as info:
    list(video.stacks(path, STACK64))
  assert str(path) in str(info.value)


def _write_bytes(path, data):
  path.write_bytes(data)
  return str(path)
