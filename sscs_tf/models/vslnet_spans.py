"""VSLNet's spans: seconds <-> steps and the decoding of start and end logits, as the
authors compute them (26hzhang/VSLNet, util/data_util.py `time_to_index`, `index_to_time`;
util/data_loader.py, the highlighting labels; model/layers.py `localization_loss`).

A video of n valid steps and duration d: step i spans [i d / n, (i + 1) d / n] in float32.
Training targets are the step pair (s, e) whose span has the largest IoU with the ground
truth (first in start-major order on ties); predictions are read back as
[s d / n, (e + 1) d / n].
"""

import numpy as np
import tensorflow as tf


def _step_times(num_valid, duration, steps):
  """(starts, ends) `[B, steps]` float32 as `time_to_index` builds them: i / n * d."""
  n = tf.cast(num_valid, tf.float32)[:, None]
  d = tf.cast(duration, tf.float32)[:, None]
  i = tf.range(steps, dtype=tf.float32)[None]
  return i / n * d, (i + 1.0) / n * d


def time_to_index(start, end, duration, num_valid, steps):
  """The authors' `time_to_index`: `[B]` seconds -> (start step, end step) `[B]` int32.

  The IoU of every candidate (i, j) (float32 times, IoU in float64 with a 1e-12 floor on the
  union, as `compute_overlap`), over the valid steps; the first maximum in start-major order.
  """
  starts, ends = _step_times(num_valid, duration, steps)
  s = tf.cast(starts, tf.float64)[:, :, None]
  e = tf.cast(ends, tf.float64)[:, None, :]
  gs = tf.cast(start, tf.float64)[:, None, None]
  ge = tf.cast(end, tf.float64)[:, None, None]
  zero, floor = tf.constant(0.0, tf.float64), tf.constant(1e-12, tf.float64)
  inter = tf.maximum(zero, tf.minimum(e, ge) - tf.maximum(s, gs))
  union = tf.maximum(floor, tf.maximum(e, ge) - tf.minimum(s, gs))
  valid = tf.range(steps)[None] < tf.cast(num_valid, tf.int32)[:, None]
  pair_valid = valid[:, :, None] & valid[:, None, :]
  overlap = tf.where(pair_valid, inter / union, tf.constant(-1.0, tf.float64))
  flat = tf.reshape(overlap, [tf.shape(overlap)[0], -1])
  best = tf.reduce_max(flat, axis=1, keepdims=True)
  position = tf.range(tf.shape(flat)[1])[None]
  first = tf.reduce_min(tf.where(tf.equal(flat, best), position, tf.shape(flat)[1]), axis=1)
  return first // steps, first % steps


def highlight_labels(start_index, end_index, num_valid, steps, extend: float):
  """The authors' highlighting labels `[B, steps]` float32: 1 on [s - k, e + k] within the
  valid steps, k = round(extend (e - s + 1)) (Python's round: halves to even)."""
  length = tf.cast(end_index - start_index + 1, tf.float64)
  k = tf.cast(tf.round(tf.constant(extend, tf.float64) * length), tf.int32)
  low = tf.maximum(0, start_index - k)
  high = tf.minimum(end_index + k, tf.cast(num_valid, tf.int32) - 1)
  t = tf.range(steps)[None]
  return tf.cast((t >= low[:, None]) & (t <= high[:, None]), tf.float32)


def span_probabilities(start_logits, end_logits):
  """softmax(start) x softmax(end), kept where start <= end: `[B, T, T]` float32."""
  start = tf.nn.softmax(tf.cast(start_logits, tf.float32), axis=1)
  end = tf.nn.softmax(tf.cast(end_logits, tf.float32), axis=1)
  outer = start[:, :, None] * end[:, None, :]
  return tf.linalg.band_part(outer, 0, -1)


def decode(start_logits, end_logits):
  """The authors' decoding: (start step, end step, probability) `[B]` from the upper
  triangle of the outer product, start = argmax of its row maxima, end of its column
  maxima."""
  outer = span_probabilities(start_logits, end_logits)
  start = tf.argmax(tf.reduce_max(outer, axis=2), axis=1, output_type=tf.int32)
  end = tf.argmax(tf.reduce_max(outer, axis=1), axis=1, output_type=tf.int32)
  return start, end, tf.reduce_max(outer, axis=[1, 2])


def index_to_time_np(start_index, end_index, num_valid, duration):
  """The authors' `index_to_time` for a batch: `[B, 2]` float64 seconds of float32
  products, s d / n and (e + 1) d / n."""
  n = np.asarray(num_valid, np.float32)
  d = np.asarray(duration, np.float32)
  start = np.asarray(start_index).astype(np.float32) * d / n
  end = (np.asarray(end_index).astype(np.float32) + np.float32(1.0)) * d / n
  return np.stack([start, end], axis=1).astype(np.float64)


class SpanHead(tf.Module):
  """VSLNet's outputs -> top-k segments in seconds, in the exported graph: the upper triangle
  of softmax(start) x softmax(end) ranked (the first is the authors' decoded span, barring
  exact ties), each (s, e) read back as [s d / n, (e + 1) d / n]; scores are the pair
  probabilities."""

  def __init__(self, top_k: int = 5):
    super().__init__()
    self.top_k = top_k

  def __call__(self, outputs, durations):
    outer = span_probabilities(outputs["start_logits"], outputs["end_logits"])
    steps = tf.shape(outer)[1]
    flat = tf.reshape(outer, [tf.shape(outer)[0], -1])
    k = tf.minimum(self.top_k, tf.shape(flat)[1])
    scores, cells = tf.math.top_k(flat, k=k)
    num_valid = tf.reduce_sum(tf.cast(outputs["clip_mask"], tf.float32), axis=1)[:, None]
    d = tf.cast(durations, tf.float32)[:, None]
    start = tf.cast(cells // steps, tf.float32) * d / num_valid
    end = (tf.cast(cells % steps, tf.float32) + 1.0) * d / num_valid
    return tf.stack([start, end], axis=2), scores
