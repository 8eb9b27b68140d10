"""Evaluation: a model over one split -> the paper's table, the loss, per-query predictions.

Each baseline's `scorer` (models/baseline.py) turns a batch of model outputs into what its
metric reads (2D-TAN: the joint probability map; LGI: the regressed interval), so the loop is
shared.
"""

import time

import numpy as np
import tensorflow as tf
from absl import logging

from sscs_tf import models
from sscs_tf.data import pipeline
from sscs_tf.models import contract
from sscs_tf.scoring import diagnostics

def make_predict_fn(model, model_name: str, loss_config, element_spec,
                    jit_compile: bool = False):
  """A compiled forward pass returning the scorer's arrays and the per-example loss, traced
  once for the evaluation dataset's `element_spec` (any batch size, any sentence length);
  with `jit_compile` (`config.train.jit_compile`), XLA compiles it once per batch shape."""
  baseline = models.get(model_name)

  def forward(batch):
    outputs = model(contract.model_inputs(batch), training=False)
    terms = baseline.grounding_loss(outputs, batch, loss_config)
    out = baseline.scorer.outputs_to_numpy(outputs)
    out["loss"] = tf.add_n(list(terms.values()))
    return out

  if jit_compile:
    forward = contract.xla_compiled(forward)
  return tf.function(forward, input_signature=[element_spec], autograph=False)


def evaluate(model, config, split: str, *, predict_fn=None, dataset=None,
             with_predictions: bool = False, query_diagnostics=None):
  """Runs `model` over `split`.

  Returns (table, predictions): table maps metric names ("Rank1@0.5", "mIoU", "loss", ...)
  to floats, with "num_queries" and "seconds", and, with query diagnostics (default:
  `config.eval.query_diagnostics`), "query_dependence": the dict of `diagnostics` (which runs
  the split a second time with swapped sentences; `query_diagnostics` may also be a function
  of the metric table saying whether to run it); predictions is a list of per-query dicts
  (query_id, video_id, sentence, duration, gt, segments, ious) or None.
  """
  started = time.time()
  if query_diagnostics is None:
    query_diagnostics = bool(config.eval.get("query_diagnostics", False))
  if dataset is None:  # else the split's evaluation pipeline, built by the caller
    dataset = contract.make_dataset(config, split, training=False)
  predict_fn = predict_fn or make_predict_fn(
      model, config.model.name, config.loss, dataset.element_spec,
      jit_compile=bool(config.train.get("jit_compile", False)))
  scorer, extra, words, loss = _run(dataset, config.data.data_dir, predict_fn,
                                    models.get(config.model.name).scorer(config.eval))
  count = len(extra)
  if not count:
    raise ValueError(f"Split {split!r} of {config.data.data_dir} yielded no queries.")
  table = dict(scorer.result(), loss=loss / count, num_queries=count)
  per_query = [dict(extra[p["query_id"]], **p) for p in scorer.per_query()]
  if callable(query_diagnostics):
    query_diagnostics = query_diagnostics(table)
  if query_diagnostics:
    table["query_dependence"] = query_dependence(dataset, predict_fn, config, per_query, words)
  table["seconds"] = time.time() - started
  logging.info("Evaluated %d queries of %r in %.1f s: %s", count, split, table["seconds"],
               format_table(table))
  return table, (per_query if with_predictions else None)


def _run(dataset, data_dir: str, predict_fn, scorer, sentences=None):
  """One pass: (scorer, {query_id: video_id, sentence}, {query_id: word ids}, loss sum).
  `sentences(batch)`, when given, replaces each batch's word_ids and num_words."""
  extra, words, loss_sum = {}, {}, 0.0
  for batch in pipeline.checked_batches(dataset, data_dir):
    if sentences is not None:
      batch = dict(batch, **sentences(batch))
    out = {k: v.numpy() for k, v in predict_fn(batch).items()}
    numpy_batch = {k: v.numpy() for k, v in batch.items()
                   if k in ("start", "end", "duration", "query_id", "video_id", "sentence",
                            "word_ids", "num_words")}
    numpy_batch["query_id"] = [q.decode("utf-8") for q in numpy_batch["query_id"]]
    scorer.update(out, numpy_batch)
    loss_sum += float(out["loss"].sum())
    for row, qid in enumerate(numpy_batch["query_id"]):
      extra[qid] = dict(video_id=numpy_batch["video_id"][row].decode("utf-8"),
                        sentence=numpy_batch["sentence"][row].decode("utf-8"))
      words[qid] = numpy_batch["word_ids"][row, :numpy_batch["num_words"][row]]
  return scorer, extra, words, loss_sum


def _top1(per_query, strict: bool, threshold: float = diagnostics.HIT_IOU):
  """(top-1 segments [Q, 2], top-1 IoUs [Q], hits [Q]) under the scorer's hit rule."""
  top1 = np.array([p["segments"][0] for p in per_query], np.float64)
  ious = np.array([p["ious"][0] for p in per_query], np.float64)
  return top1, ious, (ious > threshold) if strict else (ious >= threshold)


def query_dependence(dataset, predict_fn, config, per_query, words) -> dict:
  """The `diagnostics` of one evaluated split, the shuffled control included."""
  scorer_class = models.get(config.model.name).scorer
  video_ids = [p["video_id"] for p in per_query]
  query_ids = [p["query_id"] for p in per_query]
  gts = np.array([p["gt"] for p in per_query], np.float64)
  top1, ious, hits = _top1(per_query, scorer_class.STRICT)
  result = diagnostics.top1_agreement(video_ids, top1, gts)
  result["by_moments"] = diagnostics.accuracy_by_moments(video_ids, gts, hits)
  partner = diagnostics.within_video_derangement(video_ids, query_ids)
  swapped_words = {qid: words[query_ids[k] if k >= 0 else qid]
                   for qid, k in zip(query_ids, partner.tolist())}

  def sentences(batch):
    rows = [swapped_words[q.decode("utf-8")] for q in batch["query_id"].numpy()]
    width = max(1, max(len(r) for r in rows))
    word_ids = np.zeros((len(rows), width), batch["word_ids"].dtype.as_numpy_dtype)
    for i, row in enumerate(rows):
      word_ids[i, :len(row)] = row
    return dict(word_ids=tf.constant(word_ids),
                num_words=tf.constant([len(r) for r in rows], batch["num_words"].dtype))

  scorer = _run(dataset, config.data.data_dir, predict_fn, scorer_class(config.eval),
                sentences)[0]
  swapped = {p["query_id"]: p for p in scorer.per_query()}
  _, swapped_ious, swapped_hits = _top1([swapped[q] for q in query_ids], scorer_class.STRICT)
  result["query_shuffled"] = diagnostics.shuffled_control(hits, swapped_hits, ious,
                                                          swapped_ious, partner)
  result["hit_rule"] = scorer_class.TOP1_METRIC
  return result


NOT_METRICS = ("num_queries", "seconds", "query_dependence", "selection")


def format_table(table: dict) -> str:
  """One line, metrics in percent as the paper prints them."""
  parts = []
  for name, value in table.items():
    if name in NOT_METRICS:
      continue
    parts.append(f"{name} {value:.4f}" if name == "loss" else f"{name} {100 * value:.2f}")
  return ", ".join(parts)


def paper_table(table: dict, split: str) -> str:
  """The metrics as the paper prints them (percent), a markdown table."""
  names = [k for k in table if k not in NOT_METRICS + ("loss",)]
  header = "| split | " + " | ".join(names) + " |"
  rule = "|---" * (len(names) + 1) + "|"
  row = f"| {split} | " + " | ".join(f"{100 * table[k]:.2f}" for k in names) + " |"
  return "\n".join([header, rule, row])


def query_dependence_table(result: dict) -> str:
  """The query-dependence diagnostics as markdown (percent; docs/sscs.md), and a warning
  line when they show a query-blind model."""
  lines = ["| query dependence | value |", "|---|---|"]
  lines += [f"| {label} | {value} |" for label, value in diagnostics.summary_rows(result)]
  warning = diagnostics.query_blind_warning(result)
  if warning:
    lines.append(f"Warning: {warning}")
  return "\n".join(lines)
