"""The baselines' training losses: 2D-TAN's scaled-IoU BCE and LGI's three losses.

Pure TensorFlow functions, usable eagerly and inside a `tf.function` train step. Inputs
may be float16 / bfloat16 (mixed precision); every loss is computed in float32.

Each loss comes as `*_per_example` (shape `[B]`) for a distributed trainer, which scales
by the global batch (`tf.nn.compute_average_loss(per_example, global_batch_size=...)`),
and as the reference's batch value (a scalar).
"""

import tensorflow as tf

# PyTorch's BCELoss clamps its logs at -100, so a cell with p exactly 0 or 1 costs at most
# 100 instead of infinity.
_LOG_FLOOR = -100.0
# PyTorch's BCELoss backward divides by max(p (1 - p), 1e-12).
_BCE_GRAD_EPS = 1e-12


def _float32(x) -> tf.Tensor:
  return tf.cast(x, tf.float32)


def _check_rank(x: tf.Tensor, rank: int, name: str, shape: str) -> None:
  if x.shape.rank is not None and x.shape.rank != rank:
    raise ValueError(f"{name} must be {shape}, got shape {x.shape}")


@tf.custom_gradient
def binary_cross_entropy(probs: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
  """Elementwise -(t log p + (1 - t) log(1 - p)), logs clamped at -100 (PyTorch BCELoss).

  The gradient is PyTorch's, (p - t) / max(p (1 - p), 1e-12): the autodiff gradient of
  the clamped logs is 0 * inf = NaN at p = 0 or 1, which happens on every masked cell.
  """
  log_p = tf.maximum(tf.math.log(probs), _LOG_FLOOR)
  log_not_p = tf.maximum(tf.math.log(1.0 - probs), _LOG_FLOOR)

  def grad(upstream):
    d_probs = upstream * (probs - targets) / tf.maximum(probs * (1.0 - probs), _BCE_GRAD_EPS)
    return d_probs, upstream * (log_not_p - log_p)

  return -(targets * log_p + (1.0 - targets) * log_not_p), grad


def _tan_cell_losses(scores, iou_map, map_mask, min_iou, max_iou):
  """BCE per cell and the mask, both `[B, N, N]` float32."""
  scores, iou_map, map_mask = _float32(scores), _float32(iou_map), _float32(map_mask)
  _check_rank(scores, 3, "scores", "[batch, N, N] logits")
  _check_rank(iou_map, 3, "iou_map", "[batch, N, N]")
  if map_mask.shape.rank not in (None, 2, 3):
    raise ValueError(f"map_mask must be [N, N] or [batch, N, N], got shape {map_mask.shape}")
  if isinstance(min_iou, (int, float)) and isinstance(max_iou, (int, float)):
    if not max_iou > min_iou:
      raise ValueError(f"max_iou ({max_iou}) must be greater than min_iou ({min_iou})")
  mask = tf.broadcast_to(map_mask, tf.shape(scores))
  min_iou, max_iou = _float32(min_iou), _float32(max_iou)
  targets = tf.clip_by_value((iou_map - min_iou) / (max_iou - min_iou), 0.0, 1.0)
  probs = tf.sigmoid(scores) * mask
  return binary_cross_entropy(probs, targets) * mask, mask


def tan_loss(scores, iou_map, map_mask, min_iou: float, max_iou: float) -> tf.Tensor:
  """2D-TAN's loss exactly as the reference: sum(BCE * mask) / sum(mask) over the batch.

  Args:
    scores: `[B, N, N]` logits, `[b, start, end]` (the model's masked score map).
    iou_map: `[B, N, N]` IoU of each cell's span with the ground truth.
    map_mask: `[N, N]` or `[B, N, N]` validity mask (1 = proposal cell).
    min_iou, max_iou: target t = clip((IoU - min_iou) / (max_iou - min_iou), 0, 1).

  Returns:
    Scalar float32; 0 when the mask is empty.
  """
  cell_losses, mask = _tan_cell_losses(scores, iou_map, map_mask, min_iou, max_iou)
  return tf.math.divide_no_nan(tf.reduce_sum(cell_losses), tf.reduce_sum(mask))


def tan_loss_per_example(scores, iou_map, map_mask, min_iou: float,
                         max_iou: float) -> tf.Tensor:
  """Per-example 2D-TAN loss `[B]`: each example's BCE averaged over its own mask.

  The reference divides by the mask count of the whole batch, so
  `tan_loss = sum(per_example * count) / sum(count)`, count = each example's mask sum.
  2D-TAN's mask is the same fixed `[N, N]` map for every example, so all counts are equal
  and `tan_loss == mean(per_example)`: averaging over the global batch (as
  `tf.nn.compute_average_loss` does) reproduces the reference on any number of replicas.
  Arguments as `tan_loss`; an example with an empty mask gets 0.
  """
  cell_losses, mask = _tan_cell_losses(scores, iou_map, map_mask, min_iou, max_iou)
  return tf.math.divide_no_nan(tf.reduce_sum(cell_losses, axis=[1, 2]),
                               tf.reduce_sum(mask, axis=[1, 2]))


def _smooth_l1(x: tf.Tensor) -> tf.Tensor:
  """PyTorch SmoothL1Loss with beta = 1, elementwise."""
  abs_x = tf.abs(x)
  return tf.where(abs_x < 1.0, 0.5 * tf.square(x), abs_x - 0.5)


def lgi_regression_loss_per_example(pred_times, target_times) -> tf.Tensor:
  """SmoothL1(t_s) + SmoothL1(t_e) per example `[B]`.

  Args:
    pred_times: `[B, 2]` predicted (start, end) as fractions of the duration.
    target_times: `[B, 2]` ground truth (start / duration, end / duration).
  """
  pred_times, target_times = _float32(pred_times), _float32(target_times)
  _check_rank(pred_times, 2, "pred_times", "[batch, 2]")
  _check_rank(target_times, 2, "target_times", "[batch, 2]")
  return tf.reduce_sum(_smooth_l1(pred_times - target_times), axis=-1)


def lgi_regression_loss(pred_times, target_times) -> tf.Tensor:
  """LGI's regression loss: the reference's two batch-mean SmoothL1 terms, summed."""
  return tf.reduce_mean(lgi_regression_loss_per_example(pred_times, target_times))


def lgi_attention_guidance_loss_per_example(attention, segment_mask) -> tf.Tensor:
  """Temporal attention guidance per example `[B]`: sum_t -g_t log(o_t + 1e-8) / sum_t g_t.

  Args:
    attention: `[B, T]` temporal attention o (softmax over the segments).
    segment_mask: `[B, T]` g, 1 on the segments inside the ground truth. An example with
      no marked segment gets 0 (the reference would give NaN).
  """
  attention, segment_mask = _float32(attention), _float32(segment_mask)
  _check_rank(attention, 2, "attention", "[batch, segments]")
  _check_rank(segment_mask, 2, "segment_mask", "[batch, segments]")
  # The 1e-8 is the reference's: it bounds the cost of zero attention on a marked segment.
  nll = -segment_mask * tf.math.log(attention + 1e-8)
  return tf.math.divide_no_nan(tf.reduce_sum(nll, axis=-1), tf.reduce_sum(segment_mask, axis=-1))


def lgi_attention_guidance_loss(attention, segment_mask) -> tf.Tensor:
  """LGI's temporal attention guidance loss, mean over the batch."""
  return tf.reduce_mean(lgi_attention_guidance_loss_per_example(attention, segment_mask))


def lgi_distinct_query_loss_per_example(phrase_attention, identity_scale: float) -> tf.Tensor:
  """Distinct query attention per example `[B]`: ||A A^T - lambda I||_F^2.

  Args:
    phrase_attention: `[B, N, L]` A, the attention of N phrases over L words.
    identity_scale: lambda (0.3 Charades, 0.2 ActivityNet); pushes the phrases to attend
      to different words while letting each keep some spread.
  """
  phrase_attention = _float32(phrase_attention)
  _check_rank(phrase_attention, 3, "phrase_attention", "[batch, phrases, words]")
  gram = tf.matmul(phrase_attention, phrase_attention, transpose_b=True)
  num_phrases = tf.shape(phrase_attention)[1]
  residual = gram - identity_scale * tf.eye(num_phrases, dtype=tf.float32)
  return tf.reduce_sum(tf.square(residual), axis=[1, 2])


def lgi_distinct_query_loss(phrase_attention, identity_scale: float) -> tf.Tensor:
  """LGI's distinct query attention loss, mean over the batch."""
  return tf.reduce_mean(lgi_distinct_query_loss_per_example(phrase_attention, identity_scale))
