"""Video file -> stacks of I3D input frames, streamed (see docs/video.md).

decode (PyAV) -> pick frames at the preset's fps by presentation time -> resize -> centre
crop 224 -> scale to [-1, 1] -> yield one stack at a time. Only the stack being filled and the
last decoded frame are held, so memory does not grow with the video's length.

Frame times are exact: pts x time_base as a `Fraction`, relative to the first decoded frame.
Resizing is Pillow's BILINEAR on the 8-bit RGB frame (a triangle filter widened when
downscaling, i.e. antialiased), the resampler of the reference recipe; see docs/video.md for
the measured agreement.

Presets:
  * `stack64`: the recipe of v-iashin/video_features (`models/i3d/extract_i3d.py`), used for
    BMT's ActivityNet Captions features: 25 fps by nearest timestamp, short side resized to
    256, centre crop 224, 64-frame stacks with step 64, the incomplete tail dropped; one row
    per stack (the pooled map averaged over time).
  * `vslnet`: VSLNet's Charades-STA features (26hzhang/VSLNet `prepare/extract_charades.py`):
    24 fps (ffmpeg's `fps` filter, which rounds each frame's time to the nearest output tick
    and keeps the latest frame per tick), no resize unless the short side is under 226
    (then scaled up to 226), centre crop at round((size - 224) / 2), 24-frame windows where
    the last window is moved back to end one frame before the video's end, and each window
    gives the pooled map's time positions as rows (2 rows per 24 frames: one per 0.5 s).
"""

import dataclasses
import fractions
import math
from typing import Iterator

import av
import numpy as np
from PIL import Image

CROP = 224


class VideoError(ValueError):
  """A video that cannot be turned into stacks; the message names the file and why."""


@dataclasses.dataclass(frozen=True)
class Preset:
  """How frames are picked, resized and grouped.

  Attributes:
    name: the preset's name, recorded with the features.
    fps: frames per second fed to the model.
    frame_rule: "nearest" (the decoded frame nearest to k/fps, ties to the earlier) or
      "ffmpeg_fps" (the latest decoded frame whose time rounds to tick k or before).
    short_side: "resize to" size of the short side (`resize_always`), or the minimum short
      side below which frames are scaled up (otherwise left as they are).
    resize_always: whether every frame is resized to `short_side`.
    crop_round: "floor" ((size - 224) // 2) or "half_even" (NumPy's round of (size - 224) / 2).
    stack_frames: frames per model input.
    tail: "drop" (the incomplete last stack is dropped) or "shift_back" (VSLNet's rule).
    rows_per_stack: "mean" (one row: the pooled map averaged over time) or "positions" (one
      row per time position of the pooled map).
  """
  name: str
  fps: int
  frame_rule: str
  short_side: int
  resize_always: bool
  crop_round: str
  stack_frames: int
  tail: str
  rows_per_stack: str


PRESETS = {
    "stack64": Preset("stack64", fps=25, frame_rule="nearest", short_side=256,
                      resize_always=True, crop_round="floor", stack_frames=64, tail="drop",
                      rows_per_stack="mean"),
    "vslnet": Preset("vslnet", fps=24, frame_rule="ffmpeg_fps", short_side=226,
                     resize_always=False, crop_round="half_even", stack_frames=24,
                     tail="shift_back", rows_per_stack="positions"),
}


def get_preset(name: str) -> Preset:
  if name not in PRESETS:
    raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
  return PRESETS[name]


@dataclasses.dataclass
class Stack:
  """One model input: `frames` float32 [T, 224, 224, 3] in [-1, 1], covering frames
  [first, first + T) of the resampled video, i.e. seconds [first / fps, (first + T) / fps)."""
  frames: np.ndarray
  first: int


def open_video(path: str):
  """(container, first video stream); VideoError when unreadable or without video."""
  try:
    container = av.open(path)
  except (av.error.FFmpegError, OSError) as e:
    raise VideoError(f"{path}: not a readable video file ({e})") from None
  if not container.streams.video:
    container.close()
    raise VideoError(f"{path}: no video stream")
  stream = container.streams.video[0]
  stream.thread_type = "AUTO"
  return container, stream


def decoded_frames(path: str) -> Iterator[tuple[fractions.Fraction, "av.VideoFrame"]]:
  """(time in seconds relative to the first frame, frame) in presentation order.

  Frames without a pts, or not later than the frame before (broken streams), are skipped:
  a timestamp rule cannot place them.
  """
  container, stream = open_video(path)
  with container:
    time_base = stream.time_base
    first_pts, last_pts, count = None, None, 0
    try:
      for frame in container.decode(stream):
        if frame.pts is None or (last_pts is not None and frame.pts <= last_pts):
          continue
        if first_pts is None:
          first_pts = frame.pts
        last_pts = frame.pts
        count += 1
        yield fractions.Fraction(frame.pts - first_pts) * time_base, frame
    except av.error.FFmpegError as e:
      raise VideoError(f"{path}: decoding failed after {count} frames ({e})") from None
    if count == 0:
      raise VideoError(f"{path}: zero decodable video frames")


def resampled_frames(timed_frames, fps: int, rule: str = "nearest"):
  """(output index k, source index i, frame) for k = 0, 1, ... at `fps`.

  "nearest": frame k is the source frame whose time is nearest to k / fps (a tie goes to
  the earlier frame); k runs up to floor(fps x time of the last frame).
  "ffmpeg_fps": frame k is the latest source frame whose time rounds (half up) to tick k or
  before, as ffmpeg's fps filter (round=near) picks them; k runs up to the tick of the last
  frame.
  A source frame is yielded once per output frame it fills; it is held only until the next
  source frame arrives.
  """
  k = 0
  prev = None  # (index, time, frame)
  for i, (time, frame) in enumerate(timed_frames):
    if prev is not None:
      # Ticks whose nearest frame is `prev`: k/fps <= midpoint (ties to the earlier), or for
      # ffmpeg's rule, ticks before the one this frame rounds to.
      if rule == "nearest":
        limit = math.floor((prev[1] + time) * fps / 2)
      else:
        limit = _round_half_up(time * fps) - 1
      while k <= limit:
        yield k, prev[0], prev[2]
        k += 1
    prev = (i, time, frame)
  if prev is not None:
    last = math.floor(prev[1] * fps) if rule == "nearest" else _round_half_up(prev[1] * fps)
    while k <= last:
      yield k, prev[0], prev[2]
      k += 1


def _round_half_up(x: fractions.Fraction) -> int:
  return math.floor(x + fractions.Fraction(1, 2))


def resized_size(width: int, height: int, preset: Preset) -> tuple[int, int]:
  """(width, height) after the preset's resize; round half up on the scaled side."""
  short = min(width, height)
  if not preset.resize_always and short >= preset.short_side:
    return width, height
  scale = fractions.Fraction(preset.short_side, short)
  if width <= height:
    return preset.short_side, _round_half_up(height * scale)
  return _round_half_up(width * scale), preset.short_side


def crop_offset(size: int, preset: Preset) -> int:
  if size < CROP:
    raise VideoError(f"frame side {size} is smaller than the {CROP} crop")
  if preset.crop_round == "floor":
    return (size - CROP) // 2
  return int(np.round((size - CROP) / 2.0))


def crop_uint8(frame: "av.VideoFrame", preset: Preset) -> np.ndarray:
  """The frame as 8-bit RGB, resized and centre-cropped: uint8 [224, 224, 3]."""
  image = frame.to_image()  # rgb24 at the native size, swscale's default conversion
  size = resized_size(image.width, image.height, preset)
  if size != (image.width, image.height):
    image = image.resize(size, Image.BILINEAR)
  top, left = crop_offset(size[1], preset), crop_offset(size[0], preset)
  return np.asarray(image.crop((left, top, left + CROP, top + CROP)))


def scale(crops_uint8: np.ndarray) -> np.ndarray:
  """uint8 -> float32 2u/255 - 1 in [-1, 1], as the I3D weights expect."""
  # (2u) / 255 - 1, rounded as the reference recipe rounds it.
  return (crops_uint8.astype(np.float32) * np.float32(2.0)) / np.float32(255.0) - np.float32(1.0)


def min_stack_frames(preset: Preset) -> int:
  """Fewest frames one model input may have: the (2, 7, 7) average pool needs two time
  positions of Mixed_5c, which has ceil(T / 8) of them."""
  return preset.stack_frames if preset.tail == "drop" else 9


def stacks(path: str, preset: Preset) -> Iterator[Stack]:
  """The video's model inputs in order; VideoError when there is not even one."""
  crops = _cropped_frames(path, preset)
  group = _drop_tail_groups if preset.tail == "drop" else _shift_back_groups
  count = 0
  for first, frames in group(crops, preset.stack_frames):
    if len(frames) < min_stack_frames(preset):
      break
    count += 1
    yield Stack(scale(np.stack(frames)), first)
  if count == 0:
    raise VideoError(f"{path}: too few frames at {preset.fps} fps for one stack of "
                     f"{min_stack_frames(preset)} frames")


def _cropped_frames(path, preset):
  """uint8 crops at the preset's fps; a source frame repeated at several ticks is converted
  once."""
  last_source, last_crop = None, None
  for _, source, frame in resampled_frames(decoded_frames(path), preset.fps,
                                           preset.frame_rule):
    if source != last_source:
      try:
        last_crop = crop_uint8(frame, preset)
      except VideoError as e:
        raise VideoError(f"{path}: {e}") from None
      last_source = source
    yield last_crop


def _drop_tail_groups(crops, size):
  """Non-overlapping runs of `size` frames from frame 0; the incomplete tail is dropped."""
  buffer, first = [], 0
  for crop in crops:
    buffer.append(crop)
    if len(buffer) == size:
      yield first, buffer
      buffer, first = [], first + size
  if first == 0 and buffer:
    yield 0, buffer  # fewer frames than one stack: reported by the caller


def _shift_back_groups(crops, size):
  """VSLNet's windows over t frames: for start in range(0, t, size), end = min(t - 1,
  start + size), and a window shorter than `size` is moved back to start at end - size
  (not before 0). Full windows are yielded as soon as a later frame proves they are not the
  last; only the last 2 x size frames are held."""
  recent, t, start = [], 0, 0  # recent[j] is frame t - len(recent) + j
  for crop in crops:
    recent.append(crop)
    t += 1
    if len(recent) > 2 * size:
      recent.pop(0)
    if t - 1 >= start + size:  # this frame exists, so the window [start, start + size) is full
      yield start, _slice(recent, t, start, start + size)
      start += size
  while start < t:
    end = min(t - 1, start + size)
    first = max(0, end - size) if end - start < size else start
    yield first, _slice(recent, t, first, end)
    start += size


def _slice(recent, t, first, end):
  offset = t - len(recent)
  return recent[first - offset:end - offset]


def duration_seconds(path: str) -> float:
  """The video's duration from its header (container, else stream); 0 when neither says."""
  container, stream = open_video(path)
  with container:
    if container.duration:
      return container.duration / av.time_base
    if stream.duration and stream.time_base:
      return float(stream.duration * stream.time_base)
  return 0.0
