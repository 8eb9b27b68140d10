"""TensorBoard: loss components, learning rate, throughput, metrics, the config, and the
paper's analysis figures on the evaluation split, drawn as plots (sscs_tf/report/figures.py):

  Fig. 7: video-text similarity matrix of a fixed evaluation batch (cosine between each
          sentence feature and each video's mean GT-clip feature; the diagonal holds the
          matching pairs), beside each sentence's cosine with its own video's clips.
  Fig. 8: distribution of correctly predicted intervals (top-1 IoU > 0.5) over the ground
          truth's start position and relative length, as counts and as accuracy per bin.
"""

import os

import numpy as np
import tensorflow as tf

from sscs_tf.evaluate import eval_lib
from sscs_tf.scoring import diagnostics
from sscs_tf.data import pipeline
from sscs_tf.report import breakdown, figures
from sscs_tf.sscs.support import gt_clip_mask

IMAGE_BATCH = 16


def similarity_maps(outputs, batch):
  """Fig. 7's numbers: (`[B, B]` cosine of sentence i with video j's mean GT-clip feature,
  `[B, T]` cosine of sentence i with each clip of its own video (NaN on padding),
  `[B, T]` GT-clip mask)."""
  clips = tf.cast(outputs["clip_features"], tf.float32)
  gt = gt_clip_mask(batch["start"], batch["end"], batch["duration"], outputs["clip_mask"])
  video = tf.reduce_sum(clips * gt[..., None], 1) / tf.reduce_sum(gt, 1, keepdims=True)
  sentence = tf.math.l2_normalize(tf.cast(outputs["sentence_feature"], tf.float32), -1)
  if sentence.shape[-1] != clips.shape[-1]:
    raise ValueError("Fig. 7 needs clip and sentence features of the same width.")
  matrix = tf.matmul(sentence, tf.math.l2_normalize(video, -1), transpose_b=True)
  per_clip = tf.einsum("bh,bth->bt", sentence, tf.math.l2_normalize(clips, -1))
  valid = tf.cast(outputs["clip_mask"], tf.float32) > 0
  per_clip = tf.where(valid, per_clip, np.nan)
  return matrix.numpy(), per_clip.numpy(), gt.numpy()


def fixed_batch(config, split: str):
  """The first IMAGE_BATCH queries of `split`, the batch Fig. 7 is drawn on."""
  dataset = pipeline.make_dataset(config.data, split, training=False)
  return next(iter(dataset.unbatch().batch(IMAGE_BATCH)))


def _strings(tensor) -> list:
  return [s.decode("utf-8") for s in tensor.numpy()]


def analysis_figures(model, batch, predictions, label: str) -> dict:
  """{name: (PNG bytes, description)}: Fig. 7 on `batch`, Fig. 8 on `predictions` (when
  given); `label` ("test split, step 1200") goes into the titles."""
  outputs = model(eval_lib.model_inputs(batch), training=False)
  matrix, per_clip, gt = similarity_maps(outputs, batch)
  sentences = _strings(batch["sentence"])
  figure = figures.similarity_figure(matrix, per_clip, gt, sentences,
                                     _strings(batch["video_id"]),
                                     f"Fig. 7: video-text similarity ({label})")
  description = "Sentences: " + "; ".join(f"{i}: {s}" for i, s in enumerate(sentences))
  out = {"fig7_video_text_similarity": (figures.png_bytes(figure), description)}
  if predictions:
    hits, accuracy, total = breakdown.interval_distribution(predictions)
    figure = figures.interval_figure(
        hits, accuracy, total, f"Fig. 8: correct predictions by ground-truth start and "
        f"length ({label}, {len(predictions)} queries)")
    out["fig8_correct_by_start_and_length"] = (
        figures.png_bytes(figure), "Top-1 IoU > 0.5 by the ground truth's start / duration "
        "(x) and length / duration (y): counts and accuracy per bin.")
  return out


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
      # Does the model read the sentence (sscs_tf/scoring/diagnostics.py)?
      for name, value in diagnostics.flat(table.get("query_dependence", {})).items():
        tf.summary.scalar(name, value)

  def analysis_images(self, step, state, predictions, split=None):
    """Fig. 7 on a fixed batch and Fig. 8 on the whole of `split` (default: the evaluation
    split; the trainer passes the validation split)."""
    if not self.enabled:
      return
    split = split or self.config.data.eval_split
    if self._fixed_batch is None:
      self._fixed_batch = fixed_batch(self.config, split)
    images = analysis_figures(state.model, self._fixed_batch, predictions,
                              f"{split} split, step {int(step)}")
    with self._writer(split).as_default(step=step):
      for name, (png, description) in images.items():
        tf.summary.image(name, tf.io.decode_png(png, channels=3)[None], step=step,
                         description=description)

  def close(self):
    for writer in self._writers.values():
      writer.close()
