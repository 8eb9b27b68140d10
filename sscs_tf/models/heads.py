"""Serving heads: a model's outputs -> its best segments in seconds, inside the exported graph.

Each head is called as `head(outputs, durations [B])` and returns (segments [B, k, 2] float32
seconds, best first; scores [B, k] float32), computing what the evaluation ranks
(`scoring.metrics`), so serving and evaluation keep the same segments.
"""

import numpy as np
import tensorflow as tf

from sscs_tf.scoring import metrics


class TanHead(tf.Module):
  """2D-TAN score maps -> top-k segments: sigmoid(scores) * mask over cells s <= e, cell
  (s, e) -> [s, e + 1] * d / N, greedy NMS (kept when IoU <= thresh), as `metrics`.

  The NMS is `metrics.greedy_nms` in the graph (score order with ties by cell, IoU in
  float64 of the float32 seconds) rather than tf.image.non_max_suppression, whose float32
  IoU rounds the grid's many IoUs of exactly the threshold (0.5: [0, 2] against [0, 4]
  cells) either way, so serving would keep other segments than the evaluation.
  """

  def __init__(self, num_clips: int, nms_thresh: float, top_k: int = 5):
    super().__init__()
    starts, ends = np.triu_indices(num_clips)
    self.flat_cells = tf.constant(starts * num_clips + ends, tf.int32)
    self.cell_starts = tf.constant(starts / num_clips, tf.float32)
    self.cell_ends = tf.constant((ends + 1) / num_clips, tf.float32)
    self.nms_thresh, self.top_k = nms_thresh, top_k

  def __call__(self, outputs, durations):
    probs = tf.sigmoid(tf.cast(outputs["scores"], tf.float32)) * outputs["map_mask"]
    batch = tf.shape(probs)[0]
    scores = tf.gather(tf.reshape(probs, [batch, -1]), self.flat_cells, axis=1)
    # Seconds in float32, as the reference: s / N * d, (e + 1) / N * d.
    starts = self.cell_starts[None] * durations[:, None]
    ends = self.cell_ends[None] * durations[:, None]

    def one(args):
      score, start, end = args
      keep = self.greedy_nms(score, start, end)
      found = keep >= 0
      keep = tf.maximum(keep, 0)
      segments = tf.stack([tf.gather(start, keep), tf.gather(end, keep)], axis=1)
      return (tf.where(found[:, None], segments, -1.0),
              tf.where(found, tf.gather(score, keep), -1.0))

    return tf.map_fn(one, (scores, starts, ends), fn_output_signature=(
        tf.TensorSpec([self.top_k, 2], tf.float32), tf.TensorSpec([self.top_k], tf.float32)))

  def greedy_nms(self, score, start, end):
    """Candidate indices kept, best first, -1 past the last: `metrics.greedy_nms`."""
    order = tf.argsort(-score, stable=True)  # descending, ties by cell
    start = tf.cast(tf.gather(start, order), tf.float64)
    end = tf.cast(tf.gather(end, order), tf.float64)
    alive = tf.ones_like(start, tf.bool)
    keep = []
    for _ in range(self.top_k):  # top_k passes over the K candidates
      first = tf.argmax(tf.cast(alive, tf.int32), output_type=tf.int32)
      keep.append(tf.where(tf.reduce_any(alive), tf.gather(order, first), -1))
      inter = tf.maximum(tf.minimum(end[first], end) - tf.maximum(start[first], start), 0.0)
      union = (end[first] - start[first]) + (end - start) - inter
      overlap = inter > 0
      iou = tf.where(overlap, inter / tf.where(overlap, union, tf.ones_like(union)),
                     tf.zeros_like(union))
      alive &= (iou <= self.nms_thresh) & (tf.range(tf.size(alive)) != first)
    return tf.stack(keep)


class SegmentHead(tf.Module):
  """A regressed (t_s, t_e) in fractions of the duration (LGI's `times`) -> one segment in
  seconds, scored 1."""

  def __call__(self, outputs, durations):
    times = tf.cast(outputs["times"], tf.float32) * durations[:, None]
    return times[:, None, :], tf.ones_like(times[:, :1])


class OneSegmentScorer:
  """The scorer of a model that predicts one segment per query (LGI, VSLNet): R@1 with
  IoU >= m and mIoU (`metrics.r_at_1`). A subclass gives `outputs_to_numpy` and
  `predicted_seconds(arrays, batch) -> [B, 2]`."""

  TOP1_METRIC, STRICT = "R1@0.5", False

  def __init__(self, eval_config):
    self.thresholds = tuple(eval_config.iou_thresholds)
    self._pred, self._gt, self._ids, self._durations = [], [], [], []

  def predicted_seconds(self, out, batch):
    raise NotImplementedError

  def update(self, out, batch):
    self._pred.append(self.predicted_seconds(out, batch))
    self._gt.append(np.stack([batch["start"], batch["end"]], axis=1))
    self._durations.append(batch["duration"])
    self._ids.extend(batch["query_id"])

  def result(self):
    return metrics.r_at_1(np.concatenate(self._pred), np.concatenate(self._gt),
                          self.thresholds)

  def per_query(self):
    pred, gt = np.concatenate(self._pred), np.concatenate(self._gt)
    ious = metrics.span_iou(pred, gt)
    durations = np.concatenate(self._durations)
    return [dict(query_id=qid, duration=float(durations[i]), gt=gt[i].tolist(),
                 segments=[pred[i].tolist()], ious=[float(ious[i])])
            for i, qid in enumerate(self._ids)]
