"""Does the model read the sentence? Query-dependence diagnostics of one evaluated split.

With two or three annotated moments per video, a model that ignores the sentence and returns
the video's most salient event for every query still lands on *a* ground truth often, and
Rank1@0.5 alone cannot tell it from a model that grounds the sentence. Comparing Sscs
variants means something only once the models read the query (docs/sscs.md). Definitions:

  same_top1         share of same-video query pairs (unordered, i < j) whose top-1 segments
                    coincide: temporal IoU >= COINCIDE_IOU (0.9). 2D-TAN's top-1 segments
                    are cells of its N x N map, so coinciding ones are the same cell; the
                    threshold also catches LGI's regressed segments that differ by a hair.
  top1_on_other_gt  over ordered same-video pairs (i, j) whose ground truths differ (their
                    IoU < HIT_IOU, 0.5): share where query i's top-1 has IoU >= HIT_IOU with
                    query j's ground truth; top1_on_own_gt is the same over i's own ground
                    truth, on the same pairs. A query-blind model puts them close together.
  by_moments        accuracy by the number of distinct annotated moments of the query's
                    video in the split (ground truths equal after rounding to 0.1 s, the
                    annotations' precision).
  query_shuffled    each query grounded in its own video with the sentence of another query
                    of that video (`within_video_derangement`), scored against its own ground
                    truth: a model that does not read the sentence scores the same with the
                    swapped sentence as with its own. Videos with one query are left out.

A model is flagged query-blind (`query_blind_signs`, the warning of sscs-eval and of the
HTML report) when any sign of docs/sscs.md holds at QUERY_BLIND_SHARE: at least that
share of same-video pairs have coinciding top-1 segments; another query's sentence keeps at
least that share of the own-sentence accuracy; the top-1 lands on another query's ground
truth at least that share as often as on its own.

All functions are pure numpy over per-query arrays in one fixed order.
"""

from typing import Sequence

import numpy as np

from sscs_tf.scoring import metrics

COINCIDE_IOU = 0.9
HIT_IOU = 0.5
MOMENT_DECIMALS = 1
QUERY_BLIND_SHARE = 0.9


def same_video_pairs(video_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
  """(i, j) index arrays of every unordered pair i < j of queries of the same video."""
  video_ids = np.asarray(video_ids)
  i, j = np.triu_indices(len(video_ids), k=1)
  same = video_ids[i] == video_ids[j]
  return i[same], j[same]


def top1_agreement(video_ids, top1, gts, coincide_iou: float = COINCIDE_IOU,
                   hit_iou: float = HIT_IOU) -> dict:
  """same_top1 and top1_on_{other,own}_gt (module docstring) with their pair counts.

  Args:
    video_ids: `[Q]` video of each query.
    top1: `[Q, 2]` top-1 segment of each query in seconds.
    gts: `[Q, 2]` ground truth of each query in seconds.

  Shares over no pairs are NaN.
  """
  top1, gts = np.asarray(top1, np.float64), np.asarray(gts, np.float64)
  i, j = same_video_pairs(video_ids)
  coincide = metrics.temporal_iou(top1[i], top1[j]) >= coincide_iou
  differ = metrics.temporal_iou(gts[i], gts[j]) < hit_iou
  # Ordered pairs: (i, j) and (j, i) of every unordered pair whose ground truths differ.
  first = np.concatenate([i[differ], j[differ]])
  second = np.concatenate([j[differ], i[differ]])
  on_other = metrics.temporal_iou(top1[first], gts[second]) >= hit_iou
  on_own = metrics.temporal_iou(top1[first], gts[first]) >= hit_iou
  return dict(
      same_video_pairs=int(len(i)),
      same_top1=_share(coincide),
      differing_gt_pairs=int(len(first)),
      top1_on_other_gt=_share(on_other),
      top1_on_own_gt=_share(on_own))


def moments_per_video(video_ids, gts, decimals: int = MOMENT_DECIMALS) -> np.ndarray:
  """`[Q]` number of distinct ground truths (rounded to `decimals`) of each query's video."""
  video_ids = np.asarray(video_ids)
  rounded = np.round(np.asarray(gts, np.float64), decimals)
  moments = {}
  for vid, (start, end) in zip(video_ids.tolist(), rounded.tolist()):
    moments.setdefault(vid, set()).add((start, end))
  return np.array([len(moments[vid]) for vid in video_ids.tolist()], np.int64)


def accuracy_by_moments(video_ids, gts, hits) -> dict:
  """{moments: {"queries": n, "accuracy": share of hits}} keyed by the number of distinct
  moments of the query's video (as a string, for JSON), ascending."""
  counts = moments_per_video(video_ids, gts)
  hits = np.asarray(hits, bool)
  if hits.shape != counts.shape:
    raise ValueError(f"hits must be [{len(counts)}], got {hits.shape}")
  return {str(k): dict(queries=int((counts == k).sum()),
                       accuracy=float(hits[counts == k].mean()))
          for k in np.unique(counts).tolist()}


def within_video_derangement(video_ids, query_ids) -> np.ndarray:
  """`[Q]` index of the query whose sentence each query takes; -1 for a video's only query.

  Within each video, queries sorted by query id form a cycle: each takes the next one's
  sentence, the last the first's. No query keeps its own, and the result depends only on
  the ids, not on the order the split was read in.
  """
  video_ids, query_ids = list(video_ids), list(query_ids)
  if len(video_ids) != len(query_ids):
    raise ValueError(f"{len(video_ids)} video ids but {len(query_ids)} query ids")
  by_video = {}
  for index, vid in enumerate(video_ids):
    by_video.setdefault(vid, []).append(index)
  partner = np.full(len(video_ids), -1, np.int64)
  for members in by_video.values():
    if len(members) > 1:
      members = sorted(members, key=lambda k: query_ids[k])
      partner[members] = np.roll(members, -1)
  return partner


def shuffled_control(hits_own, hits_swapped, ious_own, ious_swapped, partner) -> dict:
  """The metric with each query's own sentence and with the swapped one, over the queries
  that have a partner (`partner >= 0`)."""
  used = np.asarray(partner) >= 0
  pick = lambda values: np.asarray(values, np.float64)[used]  # noqa: E731
  return dict(queries=int(used.sum()), accuracy_own=_mean(pick(hits_own)),
              accuracy_swapped=_mean(pick(hits_swapped)), mIoU_own=_mean(pick(ious_own)),
              mIoU_swapped=_mean(pick(ious_swapped)))


def _share(flags) -> float:
  return float(np.mean(flags)) if len(flags) else float("nan")


def _mean(values) -> float:
  return float(values.mean()) if len(values) else float("nan")


def flat(diagnostics: dict) -> dict:
  """The numbers as "query/<name>" scalars (TensorBoard, one-line logs)."""
  out = {f"query/{k}": v for k, v in diagnostics.items()
         if k in ("same_top1", "top1_on_other_gt", "top1_on_own_gt")}
  for key, value in diagnostics.get("query_shuffled", {}).items():
    if key != "queries":
      out[f"query/shuffled_{key}"] = value
  for moments, row in diagnostics.get("by_moments", {}).items():
    out[f"query/accuracy_{moments}_moments"] = row["accuracy"]
  return out


def query_blind_signs(result: dict, share: float = QUERY_BLIND_SHARE) -> list[str]:
  """The signs of a query-blind model (module docstring) that a `query_dependence` dict
  shows, as sentences; [] when none does. A number over no pairs or queries (NaN) shows
  nothing."""
  shuffled = result.get("query_shuffled", {})
  own, swapped = shuffled.get("accuracy_own", np.nan), shuffled.get("accuracy_swapped", np.nan)
  on_own, on_other = result.get("top1_on_own_gt", np.nan), result.get("top1_on_other_gt", np.nan)
  signs = []
  if result.get("same_top1", np.nan) >= share:
    signs.append(f"the top-1 segments of {_percent(result['same_top1'])}% of same-video "
                 "query pairs coincide")
  if swapped >= share * own:
    signs.append(f"another query's sentence keeps its accuracy ({_percent(own)}% -> "
                 f"{_percent(swapped)}%)")
  if on_other >= share * on_own:
    signs.append(f"its top-1 lands on another query's ground truth as often as on its own "
                 f"({_percent(on_other)}% vs {_percent(on_own)}%)")
  return signs


def query_blind_warning(result: dict) -> str:
  """One sentence naming the signs of a query-blind model that `result` shows; "" when
  none does."""
  signs = query_blind_signs(result)
  if not signs:
    return ""
  return (f"the model looks query-blind: {'; '.join(signs)}. Compare Sscs variants only "
          "once it reads the sentence (docs/sscs.md).")


def summary_rows(result: dict) -> list[tuple[str, str]]:
  """(label, value) rows of a `query_dependence` dict, in percent: what sscs-eval prints
  and the report shows."""
  shuffled, rule = result["query_shuffled"], result["hit_rule"]
  rows = [
      (f"same-video pairs with coinciding top-1 (IoU >= {COINCIDE_IOU})",
       f"{_percent(result['same_top1'])} of {result['same_video_pairs']}"),
      (f"top-1 on another query's ground truth (IoU >= {HIT_IOU})",
       f"{_percent(result['top1_on_other_gt'])} (own: {_percent(result['top1_on_own_gt'])}) "
       f"of {result['differing_gt_pairs']} ordered pairs"),
      (f"{rule}, own sentence -> another query's of the video",
       f"{_percent(shuffled['accuracy_own'])} -> {_percent(shuffled['accuracy_swapped'])} "
       f"({shuffled['queries']} queries)"),
  ]
  for moments, row in result["by_moments"].items():
    rows.append((f"{rule}, videos with {moments} moment(s)",
                 f"{_percent(row['accuracy'])} ({row['queries']} queries)"))
  return rows


def _percent(value: float) -> str:
  return "n/a" if value != value else f"{100 * value:.2f}"
