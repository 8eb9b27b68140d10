"""Break-downs of predictions against hand-computed values and independent numpy code."""

import numpy as np
import pytest

from sscs_tf.scoring import metrics
from sscs_tf.report import breakdown


def _prediction(duration, gt, ious):
  return dict(duration=duration, gt=gt, segments=[[0.0, 1.0]] * len(ious), ious=ious)


# Three queries: IoUs of the kept segments, best first; the third kept only one segment.
PREDICTIONS = [
    _prediction(10.0, [0.0, 2.0], [0.6, 0.2, 0.9]),  # start 0.0, length 0.2
    _prediction(20.0, [10.0, 18.0], [0.3, 0.75]),    # start 0.5, length 0.4
    _prediction(40.0, [30.0, 34.0], [0.5]),          # start 0.75, length 0.1
]


def test_rank_curve_by_hand():
  curve = breakdown.rank_curve(PREDICTIONS, ranks=(1, 2, 5), thresholds=[0.25, 0.5, 0.7])
  # Rank1: top-1 IoUs 0.6, 0.3, 0.5 -> > 0.25: 3; > 0.5: 1 (0.5 is not > 0.5); > 0.7: 0.
  np.testing.assert_allclose(curve[1], [3 / 3, 1 / 3, 0.0])
  # Rank2: best of the first two: 0.6, 0.75, 0.5 -> > 0.7: 1.
  np.testing.assert_allclose(curve[2], [1.0, 2 / 3, 1 / 3])
  # Rank5 sees the third query's missing segments as misses and the first's 0.9.
  np.testing.assert_allclose(curve[5], [1.0, 2 / 3, 2 / 3])


def test_rank_curve_agrees_with_the_metric_table():
  rng = np.random.default_rng(0)
  gt = np.sort(rng.uniform(0, 30, (200, 2)), axis=1)
  segments = np.sort(rng.uniform(0, 30, (200, 5, 2)), axis=2)
  ious = metrics.temporal_iou(segments, gt[:, None, :])
  predictions = [dict(duration=30.0, gt=g.tolist(), segments=s.tolist(), ious=i.tolist())
                 for g, s, i in zip(gt, segments, ious)]
  curve = breakdown.rank_curve(predictions, ranks=(1, 5), thresholds=[0.3, 0.5, 0.7])
  table = metrics.rank_n_at_m(segments, gt, ranks=(1, 5), thresholds=(0.3, 0.5, 0.7))
  for n in (1, 5):
    for j, m in enumerate(("0.3", "0.5", "0.7")):
      assert curve[n][j] == pytest.approx(table[f"Rank{n}@{m}"])


def test_histogram_and_accuracy_by_length_and_start():
  counts, edges = breakdown.top1_histogram(PREDICTIONS, bins=4)
  np.testing.assert_array_equal(counts, [0, 1, 2, 0])  # 0.3 | 0.5, 0.6
  np.testing.assert_allclose(edges, [0, 0.25, 0.5, 0.75, 1.0])
  start, length = breakdown.relative_gt(PREDICTIONS)
  np.testing.assert_allclose(start, [0.0, 0.5, 0.75])
  np.testing.assert_allclose(length, [0.2, 0.4, 0.1])
  correct = breakdown.top1_correct(PREDICTIONS)
  np.testing.assert_array_equal(correct, [True, False, False])
  accuracy, total = breakdown.accuracy_by(length, correct, edges=[0.0, 0.15, 0.3, 1.0])
  np.testing.assert_array_equal(total, [1, 1, 1])
  np.testing.assert_allclose(accuracy, [0.0, 1.0, 0.0])
  accuracy, total = breakdown.accuracy_by(start, correct, edges=[0.0, 0.5, 0.6, 1.0])
  np.testing.assert_array_equal(total, [1, 1, 1])
  np.testing.assert_allclose(accuracy, [1.0, 0.0, 0.0])
  accuracy, total = breakdown.accuracy_by(start, correct, edges=[0.0, 0.9, 1.0])
  assert np.isnan(accuracy[1]) and total[1] == 0  # an empty bin has no accuracy


def test_interval_distribution_bins_start_and_length():
  hits, accuracy, total = breakdown.interval_distribution(PREDICTIONS)
  assert total.sum() == 3 and hits.sum() == 1
  assert total[0, 2] == 1 and hits[0, 2] == 1  # start 0.0-0.1, length 0.2-0.3
  assert total[5, 4] == 1 and total[7, 1] == 1
  assert accuracy[0, 2] == 1.0 and accuracy[5, 4] == 0.0 and np.isnan(accuracy[9, 9])


def test_a_query_without_kept_segments_counts_as_a_miss():
  predictions = PREDICTIONS + [_prediction(10.0, [1.0, 2.0], [])]
  np.testing.assert_allclose(breakdown.iou_matrix(predictions, 2)[3], [0.0, 0.0])
  assert breakdown.rank_curve(predictions, (1,), [0.25])[1][0] == pytest.approx(3 / 4)
