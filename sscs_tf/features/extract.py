"""Video files -> I3D RGB features in an HDF5 file the converters read (docs/video.md).

`Extractor` turns one video into rows of 1024 numbers with their start and end seconds;
`extract_videos` runs it over many files into a `store.FeatureStore`, going on past videos
that cannot be read and reporting them.
"""

import dataclasses
import fractions
import glob
import os
import time

import keras
import numpy as np
import tensorflow as tf

from sscs_tf.features import i3d, i3d_weights, video
from sscs_tf.features import store as store_lib

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv",
                    ".wmv", ".3gp", ".ogv", ".gif")
FORMAT_VERSION = 1


@dataclasses.dataclass
class VideoFeatures:
  """features float32 [N, 1024]; times float64 [N, 2] (start, end seconds of each row)."""
  features: np.ndarray
  times: np.ndarray
  duration: float


class Extractor:
  """I3D RGB features of one video at a time, stack by stack.

  Args:
    model: `i3d.build_i3d(...)` with its weights loaded: [B, T, 224, 224, 3] ->
      {"feature": [B, 1024], ...}, with its Mixed_5c layer named so.
    preset: a `video.Preset`.
    weights_kind, weights_sha256: recorded with the features (which feature space they are).
    precision: "float32" or "mixed_bfloat16" (recorded; the model is built with it).
    batch_size: stacks per model call.
  """

  def __init__(self, model, preset: video.Preset, weights_kind: str, weights_sha256: str,
               precision: str = "float32", batch_size: int = 1):
    self.model, self.preset = model, preset
    self.batch_size = _checked_batch_size(batch_size)
    self.attrs = {
        "extractor": "i3d_rgb", "format_version": FORMAT_VERSION, "preset": preset.name,
        "fps": preset.fps, "stack_frames": preset.stack_frames,
        "rows_per_stack": preset.rows_per_stack, "weights_kind": weights_kind,
        "weights_sha256": weights_sha256, "precision": precision,
    }
    self._rows = _rows_function(model, preset)

  def extract(self, path: str) -> VideoFeatures:
    """Raises video.VideoError when the file cannot give one stack."""
    rows, times, batch = [], [], []
    for stack in video.stacks(path, self.preset):
      if batch and (len(batch) == self.batch_size or len(stack.frames) != len(batch[0].frames)):
        self._run(batch, rows, times)
        batch = []
      batch.append(stack)
    self._run(batch, rows, times)
    return VideoFeatures(np.concatenate(rows), np.asarray(times, np.float64),
                         video.duration_seconds(path))

  def _run(self, batch, rows, times):
    if not batch:
      return
    out = self._rows(tf.constant(np.stack([s.frames for s in batch]))).numpy()
    for stack, stack_rows in zip(batch, out):
      rows.append(stack_rows.astype(np.float32))
      times.extend(row_times(stack.first, len(stack.frames), len(stack_rows), self.preset.fps))


def row_times(first: int, num_frames: int, num_rows: int, fps: int) -> list:
  """Stack of frames [first, first + num_frames) at `fps` cut evenly into `num_rows` rows:
  [(start, end)] seconds."""
  step = fractions.Fraction(num_frames, num_rows)
  return [(float((first + r * step) / fps), float((first + (r + 1) * step) / fps))
          for r in range(num_rows)]


def _rows_function(model, preset: video.Preset):
  """tf.function: stacks [B, T, 224, 224, 3] -> rows [B, R, 1024] float32."""
  if preset.rows_per_stack == "mean":
    def rows(x):
      return tf.cast(model(x, training=False)["feature"], tf.float32)[:, None, :]
  else:
    # One row per time position of the pooled map (VSLNet keeps them instead of the mean).
    mixed_5c = model.get_layer("Mixed_5c").output
    pooled = keras.layers.AveragePooling3D((2, 7, 7), strides=1, padding="valid",
                                           dtype=model.dtype_policy)(mixed_5c)
    pooled_model = keras.Model(model.inputs, pooled)

    def rows(x):
      out = tf.cast(pooled_model(x, training=False), tf.float32)
      return out[:, :, 0, 0, :]
  return tf.function(rows, reduce_retracing=True)


def load_extractor(preset: str, weights: str, precision: str = "float32",
                   batch_size: int = 1, cache_dir=None) -> Extractor:
  """Builds I3D, loads `weights` (a name such as "rgb_scratch", or a file) and wraps it."""
  # A bad preset or batch size fails before the network is built and its weights fetched.
  preset, batch_size = video.get_preset(preset), _checked_batch_size(batch_size)
  model = i3d.build_i3d(precision=precision)
  info = i3d_weights.load_weights(model, i3d_weights.resolve_weights(weights, cache_dir))
  return Extractor(model, preset, info.kind, info.sha256, precision, batch_size)


def _checked_batch_size(batch_size: int) -> int:
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  return batch_size


class KindError(ValueError):
  """Features of the asked kind cannot be made: the message says why."""


def extractor_for(recorded, weights: str = "", preset: str = "", precision: str = "float32",
                  force: bool = False, cache_dir=None) -> Extractor:
  """An Extractor making features of the kind a model was trained on.

  Args:
    recorded: the training features' extractor attributes (`export_lib.read_extractor`),
      None when unknown.
    weights, preset: override what `recorded` says (default: what it says; with nothing
      recorded, rgb_scratch and stack64).
    force: make features even when they would not be of the recorded kind.
  Raises:
    KindError, unless `force`, when the kind is unknown or the features would differ from it.
  """
  recorded = dict(recorded or {})
  if not recorded and not force:
    raise KindError("it does not record which extractor made its training features (they "
                    "were not written by sscs-extract), so features made now could be of "
                    "another kind; pass --features with features like those it was trained "
                    "on, or --force to extract with --preset and --weights anyway")
  if recorded and recorded.get("extractor") != "i3d_rgb" and not force:
    raise KindError(f"it was trained on {recorded.get('extractor')!r} features, which this "
                    "tool does not make (--force overrides)")
  preset = preset or recorded.get("preset") or "stack64"
  if recorded.get("preset") not in (None, preset) and not force:
    raise KindError(f"it was trained on features of preset {recorded['preset']!r}, not "
                    f"{preset!r} (--force overrides)")
  kind = recorded.get("weights_kind", "rgb_scratch")
  if not weights and kind != "rgb_scratch":
    raise KindError(f"it was trained on features made with the {kind} weights (sha256 "
                    f"{recorded.get('weights_sha256')}): pass --weights with that checkpoint")
  weights = weights or "rgb_scratch"
  if weights == "rgb_scratch":  # known without loading them
    _check_weights(recorded, "rgb_scratch", i3d_weights.RGB_SCRATCH_SHA256, force)
  extractor = load_extractor(preset, weights, precision, cache_dir=cache_dir)
  _check_weights(recorded, extractor.attrs["weights_kind"], extractor.attrs["weights_sha256"],
                 force)
  return extractor


def _check_weights(recorded, kind, sha256, force):
  wanted = recorded.get("weights_sha256")
  if wanted and sha256 != wanted and not force:
    raise KindError(f"it was trained on features made with the {recorded.get('weights_kind')} "
                    f"weights (sha256 {wanted}); {kind} weights (sha256 {sha256}) give "
                    "features of another kind (--force overrides)")


def find_videos(pattern: str) -> list[str]:
  """A file, a folder (its files with a video extension) or a glob pattern, sorted."""
  if os.path.isdir(pattern):
    names = sorted(os.listdir(pattern))
    return [os.path.join(pattern, n) for n in names
            if n.lower().endswith(VIDEO_EXTENSIONS) and not n.startswith(".")]
  if os.path.isfile(pattern):
    return [pattern]
  paths = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
  if not paths:
    raise ValueError(f"--videos {pattern}: no such file or folder, and no file matches it")
  return paths


def video_id(path: str) -> str:
  return os.path.splitext(os.path.basename(path))[0]


def check_ids(paths) -> None:
  seen = {}
  for path in paths:
    vid = video_id(path)
    if vid in ("", ".", ".."):
      raise ValueError(f"{path}: the file name gives no usable video id")
    if vid in seen:
      raise ValueError(f"{seen[vid]} and {path} have the same video id {vid!r}")
    seen[vid] = path


@dataclasses.dataclass
class Summary:
  written: int = 0
  skipped: int = 0
  failed: list = dataclasses.field(default_factory=list)  # (path, reason)
  video_seconds: float = 0.0


def extract_videos(paths, output: str, extractor: Extractor, log=print) -> Summary:
  """Extracts every video not already in `output`, then merges them into it."""
  check_ids(paths)
  feature_store = store_lib.FeatureStore(output, extractor.attrs)
  done = feature_store.done_ids()
  todo = [p for p in paths if video_id(p) not in done]
  summary = Summary(skipped=len(paths) - len(todo))
  if summary.skipped:
    log(f"{summary.skipped} of {len(paths)} videos already extracted; skipping them")
  progress = _Progress(len(todo), log)
  for path in todo:
    start = time.time()
    try:
      result = extractor.extract(path)
    except video.VideoError as e:
      summary.failed.append((path, str(e)))
      log(f"failed: {e}")
      progress.step(0.0, time.time() - start)
      continue
    feature_store.add(video_id(path), result.features, result.times, result.duration,
                      os.path.basename(path))
    summary.written += 1
    summary.video_seconds += result.duration
    progress.step(result.duration, time.time() - start, video_id(path), len(result.features))
  merged = feature_store.merge()
  log(f"{output}: {merged} videos added")
  return summary


class _Progress:
  """Videos done, seconds of video per second, ETA (from the mean time per video)."""

  def __init__(self, total: int, log):
    self.total, self.log = total, log
    self.done, self.video_s, self.wall_s = 0, 0.0, 0.0

  def step(self, video_s, wall_s, vid="", rows=0):
    self.done += 1
    self.video_s += video_s
    self.wall_s += wall_s
    eta = (self.total - self.done) * self.wall_s / self.done
    what = f" {vid}: {rows} rows," if vid else ""
    self.log(f"[{self.done}/{self.total}]{what} {self.video_s / max(self.wall_s, 1e-9):.2f} s "
             f"of video per s, ETA {_clock(eta)}")


def _clock(seconds: float) -> str:
  seconds = int(round(seconds))
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
