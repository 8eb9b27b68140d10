import math

import numpy as np
import pytest

from sscs_tf.scoring import diagnostics

# Six queries: video A has three (two share a ground truth), B one, C two.
VIDEOS = ["A", "A", "A", "B", "C", "C"]
QUERY_IDS = ["a2", "a0", "a1", "b0", "c1", "c0"]
GTS = [[0, 10], [20, 30], [20, 30], [0, 5], [0, 4], [6, 10]]
TOP1 = [[0, 10], [0, 10], [21, 30], [0, 5], [0, 4], [0, 4.2]]


def test_top1_agreement_by_hand():
  result = diagnostics.top1_agreement(VIDEOS, TOP1, GTS)
  # Pairs (0,1) (0,2) (1,2) (4,5); top-1 IoUs 1, 0, 0, 4 / 4.2 = 0.952: two coincide.
  assert (result["same_video_pairs"], result["same_top1"]) == (4, 0.5)
  # Ground truths differ for (0,1), (0,2), (4,5): six ordered pairs. Query 1's top-1 is
  # query 0's ground truth, query 5's is query 4's: 2 of 6 on another's; own: 0->, 0->,
  # 2 (IoU 0.9), 4: 4 of 6.
  assert result["differing_gt_pairs"] == 6
  assert result["top1_on_other_gt"] == pytest.approx(2 / 6, abs=0)
  assert result["top1_on_own_gt"] == pytest.approx(4 / 6, abs=0)


def test_no_pairs_give_nan_shares():
  result = diagnostics.top1_agreement(["A", "B"], [[0, 1], [0, 1]], [[0, 1], [0, 1]])
  assert result["same_video_pairs"] == 0 and math.isnan(result["same_top1"])
  assert math.isnan(result["top1_on_other_gt"])


def test_accuracy_by_moments_by_hand():
  assert diagnostics.moments_per_video(VIDEOS, GTS).tolist() == [2, 2, 2, 1, 2, 2]
  # Ground truths equal after rounding to 0.1 s are one moment.
  assert diagnostics.moments_per_video(["A", "A"], [[0, 1.01], [0, 0.99]]).tolist() == [1, 1]
  hits = [True, False, True, True, True, False]
  assert diagnostics.accuracy_by_moments(VIDEOS, GTS, hits) == {
      "1": {"queries": 1, "accuracy": 1.0}, "2": {"queries": 5, "accuracy": 0.6}}


def test_within_video_derangement_by_hand():
  # A in query-id order: a0 (1) -> a1 (2) -> a2 (0) -> a0; B alone; C: c0 (5) <-> c1 (4).
  partner = diagnostics.within_video_derangement(VIDEOS, QUERY_IDS)
  assert partner.tolist() == [1, 2, 0, -1, 5, 4]


def test_derangement_is_a_derangement_within_videos_whatever_the_order():
  rng = np.random.default_rng(0)
  videos = rng.choice(list("ABCDE"), 40).tolist()
  ids = [f"q{i:02d}" for i in range(40)]
  partner = diagnostics.within_video_derangement(videos, ids)
  for i, k in enumerate(partner):
    if videos.count(videos[i]) == 1:
      assert k == -1
    else:
      assert k != i and videos[k] == videos[i]
  used = partner[partner >= 0]
  assert sorted(used.tolist()) == sorted(np.nonzero(partner >= 0)[0].tolist())
  order = rng.permutation(40)
  again = diagnostics.within_video_derangement([videos[i] for i in order],
                                               [ids[i] for i in order])
  by_id = {ids[i]: ids[k] for i, k in enumerate(partner) if k >= 0}
  assert {ids[order[i]]: ids[order[k]] for i, k in enumerate(again) if k >= 0} == by_id


def test_shuffled_control_by_hand():
  partner = [1, 2, 0, -1, 5, 4]
  result = diagnostics.shuffled_control(
      hits_own=[1, 0, 1, 1, 1, 0], hits_swapped=[0, 0, 1, 1, 0, 0],
      ious_own=[1, 0, 0.9, 1, 1, 0], ious_swapped=[0, 0, 0.5, 1, 0.2, 0], partner=partner)
  assert result == dict(queries=5, accuracy_own=0.6, accuracy_swapped=0.2,
                        mIoU_own=pytest.approx(2.9 / 5), mIoU_swapped=pytest.approx(0.7 / 5))


def _iou(a, b):
  inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
  union = (a[1] - a[0]) + (b[1] - b[0]) - inter
  return inter / union if inter > 0 else 0.0


def _reference(videos, top1, gts):
  """Plain loops over every pair: an independent reading of the definitions."""
  pairs = coincide = ordered = other = own = 0
  for i in range(len(videos)):
    for j in range(len(videos)):
      if i == j or videos[i] != videos[j]:
        continue
      if i < j:
        pairs += 1
        coincide += _iou(top1[i], top1[j]) >= 0.9
      if _iou(gts[i], gts[j]) < 0.5:
        ordered += 1
        other += _iou(top1[i], gts[j]) >= 0.5
        own += _iou(top1[i], gts[i]) >= 0.5
  return dict(same_video_pairs=pairs, same_top1=coincide / pairs, differing_gt_pairs=ordered,
              top1_on_other_gt=other / ordered, top1_on_own_gt=own / ordered)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top1_agreement_matches_plain_loops(seed):
  rng = np.random.default_rng(seed)
  videos = rng.choice(list("ABCD"), 30).tolist()
  # Segments on a coarse grid, so that equal and near-equal segments occur.
  starts = rng.integers(0, 8, (2, 30))
  lengths = rng.integers(1, 5, (2, 30))
  top1 = np.stack([starts[0], starts[0] + lengths[0]], 1).astype(float)
  gts = np.stack([starts[1], starts[1] + lengths[1]], 1).astype(float)
  got = diagnostics.top1_agreement(videos, top1, gts)
  expected = _reference(videos, top1.tolist(), gts.tolist())
  assert got == pytest.approx(expected, abs=1e-12)


def test_flat_names_the_scalars():
  result = diagnostics.top1_agreement(VIDEOS, TOP1, GTS)
  result["by_moments"] = {"2": {"queries": 5, "accuracy": 0.6}}
  result["query_shuffled"] = dict(queries=5, accuracy_own=0.6, accuracy_swapped=0.2)
  assert diagnostics.flat(result) == {
      "query/same_top1": 0.5, "query/top1_on_other_gt": 2 / 6, "query/top1_on_own_gt": 4 / 6,
      "query/shuffled_accuracy_own": 0.6, "query/shuffled_accuracy_swapped": 0.2,
      "query/accuracy_2_moments": 0.6}


def _fake_predict_fn(num_clips, reads_words):
  """A 2D-TAN-like forward pass: one peak cell per query, chosen from the sentence's word ids
  (reads_words) or the same for every query (query-blind)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  def predict(batch):
    if reads_words:
      start = tf.reduce_sum(batch["word_ids"], axis=1) % (num_clips // 2)
    else:
      start = tf.fill(tf.shape(batch["num_words"]), 3)
    cells = start * num_clips + start + num_clips // 4
    probs = tf.one_hot(cells, num_clips * num_clips) * 0.9 + 0.05
    size = tf.shape(batch["num_words"])[0]
    return {"probs": tf.reshape(probs, [size, num_clips, num_clips]),
            "loss": tf.zeros([size])}

  return predict


@pytest.mark.parametrize("reads_words", [False, True])
def test_evaluation_grounds_each_query_with_its_partners_sentence(demo_records, reads_words):
  from sscs_tf.evaluate import eval_lib  # pylint: disable=import-outside-toplevel
  from tests.testing_train import tiny_config  # pylint: disable=import-outside-toplevel
  config = tiny_config(demo_records)
  predict = _fake_predict_fn(config.data.map_size, reads_words)
  table, per_query = eval_lib.evaluate(None, config, "test", predict_fn=predict,
                                       with_predictions=True, query_diagnostics=True)
  result = table["query_dependence"]
  videos = [p["video_id"] for p in per_query]
  partner = diagnostics.within_video_derangement(videos, [p["query_id"] for p in per_query])
  gts = np.array([p["gt"] for p in per_query])
  top1 = np.array([p["segments"][0] for p in per_query])
  own_hits = [diagnostics.metrics.temporal_iou(top1[i], gts[i]) > 0.5
              for i in range(len(gts)) if partner[i] >= 0]
  # With the partner's sentence, a query's top-1 is the partner's own top-1 (same video,
  # same duration, the output depends only on the words).
  swapped_hits = [diagnostics.metrics.temporal_iou(top1[partner[i]], gts[i]) > 0.5
                  for i in range(len(gts)) if partner[i] >= 0]
  shuffled = result["query_shuffled"]
  assert shuffled["queries"] == len(own_hits) > 10
  assert shuffled["accuracy_own"] == pytest.approx(np.mean(own_hits), abs=1e-12)
  assert shuffled["accuracy_swapped"] == pytest.approx(np.mean(swapped_hits), abs=1e-12)
  signs = diagnostics.query_blind_signs(result)
  if not reads_words:  # query-blind: every pair coincides and the swap changes nothing
    assert result["same_top1"] == 1.0
    assert shuffled["accuracy_swapped"] == shuffled["accuracy_own"]
    assert len(signs) == 3  # coinciding top-1, same accuracy, as often on another's GT
  else:
    assert result["same_top1"] < 1.0


def _check(same_top1=0.5, own=0.6, swapped=0.2, on_own=0.6, on_other=0.1):
  """A `query_dependence` dict with the numbers the query-blind signs read."""
  return dict(same_video_pairs=40, same_top1=same_top1, differing_gt_pairs=30,
              top1_on_other_gt=on_other, top1_on_own_gt=on_own, hit_rule="Rank1@0.5",
              by_moments={"1": {"queries": 10, "accuracy": 0.7},
                          "3": {"queries": 30, "accuracy": 0.25}},
              query_shuffled=dict(queries=36, accuracy_own=own, accuracy_swapped=swapped,
                                  mIoU_own=0.5, mIoU_swapped=0.3))


@pytest.mark.parametrize("numbers, signs", [
    ({}, []),  # reads the sentence
    # At and just below QUERY_BLIND_SHARE (0.9) of each sign.
    ({"same_top1": 0.9}, ["top-1 segments of 90.00% of same-video query pairs coincide"]),
    ({"same_top1": 0.89}, []),
    ({"own": 0.5, "swapped": 0.46}, ["another query's sentence keeps its accuracy "
                                      "(50.00% -> 46.00%)"]),
    ({"own": 0.5, "swapped": 0.44}, []),
    ({"on_own": 0.4, "on_other": 0.37}, ["lands on another query's ground truth as often as "
                                         "on its own (37.00% vs 40.00%)"]),
    ({"on_own": 0.4, "on_other": 0.35}, []),
    # Nothing to compare (no pairs, no partner): no sign.
    ({"same_top1": math.nan, "own": math.nan, "swapped": math.nan, "on_own": math.nan,
      "on_other": math.nan}, []),
    # The demo study's baseline (docs/sscs.md): 81% coinciding, 33.79 -> 33.92 swapped.
    ({"same_top1": 0.81, "own": 0.3379, "swapped": 0.3392}, ["keeps its accuracy"]),
])
def test_query_blind_signs_at_the_threshold(numbers, signs):
  got = diagnostics.query_blind_signs(_check(**numbers))
  assert len(got) == len(signs) and all(s in g for s, g in zip(signs, got)), got
  warning = diagnostics.query_blind_warning(_check(**numbers))
  assert (warning.startswith("the model looks query-blind: ") and warning.endswith(
      "(docs/sscs.md).")) if signs else warning == ""


def test_summary_rows_and_the_eval_table():
  from sscs_tf.evaluate import eval_lib  # pylint: disable=import-outside-toplevel
  rows = diagnostics.summary_rows(_check(same_top1=math.nan))
  assert rows == [
      ("same-video pairs with coinciding top-1 (IoU >= 0.9)", "n/a of 40"),
      ("top-1 on another query's ground truth (IoU >= 0.5)",
       "10.00 (own: 60.00) of 30 ordered pairs"),
      ("Rank1@0.5, own sentence -> another query's of the video", "60.00 -> 20.00 (36 queries)"),
      ("Rank1@0.5, videos with 1 moment(s)", "70.00 (10 queries)"),
      ("Rank1@0.5, videos with 3 moment(s)", "25.00 (30 queries)")]
  reads = eval_lib.query_dependence_table(_check()).splitlines()
  assert reads[:2] == ["| query dependence | value |", "|---|---|"] and len(reads) == 7
  assert reads[4] == ("| Rank1@0.5, own sentence -> another query's of the video | "
                      "60.00 -> 20.00 (36 queries) |")
  blind = eval_lib.query_dependence_table(_check(same_top1=0.95)).splitlines()
  assert blind[2] == "| same-video pairs with coinciding top-1 (IoU >= 0.9) | 95.00 of 40 |"
  assert len(blind) == 8 and blind[-1].startswith("Warning: the model looks query-blind: the "
                                                  "top-1 segments of 95.00% of same-video")
