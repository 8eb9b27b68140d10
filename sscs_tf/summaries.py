"""TensorBoard: loss components, learning rate, throughput, metrics, the config, and images
of the paper's analysis figures on the evaluation split.

  Fig. 7: video-text similarity matrix of a fixed evaluation batch (cosine between each
          sentence feature and each video's mean GT-clip feature; the diagonal holds the
          matching pairs).
  Fig. 8: distribution of correctly predicted intervals (top-1 IoU > 0.5) over the ground
          truth's start position and relative length, as counts and as accuracy per bin.
"""

import os

import numpy as np
import tensorflow as tf

from sscs_tf import diagnostics, eval_lib
from sscs_tf.data import pipeline
from sscs_tf.sscs.support import gt_clip_mask

IMAGE_BATCH = 16
BINS = 10


def colormap(values: np.ndarray, low: float, high: float) -> np.ndarray:
  """`[H, W]` values -> `[H, W, 3]` float RGB in [0, 1], dark blue (low) to yellow (high)."""
  t = np.clip((np.nan_to_num(values, nan=low) - low) / max(high - low, 1e-12), 0.0, 1.0)
  anchors = np.array([[0.27, 0.00, 0.33], [0.13, 0.57, 0.55], [0.99, 0.91, 0.14]])
  position = t * (len(anchors) - 1)
  index = np.minimum(position.astype(int), len(anchors) - 2)
  frac = (position - index)[..., None]
  return anchors[index] * (1.0 - frac) + anchors[index + 1] * frac


def _image(values, low, high, cell: int = 12) -> np.ndarray:
  """`[1, H*cell, W*cell, 3]` for tf.summary.image."""
  rgb = colormap(np.asarray(values, np.float64), low, high)
  return np.repeat(np.repeat(rgb, cell, axis=0), cell, axis=1)[None].astype(np.float32)


def similarity_matrix(outputs, batch) -> np.ndarray:
  """`[B, B]` cosine of sentence i with video j's mean GT-clip feature (Fig. 7)."""
  clips = tf.cast(outputs["clip_features"], tf.float32)
  gt = gt_clip_mask(batch["start"], batch["end"], batch["duration"], outputs["clip_mask"])
  video = tf.reduce_sum(clips * gt[..., None], 1) / tf.reduce_sum(gt, 1, keepdims=True)
  sentence = tf.math.l2_normalize(tf.cast(outputs["sentence_feature"], tf.float32), -1)
  video = tf.math.l2_normalize(video, -1)
  if sentence.shape[-1] != video.shape[-1]:
    raise ValueError("Fig. 7 needs clip and sentence features of the same width.")
  return tf.matmul(sentence, video, transpose_b=True).numpy()


def interval_distribution(predictions, threshold: float = 0.5):
  """(counts of correct predictions, accuracy) per (start / duration, length / duration)
  bin of the ground truth, both `[BINS, BINS]` (rows: start, columns: length)."""
  gts = np.array([p["gt"] for p in predictions], np.float64)
  durations = np.array([p["duration"] for p in predictions], np.float64)
  correct = np.array([bool(p["ious"]) and p["ious"][0] > threshold for p in predictions])
  start = np.clip(gts[:, 0] / durations, 0.0, 1.0 - 1e-9)
  length = np.clip((gts[:, 1] - gts[:, 0]) / durations, 0.0, 1.0 - 1e-9)
  edges = np.linspace(0.0, 1.0, BINS + 1)
  total = np.histogram2d(start, length, bins=[edges, edges])[0]
  hits = np.histogram2d(start[correct], length[correct], bins=[edges, edges])[0]
  accuracy = np.where(total > 0, hits / np.maximum(total, 1), np.nan)
  return hits, accuracy


class Writer:
  """Summary writers for `{workdir}/tensorboard/{train,<split>}`; no-ops off the chief."""

  def __init__(self, workdir: str, config, enabled: bool = True):
    self.enabled = enabled
    self.config = config
    self._writers = {}
    self.root = os.path.join(workdir, "tensorboard")
    self._fixed_batch = None
    if enabled:
      with self._writer("train").as_default():
        tf.summary.text("config", "```\n" + config.to_json_best_effort(indent=2) + "\n```",
                        step=0)

  def _writer(self, name: str):
    if name not in self._writers:
      self._writers[name] = tf.summary.create_file_writer(os.path.join(self.root, name))
    return self._writers[name]

  def train_scalars(self, step, values: dict, learning_rate: float, rate: float, names):
    if not self.enabled:
      return
    with self._writer("train").as_default(step=step):
      for name in names:
        tf.summary.scalar(f"loss/{name}", values[name])
      if "sscs_fell_back" in values and self.config.sscs.support == "non_gt":
        tf.summary.scalar("sscs/non_gt_fallbacks", values["sscs_fell_back"])
      tf.summary.scalar("learning_rate", learning_rate)
      tf.summary.scalar("throughput/queries_per_second", rate)

  def eval_scalars(self, step, split: str, table: dict):
    if not self.enabled:
      return
    with self._writer(split).as_default(step=step):
      for name, value in table.items():
        if name not in eval_lib.NOT_METRICS:
          tf.summary.scalar(f"metrics/{name}" if name != "loss" else "loss/vg", value)
      # Does the model read the sentence (sscs_tf/diagnostics.py)?
      for name, value in diagnostics.flat(table.get("query_dependence", {})).items():
        tf.summary.scalar(name, value)

  def analysis_images(self, step, state, predictions, split=None):
    """Fig. 7 on a fixed batch and Fig. 8 on the whole of `split` (default: the evaluation
    split; the trainer passes the validation split)."""
    if not self.enabled:
      return
    split = split or self.config.data.eval_split
    if self._fixed_batch is None:
      dataset = pipeline.make_dataset(self.config.data, split, training=False)
      self._fixed_batch = next(iter(dataset.unbatch().batch(IMAGE_BATCH)))
    batch = self._fixed_batch
    outputs = state.model(eval_lib.model_inputs(batch), training=False)
    with self._writer(split).as_default(step=step):
      tf.summary.image("fig7_video_text_similarity",
                       _image(similarity_matrix(outputs, batch), -1.0, 1.0), step=step)
      if predictions:
        hits, accuracy = interval_distribution(predictions)
        tf.summary.image("fig8_correct_by_start_and_length",
                         _image(hits, 0.0, max(hits.max(), 1.0)), step=step)
        tf.summary.image("fig8_accuracy_by_start_and_length",
                         _image(accuracy, 0.0, 1.0), step=step)

  def close(self):
    for writer in self._writers.values():
      writer.close()
