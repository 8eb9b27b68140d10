"""Evaluation metrics: temporal IoU, score map -> segments, greedy NMS, Rank n@m, R@1, mIoU.

Pure numpy, vectorised over queries, so a full test split evaluates in milliseconds.

2D-TAN (Rank n@m), as the reference computes it:
  1. All N x N cells sorted by score, descending; cells with s > e dropped.
  2. Cell (s, e) -> seconds [s / N * dur, (e + 1) / N * dur], computed in float32.
  3. Greedy NMS in score order keeps at most top_k = 5 segments; a candidate is dropped
     when its IoU with a kept one is > thresh (kept when equal).
  4. Rank n@m: fraction of queries where one of the first n kept segments has IoU > m
     (strict); mIoU: mean IoU of the top-1 segment.
LGI (R@1): one predicted segment per query, hit when IoU >= m (not strict).

Choices where the reference is silent or undefined:
  * Ties in score: the cell with the smaller row-major index comes first (earlier start,
    then earlier end). The reference uses an unstable sort, so it agrees on maps without ties.
  * IoU is 0 whenever the intersection is empty, which covers a zero-length ground truth
    (a point never counts as a hit, even inside a segment; the reference gives 0 there too,
    and NaN when both are points), and a reversed prediction (start > end).
  * Ground truth is not clipped to the video: data preparation clips it; an annotation
    running past the end simply caps the reachable IoU.
  * Fewer than top_k segments can survive NMS (small N, high overlap): Rank n@m then looks
    at the ones that did; the padded rows of `kept` are NaN.
"""

from typing import Hashable, Optional, Sequence

import numpy as np


def _threshold_name(m: float) -> str:
  return f"{m:g}"


def temporal_iou(a, b) -> np.ndarray:
  """IoU of intervals `a [..., 2]` and `b [..., 2]` (broadcast), float64; 0 when disjoint."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  inter = np.maximum(0.0, np.minimum(a[..., 1], b[..., 1]) - np.maximum(a[..., 0], b[..., 0]))
  # len_a + len_b - inter is the union whenever inter > 0, the only case where it matters.
  union = (a[..., 1] - a[..., 0]) + (b[..., 1] - b[..., 0]) - inter
  out = np.zeros(np.broadcast(a[..., 0], b[..., 0]).shape)
  np.divide(inter, union, out=out, where=(inter > 0) & (union > 0))
  return out


def candidate_cells(num_clips: int, valid_mask=None) -> tuple[np.ndarray, np.ndarray]:
  """Start and end clip indices (row-major order) of the cells that can be proposals.

  Args:
    num_clips: N, the map size.
    valid_mask: optional `[N, N]` map; when given, only its nonzero cells are candidates.
      The reference ranks every cell with s <= e (invalid ones have score 0 and sort last).
  """
  starts, ends = np.triu_indices(num_clips)
  if valid_mask is not None:
    valid_mask = np.asarray(valid_mask)
    if valid_mask.shape != (num_clips, num_clips):
      raise ValueError(f"valid_mask must be [{num_clips}, {num_clips}], got {valid_mask.shape}")
    keep = valid_mask[starts, ends] != 0
    starts, ends = starts[keep], ends[keep]
    if starts.size == 0:
      raise ValueError("valid_mask leaves no cell with start <= end")
  return starts, ends


def _sorted_order(scores: np.ndarray, limit: int) -> np.ndarray:
  """Column order of the `limit` best scores per row, descending, ties by column index."""
  num_candidates = scores.shape[1]
  if limit >= num_candidates:
    return np.argsort(-scores, axis=1, kind="stable")
  # argpartition selects the best `limit` in O(K); only they need a full sort.
  best = np.sort(np.argpartition(-scores, limit - 1, axis=1)[:, :limit], axis=1)
  within = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1, kind="stable")
  order = np.take_along_axis(best, within, axis=1)
  # A tie straddling the cut may have let a later column in before an earlier one: those
  # rows (rare with float scores) get the full stable sort.
  last = np.take_along_axis(scores, order[:, -1:], axis=1)
  in_prefix = (np.take_along_axis(scores, order, axis=1) == last).sum(axis=1)
  straddle = np.nonzero((scores == last).sum(axis=1) != in_prefix)[0]
  if len(straddle):
    order[straddle] = np.argsort(-scores[straddle], axis=1, kind="stable")[:, :limit]
  return order


def score_maps_to_segments(score_maps, durations, valid_mask=None, limit: Optional[int] = None):
  """The candidate cells of each map as seconds, sorted by score (descending).

  Args:
    score_maps: `[Q, N, N]` scores, `[q, start, end]`.
    durations: `[Q]` video durations in seconds.
    valid_mask: optional `[N, N]`, see `candidate_cells`.
    limit: return only the first `limit` candidates (exactly those of the full order).

  Returns:
    segments `[Q, K, 2]` float32 seconds and their scores `[Q, K]`, K candidate cells
    (at most `limit`).
  """
  score_maps = _check_score_maps(score_maps)
  return _sorted_segments(score_maps, _check_durations(durations, len(score_maps)), valid_mask,
                          limit)


def _sorted_segments(score_maps, durations, valid_mask, limit):
  """`score_maps_to_segments` on checked float32 maps and float64 durations."""
  num_clips = score_maps.shape[1]
  starts, ends = candidate_cells(num_clips, valid_mask)
  scores = score_maps.reshape(len(score_maps), -1)[:, starts * num_clips + ends]
  order = _sorted_order(scores, scores.shape[1] if limit is None else limit)
  scores = np.take_along_axis(scores, order, axis=1)
  # float32 throughout, as the reference's torch tensors: index / N * duration.
  n = np.float32(num_clips)
  dur = durations.astype(np.float32)[:, None]
  seg_start = starts[order].astype(np.float32) / n * dur
  seg_end = (ends[order] + 1).astype(np.float32) / n * dur
  return np.stack([seg_start, seg_end], axis=-1), scores


def greedy_nms(segments, thresh: float, top_k: int = 5):
  """Greedy non-maximum suppression of score-sorted segments, all queries at once.

  Args:
    segments: `[Q, K, 2]` candidates per query, best first.
    thresh: a candidate whose IoU with a kept segment is > thresh is dropped.
    top_k: stop once this many are kept.

  Returns:
    kept `[Q, top_k, 2]` float64 (NaN rows where fewer survive) and num_kept `[Q]`.
  """
  segments = np.asarray(segments, np.float64)
  columns, num_kept = _greedy_nms_columns(segments, thresh, top_k)
  return _gather_kept(segments, columns), num_kept


def _gather_kept(values, columns) -> np.ndarray:
  """`values [Q, K, ...]` at `columns [Q, k]`, NaN where a column is -1 (float64)."""
  kept = np.full(columns.shape + values.shape[2:], np.nan)
  rows, ranks = np.nonzero(columns >= 0)
  kept[rows, ranks] = values[rows, columns[rows, ranks]]
  return kept


def _greedy_nms_columns(segments, thresh: float, top_k: int):
  """`greedy_nms` as candidate columns `[Q, top_k]` (-1 where fewer survive) and num_kept."""
  if segments.ndim != 3 or segments.shape[-1] != 2:
    raise ValueError(f"segments must be [queries, candidates, 2], got {segments.shape}")
  num_queries, num_candidates, _ = segments.shape
  columns = np.full((num_queries, top_k), -1, np.int64)
  num_kept = np.zeros(num_queries, np.int64)
  rows = np.arange(num_queries)
  alive = np.ones((num_queries, num_candidates), bool)
  for k in range(top_k):
    has_any = alive.any(axis=1)
    if not has_any.any():
      break
    first = np.argmax(alive, axis=1)  # first surviving candidate = best remaining score
    pick = segments[rows, first]
    columns[has_any, k] = first[has_any]
    num_kept += has_any
    # IoU = inter / (len_a + len_b - inter), the reference's NMS form.
    alive &= temporal_iou(pick[:, None, :], segments) <= thresh
    alive[rows, first] = False
  return columns, num_kept


def top_segments(score_maps, durations, nms_thresh: float, top_k: int = 5, valid_mask=None,
                 prefix: int = 64):
  """Score maps -> the <= top_k segments kept by NMS: (kept [Q, top_k, 2], num_kept [Q]).

  Greedy NMS with top_k = 5 rarely looks past the first few dozen candidates, so each
  query is first sorted and suppressed on a prefix of `prefix` candidates; the few that
  keep fewer than top_k there are redone on the whole list. Greedy decisions on a prefix
  never depend on later candidates, so the result is exact.
  """
  score_maps = _check_score_maps(score_maps)
  durations = _check_durations(durations, len(score_maps))
  kept, num_kept, _ = _top_segments(score_maps, durations, nms_thresh, top_k, valid_mask,
                                    prefix)
  return kept, num_kept


def _top_segments(score_maps, durations, nms_thresh, top_k, valid_mask, prefix=64):
  """`top_segments` on checked float32 maps and float64 durations, with the kept segments'
  scores `[Q, top_k]` (NaN padding) as a third result."""
  segments, scores = _sorted_segments(score_maps, durations, valid_mask, limit=prefix)
  columns, num_kept = _greedy_nms_columns(segments.astype(np.float64), nms_thresh, top_k)
  kept, kept_scores = _gather_kept(segments, columns), _gather_kept(scores, columns)
  if segments.shape[1] == prefix:  # the list was cut: redo those short of top_k
    redo = np.nonzero(num_kept < top_k)[0]
    if len(redo):
      segments, scores = _sorted_segments(score_maps[redo], durations[redo], valid_mask, None)
      columns, num_kept[redo] = _greedy_nms_columns(segments.astype(np.float64), nms_thresh,
                                                    top_k)
      kept[redo], kept_scores[redo] = _gather_kept(segments, columns), _gather_kept(scores,
                                                                                    columns)
  return kept, num_kept, kept_scores


def _pad_segments(segments) -> np.ndarray:
  """A list of `[k_i, 2]` arrays, or one `[Q, k, 2]` array, -> `[Q, k_max, 2]` NaN-padded."""
  if isinstance(segments, np.ndarray):
    padded = segments.astype(np.float64)
  else:
    rows = [np.asarray(s, np.float64).reshape(-1, 2) for s in segments]
    padded = np.full((len(rows), max([len(r) for r in rows], default=0), 2), np.nan)
    for i, r in enumerate(rows):
      padded[i, :len(r)] = r
  if padded.ndim != 3 or padded.shape[-1] != 2:
    raise ValueError(f"top segments must be [queries, k, 2], got {padded.shape}")
  return padded


def rank_n_at_m(segments, gt, ranks: Sequence[int] = (1, 5),
                thresholds: Sequence[float] = (0.5, 0.7)) -> dict:
  """2D-TAN's Rank n@m and mIoU.

  Args:
    segments: kept segments per query, best first: a list of `[k_i, 2]` or `[Q, k, 2]`
      with NaN rows as padding.
    gt: `[Q, 2]` ground truth in seconds.
    ranks, thresholds: n and m.

  Returns:
    {"Rank{n}@{m}": fraction of queries with IoU > m among the first n, "mIoU": mean IoU
    of the top-1 segment}; fractions in [0, 1].
  """
  segments = _pad_segments(segments)
  gt = _check_gt(gt, len(segments))
  if segments.shape[1] == 0:
    raise ValueError("segments: every query needs at least one segment")
  ious = temporal_iou(segments, gt[:, None, :])  # NaN padding gives IoU 0
  table = {}
  for n in ranks:
    for m in thresholds:
      table[f"Rank{n}@{_threshold_name(m)}"] = float(np.mean((ious[:, :n] > m).any(axis=1)))
  table["mIoU"] = float(np.mean(ious[:, 0]))
  return table


def span_iou(a, b) -> np.ndarray:
  """LGI's IoU of `a [..., 2]` and `b [..., 2]`, float64: max(0, min(e) - max(s)) divided by
  max(e) - min(s), as the reference's compute_tiou (src/utils/eval_utils.py) rounds it, so
  IoUs equal to a threshold stay equal; 0 when disjoint (and for an empty span, where the
  reference would divide by zero)."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  inter = np.maximum(0.0, np.minimum(a[..., 1], b[..., 1]) - np.maximum(a[..., 0], b[..., 0]))
  span = np.maximum(a[..., 1], b[..., 1]) - np.minimum(a[..., 0], b[..., 0])
  out = np.zeros(np.broadcast(a[..., 0], b[..., 0]).shape)
  np.divide(inter, span, out=out, where=(inter > 0) & (span > 0))
  return out


def r_at_1(pred, gt, thresholds: Sequence[float] = (0.3, 0.5, 0.7)) -> dict:
  """LGI's R@1 and mIoU: {"R1@{m}": fraction with IoU >= m, "mIoU": mean IoU}, with
  `span_iou`, exactly as the reference's TALLEvaluator.

  Args:
    pred: `[Q, 2]` predicted segments in seconds (a reversed one has IoU 0).
    gt: `[Q, 2]` ground truth in seconds, as annotated (LGI's protocol does not clip).
  """
  pred = np.asarray(pred, np.float64)
  # LGI's protocol keeps the annotated times: a reversed ground truth scores IoU 0.
  gt = _check_gt(gt, len(pred), ordered=False)
  if pred.shape != gt.shape:
    raise ValueError(f"pred must be [{len(gt)}, 2] like gt, got {pred.shape}")
  ious = span_iou(pred, gt)
  table = {f"R1@{_threshold_name(m)}": int(np.sum(ious >= m)) / len(ious) for m in thresholds}
  # The reference adds the IoUs one by one; cumsum keeps that order (np.sum would pair them).
  table["mIoU"] = float(np.cumsum(ious)[-1] / len(ious)) if len(ious) else 0.0
  return table


def _check_score_maps(score_maps) -> np.ndarray:
  score_maps = np.asarray(score_maps)
  if score_maps.ndim != 3 or score_maps.shape[1] != score_maps.shape[2]:
    raise ValueError(f"score_maps must be [batch, N, N], got {score_maps.shape}")
  score_maps = score_maps.astype(np.float32, copy=False)  # also bfloat16 / float16 maps
  bad = ~np.isfinite(score_maps).all(axis=(1, 2))
  if bad.any():
    raise ValueError(f"score_maps: non-finite scores in batch rows {np.nonzero(bad)[0][:10]}")
  return score_maps


def _check_durations(durations, num: int) -> np.ndarray:
  durations = np.asarray(durations, np.float64).reshape(-1)
  if durations.shape != (num,):
    raise ValueError(f"durations must be [{num}], got {durations.shape}")
  bad = ~(np.isfinite(durations) & (durations > 0))
  if bad.any():
    raise ValueError(f"durations must be finite and > 0; rows {np.nonzero(bad)[0][:10]}: "
                     f"{durations[bad][:10]}")
  return durations


def _check_gt(gt, num: int, ordered: bool = True) -> np.ndarray:
  gt = np.asarray(gt, np.float64)
  if gt.shape != (num, 2):
    raise ValueError(f"gt must be [{num}, 2] (start, end in seconds), got {gt.shape}")
  bad = ~(np.isfinite(gt).all(axis=1) & ((gt[:, 0] <= gt[:, 1]) | (not ordered)))
  if bad.any():
    raise ValueError(f"gt needs finite start{' <= end' if ordered else ', end'}; rows "
                     f"{np.nonzero(bad)[0][:10]}: {gt[bad][:10].tolist()}")
  return gt


class RankEvaluator:
  """Accumulates 2D-TAN predictions batch by batch; `result()` gives Rank n@m and mIoU.

  Each batch is reduced to its <= top_k kept segments at once, so memory stays small
  however large the maps.

  Args:
    nms_thresh: NMS IoU threshold (Charades 0.5 conv / 0.45 pool, see the configs).
    thresholds: IoU thresholds m.
    ranks: n values; top_k = max(ranks).
    valid_mask: optional `[N, N]` restricting the candidates (see `candidate_cells`).

  `update(score_maps [B, N, N], durations [B], gts [B, 2], query_ids [B] or None)`.
  """

  def __init__(self, nms_thresh: float, thresholds: Sequence[float] = (0.5, 0.7),
               ranks: Sequence[int] = (1, 5), valid_mask=None):
    if not ranks or min(ranks) < 1:
      raise ValueError(f"ranks must be positive integers, got {ranks}")
    self.nms_thresh = nms_thresh
    self.thresholds = tuple(thresholds)
    self.ranks = tuple(ranks)
    self.valid_mask = valid_mask
    self._kept, self._num_kept, self._gts, self._durations, self._ids = [], [], [], [], []
    self._scores = []
    self._num_clips = None

  def __len__(self) -> int:
    return sum(len(g) for g in self._gts)

  def update(self, score_maps, durations, gts, query_ids: Optional[Sequence[Hashable]] = None):
    score_maps = _check_score_maps(score_maps)
    batch, num_clips = score_maps.shape[:2]
    if self._num_clips not in (None, num_clips):
      raise ValueError(f"score_maps: N changed from {self._num_clips} to {num_clips}")
    durations = _check_durations(durations, batch)
    gts = _check_gt(gts, batch)
    if query_ids is None:
      query_ids = range(len(self), len(self) + batch)
    query_ids = list(query_ids)
    if len(query_ids) != batch:
      raise ValueError(f"query_ids must have {batch} entries, got {len(query_ids)}")
    kept, num_kept, scores = _top_segments(score_maps, durations, self.nms_thresh,
                                           max(self.ranks), self.valid_mask)
    self._num_clips = num_clips
    self._kept.append(kept)
    self._scores.append(scores)
    self._num_kept.append(num_kept)
    self._gts.append(gts)
    self._durations.append(durations)
    self._ids.extend(query_ids)

  def result(self) -> dict:
    """{"Rank1@0.5": ..., "Rank5@0.7": ..., "mIoU": ...} over every query seen."""
    if not len(self):
      raise ValueError("RankEvaluator.result() called before any update()")
    return rank_n_at_m(np.concatenate(self._kept), np.concatenate(self._gts), self.ranks,
                       self.thresholds)

  def per_query(self) -> list[dict]:
    """One dict per query: query_id, duration, gt, segments (kept, best first), their
    scores and ious."""
    kept, num_kept = np.concatenate(self._kept), np.concatenate(self._num_kept)
    gts, durations = np.concatenate(self._gts), np.concatenate(self._durations)
    scores = np.concatenate(self._scores)
    ious = temporal_iou(kept, gts[:, None, :])
    return [dict(query_id=qid, duration=float(durations[i]), gt=gts[i].tolist(),
                 segments=kept[i, :num_kept[i]].tolist(),
                 scores=scores[i, :num_kept[i]].tolist(), ious=ious[i, :num_kept[i]].tolist())
            for i, qid in enumerate(self._ids)]
