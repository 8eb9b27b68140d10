"""The paper's analysis figures of a trained model on an evaluation split, drawn as plots
(sscs_tf/report/figures.py), for TensorBoard and the HTML report:

  Fig. 7: video-text similarity matrix of a fixed evaluation batch (cosine between each
          sentence feature and each video's mean GT-clip feature; the diagonal holds the
          matching pairs), beside each sentence's cosine with its own video's clips.
  Fig. 8: distribution of correctly predicted intervals (top-1 IoU > 0.5) over the ground
          truth's start position and relative length, as counts and as accuracy per bin.
"""

import numpy as np
import tensorflow as tf

from sscs_tf.models import contract
from sscs_tf.report import breakdown, figures

IMAGE_BATCH = 16


def similarity_maps(outputs, batch):
  """Fig. 7's numbers: (`[B, B]` cosine of sentence i with video j's mean GT-clip feature,
  `[B, T]` cosine of sentence i with each clip of its own video (NaN on padding),
  `[B, T]` GT-clip mask)."""
  clips = tf.cast(outputs["clip_features"], tf.float32)
  gt = contract.gt_clip_mask(batch["start"], batch["end"], batch["duration"], outputs["clip_mask"])
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
  dataset = contract.make_dataset(config, split, training=False)
  return next(iter(dataset.unbatch().batch(IMAGE_BATCH)))


def _strings(tensor) -> list:
  return [s.decode("utf-8") for s in tensor.numpy()]


def analysis_figures(model, batch, predictions, label: str) -> dict:
  """{name: (PNG bytes, description)}: Fig. 7 on `batch`, Fig. 8 on `predictions` (when
  given); `label` ("test split, step 1200") goes into the titles."""
  outputs = model(contract.model_inputs(batch), training=False)
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
