"""Evaluation: a model over one split -> the paper's table, the loss, per-query predictions.

Each baseline has a `Scorer` that turns a batch of model outputs into what its metric reads
(2D-TAN: the joint probability map; LGI: the regressed interval), so the loop is shared.
"""

import time

import numpy as np
import tensorflow as tf
from absl import logging

from sscs_tf import metrics, objective
from sscs_tf.data import pipeline

MODEL_INPUT_KEYS = ("features", "feature_mask", "word_ids", "num_words")


def model_inputs(batch):
  return {k: batch[k] for k in MODEL_INPUT_KEYS}


class TanScorer:
  """2D-TAN: sigmoid(scores) * mask, the reference's `joint_prob`, ranked with NMS."""

  def __init__(self, eval_config):
    self.evaluator = metrics.RankEvaluator(eval_config.nms_thresh, eval_config.iou_thresholds,
                                           eval_config.ranks)

  @staticmethod
  def outputs_to_numpy(outputs):
    probs = tf.sigmoid(tf.cast(outputs["scores"], tf.float32)) * outputs["map_mask"]
    return {"probs": probs}

  def update(self, out, batch):
    gts = np.stack([batch["start"], batch["end"]], axis=1)
    self.evaluator.update(out["probs"], batch["duration"], gts, batch["query_id"])

  def result(self):
    return self.evaluator.result()

  def per_query(self):
    return self.evaluator.per_query()


class LgiScorer:
  """LGI: the regressed (t_s, t_e) fractions times the duration; R@1 with IoU >= m."""

  def __init__(self, eval_config):
    self.thresholds = tuple(eval_config.iou_thresholds)
    self._pred, self._gt, self._ids, self._durations = [], [], [], []

  @staticmethod
  def outputs_to_numpy(outputs):
    return {"times": tf.cast(outputs["times"], tf.float32)}

  def update(self, out, batch):
    self._pred.append(out["times"] * batch["duration"][:, None])
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


SCORERS = {"tan": TanScorer, "lgi": LgiScorer}


def make_predict_fn(model, model_name: str, loss_config, element_spec):
  """A compiled forward pass returning the scorer's arrays and the per-example loss, traced
  once for the evaluation dataset's `element_spec` (any batch size, any sentence length)."""
  scorer = SCORERS[model_name]

  @tf.function(input_signature=[element_spec])
  def predict(batch):
    outputs = model(model_inputs(batch), training=False)
    terms = objective.VG_LOSSES[model_name](outputs, batch, loss_config)
    out = scorer.outputs_to_numpy(outputs)
    out["loss"] = tf.add_n(list(terms.values()))
    return out

  return predict


def evaluate(model, config, split: str, *, predict_fn=None, with_predictions: bool = False):
  """Runs `model` over `split`.

  Returns (table, predictions): table maps metric names ("Rank1@0.5", "mIoU", "loss", ...)
  to floats, with "num_queries" and "seconds"; predictions is a list of per-query dicts
  (query_id, video_id, sentence, duration, gt, segments, ious) or None.
  """
  started = time.time()
  dataset = pipeline.make_dataset(config.data, split, training=False)
  predict_fn = predict_fn or make_predict_fn(model, config.model.name, config.loss,
                                             dataset.element_spec)
  scorer = SCORERS[config.model.name](config.eval)
  loss_sum, count, extra = 0.0, 0, {}
  for batch in pipeline.checked_batches(dataset, config.data.data_dir):
    out = {k: v.numpy() for k, v in predict_fn(batch).items()}
    numpy_batch = {k: v.numpy() for k, v in batch.items()
                   if k in ("start", "end", "duration", "query_id", "video_id", "sentence")}
    numpy_batch["query_id"] = [q.decode("utf-8") for q in numpy_batch["query_id"]]
    scorer.update(out, numpy_batch)
    loss_sum += float(out["loss"].sum())
    count += len(out["loss"])
    if with_predictions:
      for qid, vid, sentence in zip(numpy_batch["query_id"], numpy_batch["video_id"],
                                    numpy_batch["sentence"]):
        extra[qid] = dict(video_id=vid.decode("utf-8"), sentence=sentence.decode("utf-8"))
  if not count:
    raise ValueError(f"Split {split!r} of {config.data.data_dir} yielded no queries.")
  table = dict(scorer.result(), loss=loss_sum / count, num_queries=count,
               seconds=time.time() - started)
  predictions = None
  if with_predictions:
    predictions = [dict(extra[p["query_id"]], **p) for p in scorer.per_query()]
  logging.info("Evaluated %d queries of %r in %.1f s: %s", count, split, table["seconds"],
               format_table(table))
  return table, predictions


def format_table(table: dict) -> str:
  """One line, metrics in percent as the paper prints them."""
  parts = []
  for name, value in table.items():
    if name in ("num_queries", "seconds"):
      continue
    parts.append(f"{name} {value:.4f}" if name == "loss" else f"{name} {100 * value:.2f}")
  return ", ".join(parts)


def paper_table(table: dict, split: str) -> str:
  """The metrics as the paper prints them (percent), a markdown table."""
  names = [k for k in table if k not in ("loss", "num_queries", "seconds")]
  header = "| split | " + " | ".join(names) + " |"
  rule = "|---" * (len(names) + 1) + "|"
  row = f"| {split} | " + " | ".join(f"{100 * table[k]:.2f}" for k in names) + " |"
  return "\n".join([header, rule, row])
