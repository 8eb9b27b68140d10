"""Tests of sscs_tf.scoring.metrics: hand-worked cases, a loop re-implementation, reference
parity."""

import json

import numpy as np
import pytest

from sscs_tf.scoring import metrics
from tests.testing import shared_path


def _loop_top_segments(score_map, duration, thresh, top_k=5):
  """Greedy NMS one candidate at a time, in plain Python (ties: row-major order)."""
  n = score_map.shape[0]
  cells = sorted(((s, e) for s in range(n) for e in range(s, n)),
                 key=lambda c: (-score_map[c], c[0] * n + c[1]))
  kept = []
  for s, e in cells:
    seg = (float(np.float32(s) / np.float32(n) * np.float32(duration)),
           float(np.float32(e + 1) / np.float32(n) * np.float32(duration)))
    if all(_loop_iou(seg, k) <= thresh for k in kept):
      kept.append(seg)
      if len(kept) == top_k:
        break
  return kept


def _loop_iou(a, b):
  inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
  return inter / (a[1] - a[0] + b[1] - b[0] - inter) if inter > 0 else 0.0


def _loop_rank(kept_lists, gts, n, m):
  return np.mean([any(_loop_iou(seg, gt) > m for seg in kept[:n])
                  for kept, gt in zip(kept_lists, gts)])


def test_temporal_iou_hand_worked():
  pred = np.array([[0, 4], [0, 4], [0, 4], [0, 4], [2, 2], [4, 1], [3, 3]], np.float64)
  gt = np.array([[2, 6], [5, 9], [4, 8], [0, 4], [0, 4], [0, 4], [3, 3]], np.float64)
  # overlap 2 of union 6; disjoint; touching; identical; a point inside; reversed; two
  # identical points (0 / 0 in the reference's formula).
  np.testing.assert_allclose(metrics.temporal_iou(pred, gt), [1 / 3, 0, 0, 1, 0, 0, 0])
  # Broadcasting: one segment against several.
  np.testing.assert_allclose(metrics.temporal_iou([1.0, 3.0], [[0, 2], [1, 3], [2, 5]]),
                             [1 / 3, 1, 0.25])


def test_score_maps_to_segments_order_and_seconds():
  # N = 2, 10 s: cells (0,0) = [0, 5], (0,1) = [0, 10], (1,1) = [5, 10]; (1,0) is not a span.
  score_map = np.array([[[0.3, 0.9], [0.99, 0.5]]], np.float32)
  segments, scores = metrics.score_maps_to_segments(score_map, [10.0])
  np.testing.assert_array_equal(segments[0], [[0, 10], [5, 10], [0, 5]])
  np.testing.assert_array_equal(scores[0], np.float32([0.9, 0.5, 0.3]))
  assert segments.dtype == np.float32
  # Ties keep row-major order: earlier start first, then earlier end.
  segments, _ = metrics.score_maps_to_segments(np.full((1, 2, 2), 0.5), [10.0])
  np.testing.assert_array_equal(segments[0], [[0, 5], [0, 10], [5, 10]])
  # A validity mask removes cells from the candidates.
  segments, _ = metrics.score_maps_to_segments(score_map, [10.0], valid_mask=[[1, 0], [0, 1]])
  np.testing.assert_array_equal(segments[0], [[5, 10], [0, 5]])


def test_greedy_nms_keeps_iou_equal_to_threshold():
  candidates = np.array([[[0, 10], [0, 9], [5, 10], [6, 10], [0, 4]]], np.float64)
  # [0,9] vs [0,10]: 0.9 > 0.5 dropped; [5,10] vs [0,10]: exactly 0.5, kept; [6,10]: 0.8
  # with [5,10], dropped; [0,4]: 0.4 and 0, kept. Three survive: two NaN rows.
  kept, num_kept = metrics.greedy_nms(candidates, thresh=0.5, top_k=5)
  np.testing.assert_array_equal(num_kept, [3])
  np.testing.assert_array_equal(kept[0, :3], [[0, 10], [5, 10], [0, 4]])
  assert np.isnan(kept[0, 3:]).all()


def test_greedy_nms_stops_at_top_k():
  disjoint = np.array([[[i, i + 1] for i in range(8)]], np.float64)
  kept, num_kept = metrics.greedy_nms(disjoint, thresh=0.5, top_k=5)
  np.testing.assert_array_equal(num_kept, [5])
  np.testing.assert_array_equal(kept[0], disjoint[0, :5])


def test_rank_n_at_m_and_r_at_1_hand_worked():
  kept = [np.array([[0, 10], [20, 30]]),  # top-1 IoU 1
          np.array([[0, 10], [5, 15]]),  # top-1 IoU 1/3, second IoU 1
          np.array([[0, 10]])]  # IoU exactly 0.5 with a ground truth twice the video
  gt = np.array([[0, 10], [5, 15], [0, 20]], np.float64)
  expected = {"Rank1@0.5": 1 / 3, "Rank1@0.7": 1 / 3, "Rank5@0.5": 2 / 3, "Rank5@0.7": 2 / 3,
              "mIoU": (1 + 1 / 3 + 0.5) / 3}
  table = metrics.rank_n_at_m(kept, gt)
  assert table.keys() == expected.keys()
  for key, value in expected.items():
    assert table[key] == pytest.approx(value, abs=1e-12), key
  padded = np.full((3, 5, 2), np.nan)
  for i, k in enumerate(kept):
    padded[i, :len(k)] = k
  assert metrics.rank_n_at_m(padded, gt) == table
  # LGI's R@1 counts IoU >= m: the 0.5 query is a hit at 0.5.
  top1 = np.array([k[0] for k in kept])
  lgi = metrics.r_at_1(top1, gt)
  assert lgi == pytest.approx({"R1@0.3": 1.0, "R1@0.5": 2 / 3, "R1@0.7": 1 / 3,
                               "mIoU": (1 + 1 / 3 + 0.5) / 3}, abs=1e-12)
  # A reversed prediction scores 0, as in LGI's IoU.
  assert metrics.r_at_1([[10.0, 0.0]], [[0.0, 10.0]])["mIoU"] == 0.0


def test_evaluator_edge_cases_by_hand():
  evaluator = metrics.RankEvaluator(nms_thresh=0.5)
  # N = 1: one candidate [0, 10]; ground truth [0, 5]: IoU 0.5, not > 0.5.
  evaluator.update(np.array([[[0.7]]]), [10.0], [[0.0, 5.0]], ["one-cell"])
  # Same single cell, ground truth twice the video: IoU 0.5; and a zero-length one: IoU 0.
  evaluator.update(np.array([[[0.2]], [[0.9]]]), [10.0, 8.0], [[0.0, 20.0], [4.0, 4.0]],
                   ["too-long", "point"])
  table = evaluator.result()
  assert table == pytest.approx({"Rank1@0.5": 0.0, "Rank1@0.7": 0.0, "Rank5@0.5": 0.0,
                                 "Rank5@0.7": 0.0, "mIoU": 1 / 3}, abs=1e-12)
  rows = evaluator.per_query()
  assert [r["query_id"] for r in rows] == ["one-cell", "too-long", "point"]
  assert rows[0]["segments"] == [[0.0, 10.0]] and rows[0]["ious"] == [0.5]
  assert rows[2]["ious"] == [0.0] and len(evaluator) == 3


def test_evaluator_ties_and_fewer_than_top_k():
  # N = 2, all scores equal: order [0,5], [0,10], [5,10]. [0,10] has IoU 0.5 with [0,5]
  # (kept at thresh 0.5, dropped at 0.45); [5,10] is disjoint from [0,5].
  evaluator = metrics.RankEvaluator(nms_thresh=0.5)
  evaluator.update(np.full((1, 2, 2), 0.5), [10.0], [[5.0, 10.0]])
  assert evaluator.per_query()[0]["segments"] == [[0, 5], [0, 10], [5, 10]]
  assert evaluator.result()["Rank1@0.5"] == 0.0 and evaluator.result()["Rank5@0.7"] == 1.0
  strict = metrics.RankEvaluator(nms_thresh=0.45)
  strict.update(np.full((1, 2, 2), 0.5), [10.0], [[5.0, 10.0]])
  assert strict.per_query()[0]["segments"] == [[0, 5], [5, 10]]


def test_per_query_scores_are_the_kept_cells_scores():
  # N = 2, duration 10: cells [0,5] 0.2, [0,10] 0.9, [5,10] 0.5. At 0.5 all three are kept,
  # best first; at 0.4 [5,10] and [0,5] (IoU 0.5 with [0,10]) are dropped.
  score_map = np.array([[[0.2, 0.9], [0.0, 0.5]]], np.float32)
  for thresh, segments, scores in ((0.5, [[0, 10], [5, 10], [0, 5]], [0.9, 0.5, 0.2]),
                                   (0.4, [[0, 10]], [0.9])):
    evaluator = metrics.RankEvaluator(nms_thresh=thresh)
    evaluator.update(score_map, [10.0], [[0.0, 5.0]])
    row = evaluator.per_query()[0]
    assert row["segments"] == segments
    assert row["scores"] == pytest.approx(scores)


def test_per_query_scores_on_large_maps_with_the_full_list_redone():
  # N = 32 has 528 candidates, past the 64-candidate prefix; thresh 0.05 keeps so few in the
  # prefix that most queries are redone on their whole list.
  rng = np.random.default_rng(3)
  num_clips, duration = 32, 64.0
  maps = rng.uniform(size=(6, num_clips, num_clips)).astype(np.float32)
  evaluator = metrics.RankEvaluator(nms_thresh=0.05)
  evaluator.update(maps, [duration] * 6, [[0.0, 8.0]] * 6)
  for score_map, row in zip(maps, evaluator.per_query()):
    cells = np.rint(np.array(row["segments"]) / duration * num_clips).astype(int)
    expected = score_map[cells[:, 0], cells[:, 1] - 1]
    np.testing.assert_array_equal(np.float32(row["scores"]), expected)
    assert row["scores"] == sorted(row["scores"], reverse=True)


@pytest.mark.parametrize("num_clips,thresh,quantised", [(16, 0.5, False), (16, 0.05, False),
                                                        (16, 0.4, True), (32, 0.5, True)])
def test_evaluator_matches_loop_implementation(num_clips, thresh, quantised):
  rng = np.random.default_rng(num_clips)
  num = 40
  maps = rng.random((num, num_clips, num_clips)).astype(np.float32)
  if quantised:  # many ties, also across the prefix cut of the partial sort
    maps = np.round(maps * 3) / 3
  durations = rng.uniform(5.0, 100.0, num)
  starts = rng.uniform(0.0, 0.7, num) * durations
  gts = np.stack([starts, starts + rng.uniform(0.05, 0.3, num) * durations], axis=1)
  evaluator = metrics.RankEvaluator(thresh, thresholds=(0.1, 0.3, 0.5, 0.7))
  for i in range(0, num, 16):  # uneven batches
    evaluator.update(maps[i:i + 16], durations[i:i + 16], gts[i:i + 16])
  expected = [_loop_top_segments(m, d, thresh) for m, d in zip(maps, durations)]
  for row, kept in zip(evaluator.per_query(), expected):
    np.testing.assert_array_equal(row["segments"], kept)
  table = evaluator.result()
  for n in (1, 5):
    for m in (0.1, 0.3, 0.5, 0.7):
      assert table[f"Rank{n}@{m:g}"] == _loop_rank(expected, gts, n, m)
  miou = np.mean([_loop_iou(kept[0], gt) for kept, gt in zip(expected, gts)])
  assert table["mIoU"] == pytest.approx(miou, rel=1e-12)


@pytest.mark.shared_data
def test_evaluator_matches_the_reference():
  data = np.load(shared_path("parity", "2dtan", "eval_charades.npz"))
  with open(shared_path("parity", "2dtan", "eval_expected.json")) as f:
    expected = json.load(f)["charades"]
  thresholds = [float(m) for m in expected["tious"].split(",")]
  ranks = [int(n) for n in expected["recalls"].split(",")]
  evaluator = metrics.RankEvaluator(expected["nms_thresh"], thresholds, ranks)
  probs = data["probs"][:, 0]  # channels-first [Q, 1, N, N]
  assert probs.shape[1] == expected["N"]
  for i in range(0, len(probs), 64):
    evaluator.update(probs[i:i + 64], data["durations"][i:i + 64], data["gt"][i:i + 64])
  table = evaluator.result()
  # The reference's table is indexed [threshold][rank].
  for i, m in enumerate(thresholds):
    for j, n in enumerate(ranks):
      assert table[f"Rank{n}@{m:g}"] == expected["rank"][i][j], (n, m)
  assert table["mIoU"] == pytest.approx(expected["miou"], rel=1e-12)
  for row, kept in zip(evaluator.per_query(), expected["nms_top5"]):
    assert len(row["segments"]) == len(kept)
    np.testing.assert_allclose(row["segments"], kept, atol=1e-4, rtol=0)


def test_bad_input_is_named():
  evaluator = metrics.RankEvaluator(0.5)
  with pytest.raises(ValueError, match="before any update"):
    evaluator.result()
  maps = np.zeros((2, 4, 4), np.float32)
  with pytest.raises(ValueError, match="gt needs finite start <= end"):
    evaluator.update(maps, [10.0, 10.0], [[0.0, 1.0], [5.0, 2.0]])
  with pytest.raises(ValueError, match="durations"):
    evaluator.update(maps, [10.0, 0.0], [[0.0, 1.0], [1.0, 2.0]])
  with pytest.raises(ValueError, match="score_maps must be"):
    evaluator.update(np.zeros((2, 4, 3)), [10.0, 10.0], [[0.0, 1.0], [1.0, 2.0]])
  with pytest.raises(ValueError, match="non-finite"):
    evaluator.update(np.full((2, 4, 4), np.nan), [10.0, 10.0], [[0.0, 1.0], [1.0, 2.0]])
  with pytest.raises(ValueError, match="query_ids"):
    evaluator.update(maps, [10.0, 10.0], [[0.0, 1.0], [1.0, 2.0]], ["a"])
  evaluator.update(maps, [10.0, 10.0], [[0.0, 1.0], [1.0, 2.0]])
  with pytest.raises(ValueError, match="N changed"):
    evaluator.update(np.zeros((1, 8, 8)), [10.0], [[0.0, 1.0]])
  with pytest.raises(ValueError, match="valid_mask"):
    metrics.score_maps_to_segments(maps, [1.0, 1.0], valid_mask=np.zeros((4, 4)))


@pytest.mark.shared_data
def test_r_at_1_reproduces_the_reference_evaluator():
  """The authors' TALLEvaluator on 200 predictions, 8 of them with an IoU exactly on a
  threshold in float64 and 10 ground truths ending past the duration."""
  data = np.load(shared_path("parity", "lgi", "eval_charades.npz"))
  with open(shared_path("parity", "lgi", "eval_expected.json")) as f:
    expected = json.load(f)["charades"]
  # As compute_status: float64 products of the float32 outputs and the durations.
  pred = data["pred"].astype(np.float64) * data["durations"][:, None]
  np.testing.assert_array_equal(pred, data["pred_seconds"])
  ious = metrics.span_iou(pred, data["gt"])
  np.testing.assert_array_equal(ious, data["ious"])
  np.testing.assert_array_equal(ious, expected["ious"])
  ties = np.array(expected["kind"]) == "iou_tie"
  assert ties.sum() == 8 and set(ious[ties]) <= {0.1, 0.3, 0.5, 0.7}
  table = metrics.r_at_1(pred, data["gt"], expected["tious"])
  for m in expected["tious"]:
    assert table[f"R1@{m:g}"] == expected["R1"][f"R1-{m}"]
    assert round(table[f"R1@{m:g}"] * expected["n"]) == expected["R1_counts"][f"R1-{m}"]
  assert table["mIoU"] == expected["mIoU"]
  # With > instead of >= the ties would miss (the values the authors' evaluation gives).
  strict = [float(np.mean(ious > m)) for m in expected["tious"]]
  assert strict == [0.805, 0.71, 0.55, 0.285]
  # A reversed ground truth (kept by LGI's protocol) scores 0 rather than raising.
  assert metrics.r_at_1([[1.0, 5.0]], [[6.0, 2.0]])["mIoU"] == 0.0
