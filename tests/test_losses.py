"""Tests of sscs_tf.scoring.losses: hand-worked maps, a numpy re-implementation, reference
parity."""

import math

import numpy as np
import pytest
import tensorflow as tf

from sscs_tf.scoring import losses
from tests.testing import shared_path

LOG2 = math.log(2.0)


def _numpy_tan_loss(scores, iou_map, mask, min_iou, max_iou):
  """The reference formula in float64 numpy, written independently of the module."""
  mask = np.broadcast_to(mask, scores.shape).astype(np.float64)
  target = np.clip((iou_map - min_iou) / (max_iou - min_iou), 0.0, 1.0)
  prob = 1.0 / (1.0 + np.exp(-scores.astype(np.float64))) * mask
  with np.errstate(divide="ignore"):
    bce = -(target * np.maximum(np.log(prob), -100.0)
            + (1.0 - target) * np.maximum(np.log(1.0 - prob), -100.0))
  return (bce * mask).sum() / mask.sum(), (bce * mask).sum(axis=(1, 2)) / mask.sum(axis=(1, 2))


# 2x2 maps worked by hand, min_iou 0.5, max_iou 1.0:
#   cell (0,0): score 0 -> p 0.5, IoU 0.75 -> t 0.5: BCE = log 2
#   cell (0,1): score 100 -> p exactly 1, IoU 0.9 -> t 0.8: BCE = -0.2 * (-100) = 20
#   cell (1,0): masked out (p = 0), contributes nothing
#   cell (1,1): score -200 -> p exactly 0, IoU 1.0 -> t 1: BCE = -(-100) = 100
# Example 2 has the full mask, every cell p 0.5 and t 0.5: BCE = log 2 each.
HAND_SCORES = np.array([[[0.0, 100.0], [3.0, -200.0]], [[0.0, 0.0], [0.0, 0.0]]], np.float32)
HAND_IOU = np.array([[[0.75, 0.9], [0.6, 1.0]], [[0.75] * 2] * 2], np.float32)
HAND_MASK = np.array([[[1, 1], [0, 1]], [[1, 1], [1, 1]]], np.float32)


def test_tan_loss_hand_worked_with_clamped_logs():
  loss = losses.tan_loss(HAND_SCORES[:1], HAND_IOU[:1], HAND_MASK[0], 0.5, 1.0)
  np.testing.assert_allclose(loss.numpy(), (LOG2 + 20.0 + 100.0) / 3.0, rtol=1e-6)


def test_tan_loss_normalises_by_the_batch_mask_count():
  loss = losses.tan_loss(HAND_SCORES, HAND_IOU, HAND_MASK, 0.5, 1.0)
  np.testing.assert_allclose(loss.numpy(), (LOG2 + 120.0 + 4.0 * LOG2) / 7.0, rtol=1e-6)
  per_example = losses.tan_loss_per_example(HAND_SCORES, HAND_IOU, HAND_MASK, 0.5, 1.0).numpy()
  np.testing.assert_allclose(per_example, [(LOG2 + 120.0) / 3.0, LOG2], rtol=1e-6)
  # Unequal mask counts: the count-weighted mean is the batch loss, the plain mean is not.
  counts = HAND_MASK.sum(axis=(1, 2))
  np.testing.assert_allclose((per_example * counts).sum() / counts.sum(), loss.numpy(), rtol=1e-6)
  assert abs(per_example.mean() - loss.numpy()) > 1.0


def test_tan_loss_matches_numpy_and_per_example_mean_on_random_maps():
  rng = np.random.default_rng(0)
  scores = rng.normal(0.0, 3.0, (4, 8, 8)).astype(np.float32)
  scores[0, 0, :3] = [40.0, -120.0, 95.0]  # saturated cells: p rounds to exactly 0 or 1
  iou_map = rng.uniform(0.0, 1.0, (4, 8, 8)).astype(np.float32)
  mask = np.triu(np.ones((8, 8), np.float32))
  mask[0, 7] = 0.0
  expected, expected_per_example = _numpy_tan_loss(scores, iou_map, mask, 0.3, 0.7)
  loss = losses.tan_loss(scores, iou_map, mask, 0.3, 0.7).numpy()
  per_example = losses.tan_loss_per_example(scores, iou_map, mask, 0.3, 0.7).numpy()
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  np.testing.assert_allclose(per_example, expected_per_example, rtol=1e-5)
  # One [N, N] mask for every example: the plain mean over examples is the reference loss,
  # which is what per-replica scaling by the global batch computes.
  np.testing.assert_allclose(per_example.mean(), loss, rtol=1e-6)
  global_scaled = tf.nn.compute_average_loss(per_example, global_batch_size=4).numpy()
  np.testing.assert_allclose(global_scaled, loss, rtol=1e-6)


@pytest.mark.shared_data
@pytest.mark.parametrize("variant", ["conv", "pool"])
def test_tan_loss_matches_the_reference(variant):
  ref = np.load(shared_path("parity", "2dtan", f"model_charades_{variant}.npz"))
  # Reference arrays are channels-first [B, 1, N, N]; `prediction` is the masked score map.
  prediction, map_mask = ref["prediction"][:, 0], ref["map_mask"][:, 0]
  min_iou, max_iou = float(ref["min_iou"]), float(ref["max_iou"])
  joint_prob = tf.sigmoid(prediction) * map_mask
  np.testing.assert_allclose(joint_prob.numpy(), ref["joint_prob"][:, 0], rtol=1e-6, atol=1e-7)
  loss = losses.tan_loss(prediction, ref["map_gt"][:, 0], map_mask, min_iou, max_iou)
  np.testing.assert_allclose(loss.numpy(), ref["loss"], rtol=1e-5)
  per_example = losses.tan_loss_per_example(prediction, ref["map_gt"][:, 0], map_mask[0],
                                            min_iou, max_iou)
  np.testing.assert_allclose(per_example.numpy().mean(), ref["loss"], rtol=1e-5)


def test_tan_loss_gradient_is_finite_and_analytic():
  scores = tf.Variable(HAND_SCORES)
  with tf.GradientTape() as tape:
    loss = losses.tan_loss(scores, HAND_IOU, HAND_MASK, 0.5, 1.0)
  grad = tape.gradient(loss, scores).numpy()
  assert np.isfinite(grad).all()
  # d/ds BCE(sigmoid(s), t) = sigmoid(s) - t on valid cells, 0 on masked ones; on the
  # saturated cells (s = 100, -200) sigmoid' is 0 in float32, so 0 there, as in PyTorch.
  probs = 1.0 / (1.0 + np.exp(-HAND_SCORES.astype(np.float64)))
  targets = np.clip((HAND_IOU - 0.5) / 0.5, 0.0, 1.0)
  unsaturated = HAND_MASK * (np.abs(HAND_SCORES) < 50)
  np.testing.assert_allclose(grad, (probs - targets) * unsaturated / HAND_MASK.sum(), atol=1e-7)

  rng = np.random.default_rng(1)
  scores = tf.Variable(rng.normal(0.0, 2.0, (2, 4, 4)).astype(np.float32))
  iou_map = rng.uniform(0.0, 1.0, (2, 4, 4)).astype(np.float32)
  mask = np.triu(np.ones((4, 4), np.float32))
  with tf.GradientTape() as tape:
    loss = losses.tan_loss(scores, iou_map, mask, 0.5, 1.0)
  probs = 1.0 / (1.0 + np.exp(-scores.numpy().astype(np.float64)))
  targets = np.clip((iou_map - 0.5) / 0.5, 0.0, 1.0)
  expected = (probs - targets) * mask / (2 * mask.sum())
  np.testing.assert_allclose(tape.gradient(loss, scores).numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_tan_loss_in_tf_function_under_mixed_precision(dtype):
  rng = np.random.default_rng(2)
  scores = rng.normal(0.0, 2.0, (3, 4, 4)).astype(np.float32)
  iou_map = rng.uniform(0.0, 1.0, (3, 4, 4)).astype(np.float32)
  mask = np.triu(np.ones((4, 4), np.float32))

  @tf.function
  def step(low_precision_scores):
    return (losses.tan_loss(low_precision_scores, iou_map, mask, 0.5, 1.0),
            losses.tan_loss_per_example(low_precision_scores, iou_map, mask, 0.5, 1.0))

  low = tf.cast(scores, dtype)
  loss, per_example = step(low)
  assert loss.dtype == tf.float32 and per_example.dtype == tf.float32
  # Same value as float32 on the rounded scores.
  rounded = tf.cast(low, tf.float32).numpy()
  np.testing.assert_allclose(loss.numpy(), _numpy_tan_loss(rounded, iou_map, mask, 0.5, 1.0)[0],
                             rtol=1e-5)


def test_tan_loss_rejects_bad_input():
  with pytest.raises(ValueError, match="scores"):
    losses.tan_loss(HAND_SCORES[0], HAND_IOU, HAND_MASK, 0.5, 1.0)
  with pytest.raises(ValueError, match="map_mask"):
    losses.tan_loss(HAND_SCORES, HAND_IOU, HAND_MASK[None], 0.5, 1.0)
  with pytest.raises(ValueError, match="max_iou"):
    losses.tan_loss(HAND_SCORES, HAND_IOU, HAND_MASK, 0.7, 0.7)


def test_lgi_regression_loss_hand_worked():
  pred = np.array([[0.2, 0.9], [2.5, 0.0]], np.float32)
  target = np.array([[0.1, 0.5], [0.0, 0.5]], np.float32)
  # Example 1: 0.5 * 0.1^2 + 0.5 * 0.4^2 = 0.085. Example 2: (2.5 - 0.5) + 0.5 * 0.5^2 = 2.125.
  per_example = losses.lgi_regression_loss_per_example(pred, target).numpy()
  np.testing.assert_allclose(per_example, [0.085, 2.125], rtol=1e-6)
  np.testing.assert_allclose(losses.lgi_regression_loss(pred, target).numpy(), 1.105, rtol=1e-6)


def test_lgi_regression_loss_matches_numpy():
  rng = np.random.default_rng(3)
  pred = rng.uniform(-1.0, 2.5, (16, 2)).astype(np.float32)
  target = rng.uniform(0.0, 1.0, (16, 2)).astype(np.float32)
  diff = np.abs(pred.astype(np.float64) - target)
  smooth = np.where(diff < 1.0, 0.5 * diff ** 2, diff - 0.5)
  # The reference: SmoothL1Loss (mean) on the starts plus SmoothL1Loss (mean) on the ends.
  expected = smooth[:, 0].mean() + smooth[:, 1].mean()
  np.testing.assert_allclose(losses.lgi_regression_loss(pred, target).numpy(), expected,
                             rtol=1e-6)


def test_lgi_attention_guidance_loss_hand_worked():
  attention = np.array([[0.5, 0.25, 0.25, 0.0], [0.0, 1.0, 0.0, 0.0]], np.float32)
  segment_mask = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], np.float32)
  # Example 1: (log 2 + log 4) / 2; example 2: -log(1e-8) on the one unattended segment.
  expected = [1.5 * LOG2, 8.0 * math.log(10.0)]
  per_example = losses.lgi_attention_guidance_loss_per_example(attention, segment_mask)
  np.testing.assert_allclose(per_example.numpy(), expected, rtol=1e-5)
  loss = losses.lgi_attention_guidance_loss(attention, segment_mask)
  np.testing.assert_allclose(loss.numpy(), np.mean(expected), rtol=1e-5)
  empty = losses.lgi_attention_guidance_loss_per_example(attention, np.zeros_like(segment_mask))
  np.testing.assert_array_equal(empty.numpy(), [0.0, 0.0])


def test_lgi_attention_guidance_loss_matches_numpy():
  rng = np.random.default_rng(4)
  logits = rng.normal(size=(5, 12))
  attention = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
  segment_mask = np.zeros((5, 12), np.float32)
  for i, (start, end) in enumerate([(0, 1), (3, 7), (11, 11), (2, 9), (5, 6)]):
    segment_mask[i, start:end + 1] = 1.0
  nll = -(segment_mask * np.log(attention.astype(np.float64) + 1e-8)).sum(1) / segment_mask.sum(1)
  np.testing.assert_allclose(
      losses.lgi_attention_guidance_loss(attention, segment_mask).numpy(), nll.mean(), rtol=1e-5)


def test_lgi_distinct_query_loss_hand_worked():
  distinct = np.array([[1, 0, 0], [0, 1, 0]], np.float32)  # A A^T = I
  same = np.array([[1, 0, 0], [1, 0, 0]], np.float32)  # A A^T = all ones
  attention = np.stack([distinct, same])
  # lambda 0.3: 2 * 0.7^2 = 0.98, and 0.98 + 2 * 1^2 off the diagonal = 2.98.
  per_example = losses.lgi_distinct_query_loss_per_example(attention, 0.3).numpy()
  np.testing.assert_allclose(per_example, [0.98, 2.98], rtol=1e-6)
  np.testing.assert_allclose(losses.lgi_distinct_query_loss(attention, 0.3).numpy(), 1.98,
                             rtol=1e-6)


def test_lgi_distinct_query_loss_matches_numpy_in_tf_function():
  rng = np.random.default_rng(5)
  logits = rng.normal(size=(4, 3, 10))
  attention = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  gram = attention @ attention.transpose(0, 2, 1)
  expected = (((gram - 0.2 * np.eye(3)) ** 2).sum(axis=(1, 2))).mean()
  loss = tf.function(losses.lgi_distinct_query_loss)(tf.constant(attention, tf.bfloat16), 0.2)
  assert loss.dtype == tf.float32
  np.testing.assert_allclose(loss.numpy(), expected, rtol=2e-2)  # bfloat16 inputs
  np.testing.assert_allclose(
      losses.lgi_distinct_query_loss(attention.astype(np.float32), 0.2).numpy(), expected,
      rtol=1e-5)


def test_lgi_losses_reject_bad_ranks():
  with pytest.raises(ValueError, match="pred_times"):
    losses.lgi_regression_loss(np.zeros(2), np.zeros((1, 2)))
  with pytest.raises(ValueError, match="segment_mask"):
    losses.lgi_attention_guidance_loss(np.zeros((2, 3)), np.zeros(3))
  with pytest.raises(ValueError, match="phrase_attention"):
    losses.lgi_distinct_query_loss(np.zeros((3, 4)), 0.3)
