"""Break-downs of per-query predictions: Rank n@m against the IoU threshold, the top-1 IoU
histogram, and accuracy by the ground truth's relative length and start.

`predictions` are the dicts of `eval_lib.evaluate(..., with_predictions=True)` (the JSON lines
of `sscs-eval --predictions`): duration, gt [start, end] and the kept segments' ious, best
first. A query with fewer kept segments than n counts the missing ones as misses.
"""

from typing import Sequence

import numpy as np

# Thresholds m of the Rank n@m curve; the paper's tables use 0.3, 0.5 and 0.7.
IOU_GRID = np.round(np.arange(0.05, 1.0, 0.05), 2)
# Bins of the ground truth's start / duration and length / duration.
RELATIVE_EDGES = np.linspace(0.0, 1.0, 11)


def iou_matrix(predictions, k: int) -> np.ndarray:
  """`[Q, k]` IoUs of the first k kept segments, 0 where fewer were kept."""
  out = np.zeros((len(predictions), k))
  for i, p in enumerate(predictions):
    ious = list(p.get("ious") or [])[:k]
    out[i, :len(ious)] = ious
  return out


def rank_curve(predictions, ranks: Sequence[int], thresholds=IOU_GRID) -> dict:
  """{n: `[len(thresholds)]` fraction of queries with IoU > m among the first n}."""
  ious = iou_matrix(predictions, max(ranks))
  thresholds = np.asarray(thresholds, np.float64)
  return {n: (ious[:, :n, None] > thresholds).any(axis=1).mean(axis=0) for n in ranks}


def top1_histogram(predictions, bins: int = 20):
  """(counts `[bins]`, edges `[bins + 1]`) of the top-1 IoU over [0, 1]."""
  return np.histogram(iou_matrix(predictions, 1)[:, 0], bins=bins, range=(0.0, 1.0))


def relative_gt(predictions):
  """(start / duration, length / duration) of each query's ground truth, clipped to [0, 1)."""
  gts = np.array([p["gt"] for p in predictions], np.float64).reshape(-1, 2)
  durations = np.array([p["duration"] for p in predictions], np.float64)
  start = np.clip(gts[:, 0] / durations, 0.0, 1.0 - 1e-9)
  length = np.clip((gts[:, 1] - gts[:, 0]) / durations, 0.0, 1.0 - 1e-9)
  return start, length


def accuracy_by(values, correct, edges=RELATIVE_EDGES):
  """(accuracy `[bins]`, NaN for an empty bin; count `[bins]`) of `correct` binned by
  `values` over `edges`."""
  values = np.asarray(values, np.float64)
  correct = np.asarray(correct, bool)
  total = np.histogram(values, bins=edges)[0]
  hits = np.histogram(values[correct], bins=edges)[0]
  accuracy = np.full(len(total), np.nan)
  np.divide(hits, total, out=accuracy, where=total > 0)
  return accuracy, total


def top1_correct(predictions, threshold: float = 0.5) -> np.ndarray:
  """`[Q]` top-1 IoU > threshold (Rank1@m's test)."""
  return iou_matrix(predictions, 1)[:, 0] > threshold


def interval_distribution(predictions, threshold: float = 0.5):
  """Fig. 8: (correct counts, accuracy, query counts), each `[bins, bins]` over the ground
  truth's (start / duration, length / duration) bins (rows: start, columns: length)."""
  start, length = relative_gt(predictions)
  correct = top1_correct(predictions, threshold)
  edges = RELATIVE_EDGES
  total = np.histogram2d(start, length, bins=[edges, edges])[0]
  hits = np.histogram2d(start[correct], length[correct], bins=[edges, edges])[0]
  accuracy = np.full(total.shape, np.nan)
  np.divide(hits, total, out=accuracy, where=total > 0)
  return hits, accuracy, total
