"""A third grounding model, defined in this file alone, goes through the project's own entry
points: trained with Sscs, evaluated, exported and grounded (docs/architecture.md, "How to
add a baseline", which this file follows step by step). No project file names it.
"""

import dataclasses

import keras
import ml_collections
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from configs import common
from sscs_tf import models
from sscs_tf.data import preprocess, text
from sscs_tf.evaluate import eval_lib
from sscs_tf.models.baseline import Baseline
from sscs_tf.run import run_dir
from sscs_tf.serve import export_lib, grounding
from sscs_tf.train import objective, train_lib
from tests.test_train_faults import assert_a_resumed_run_is_bitwise_equal
from tests.testing_train import tiny_lgi_config


# 1. The model: features and words in (models/contract.py), its own outputs ("span") plus
#    the three tensors the Sscs branch reads.
class ToyGrounder(keras.Model):
  """Projected segments times the mean word vector, pooled -> (t_s, t_e) as fractions.

  Args: feature_dim (D), vocab_size, hidden_size (H), num_segments (S), dropout (rate on
    the projected segments while training).
  Call: the contract's inputs -> {"span": [B, 2] sorted fractions, "clip_features" [B, S, H],
    "clip_mask" [B, S], "sentence_feature" [B, H]}.
  """

  def __init__(self, *, feature_dim, vocab_size, hidden_size=16, num_segments=16, dropout=0.0,
               **kwargs):
    super().__init__(**kwargs)
    self.feature_dim, self.vocab_size = feature_dim, vocab_size
    self.hidden_size, self.num_segments, self.dropout = hidden_size, num_segments, dropout
    self.clips = keras.layers.Dense(hidden_size, name="clips")
    self.dropout_layer = keras.layers.Dropout(dropout)
    self.words = keras.layers.Embedding(vocab_size, hidden_size, name="words")
    self.span = keras.layers.Dense(2, name="span")

  def call(self, inputs, training=False):
    clip_mask = ops.cast(inputs["feature_mask"], "float32")
    clips = self.dropout_layer(self.clips(inputs["features"]), training=training)
    clips = clips * clip_mask[..., None]
    word_mask = ops.cast(inputs["word_ids"] > 0, "float32")
    words = self.words(inputs["word_ids"]) * word_mask[..., None]
    sentence = ops.sum(words, 1) / ops.maximum(ops.sum(word_mask, 1, keepdims=True), 1.0)
    fused = ops.sum(clips * sentence[:, None], 1) / ops.sum(clip_mask, 1, keepdims=True)
    span = ops.sort(ops.sigmoid(self.span(fused)), axis=-1)
    return {"span": span, "clip_features": clips, "clip_mask": clip_mask,
            "sentence_feature": sentence}


# 2. What its loss needs beside the batch, added by the input pipeline.
def toy_targets(batch, data_config):
  del data_config
  duration = tf.cast(batch["duration"], tf.float32)[:, None]
  return {"span_target": tf.stack([batch["start"], batch["end"]], axis=1) / duration}


# 3. Its grounding loss, per example, as named terms.
def toy_loss(outputs, batch, loss_config):
  error = tf.abs(tf.cast(outputs["span"], tf.float32) - batch["span_target"])
  return {"boundary": tf.reduce_sum(error, axis=1),
          "length": loss_config.length_weight * tf.abs(error[:, 1] - error[:, 0])}


# 4. Its scorer: top-1 IoU of the regressed span.
class ToyScorer:
  TOP1_METRIC, STRICT = "toy_R1@0.5", False

  def __init__(self, eval_config):
    del eval_config
    self.rows = []

  @staticmethod
  def outputs_to_numpy(outputs):
    return {"span": tf.cast(outputs["span"], tf.float32)}

  def update(self, out, batch):
    for i, query_id in enumerate(batch["query_id"]):
      duration = float(batch["duration"][i])
      segment = (out["span"][i] * duration).tolist()
      gt = [float(batch["start"][i]), float(batch["end"][i])]
      inter = max(0.0, min(segment[1], gt[1]) - max(segment[0], gt[0]))
      union = max(segment[1], gt[1]) - min(segment[0], gt[0])
      self.rows.append(dict(query_id=query_id, duration=duration, gt=gt, segments=[segment],
                            ious=[inter / union if union > 0 else 0.0]))

  def result(self):
    ious = np.array([row["ious"][0] for row in self.rows])
    return {"toy_R1@0.5": float(np.mean(ious >= 0.5)), "toy_mIoU": float(np.mean(ious))}

  def per_query(self):
    return self.rows


# 5. Its serving head: the span in seconds, one segment scored by its width's complement.
class ToyHead(tf.Module):

  def __call__(self, outputs, durations):
    span = tf.cast(outputs["span"], tf.float32)
    return span[:, None, :] * durations[:, None, None], 1.0 - (span[:, 1:] - span[:, :1])


TOY = Baseline(name="toy", model=ToyGrounder, grounding_loss=toy_loss,
               loss_terms=("boundary", "length"), clip_count_field="num_segments",
               scorer=ToyScorer, serving_head=lambda config: ToyHead(), targets=toy_targets,
               local_run=dict(hidden_size=8))


@pytest.fixture
def toy_config(demo_records, monkeypatch):
  # 6. Listed beside the real ones, for this test only.
  monkeypatch.setitem(models.BASELINES, "toy", TOY)
  config = tiny_lgi_config(demo_records, "sscs=ss", num_epochs=2, best_metric="toy_R1@0.5")
  with config.unlocked():
    config.model = ml_collections.ConfigDict(dict(
        name="toy", feature_dim=config.model.feature_dim, vocab_size=0, hidden_size=16,
        num_segments=config.data.num_segments, dropout=0.5))
    config.loss = ml_collections.ConfigDict(dict(length_weight=0.5))
  return config


def _served_inputs(features, sentence, config, vocabulary):
  """What the exported graph gives the model: the data config's row normalisation and
  sampling (offset 0), the shared tokenizer."""
  rows = tf.constant(features)
  if config.data.normalize_rows:
    rows = preprocess.l2_normalize_rows(rows)
  if config.data.sampling == "pick":
    video, mask = preprocess.pick_segments(rows, config.data.num_segments, 0)
  else:
    video = preprocess.average_to_fixed_length(rows, config.data.num_segments)
    mask = tf.ones([config.data.num_segments])
  word_ids, num_words = text.SentenceEncoder(vocabulary, config.data.max_query_length)(
      tf.constant([sentence]))
  return {"features": video[None], "feature_mask": mask[None], "word_ids": word_ids,
          "num_words": num_words}


def test_a_baseline_defined_in_a_test_trains_evaluates_exports_and_grounds(toy_config,
                                                                           tmp_path):
  workdir = str(tmp_path / "run")
  result = train_lib.train_and_evaluate(toy_config, workdir)
  assert set(result) >= {"toy_R1@0.5", "toy_mIoU"}
  assert objective.term_names("toy") == ("total", "vg", "boundary", "length")

  # Trained with the Sscs branch: its clip count came from the record, its weights were
  # trained and checkpointed beside the model's.
  final = run_dir.load_config(workdir)
  assert final.sscs.mode == "ss" and final.sscs.num_clips == final.model.num_segments
  latest = tf.train.latest_checkpoint(f"{workdir}/checkpoints")
  names = [name for name, _ in tf.train.list_variables(latest)]
  assert any(name.startswith("branch_weights") for name in names)
  assert any(name.startswith("model_weights") for name in names)

  # Evaluated as sscs-eval does: the best checkpoint, the scorer's table, the predictions.
  model, config, _ = run_dir.load_model(workdir)
  table, predictions = eval_lib.evaluate(model, config, "test", with_predictions=True)
  assert table["num_queries"] == len(predictions) > 0
  ious = np.array([p["ious"][0] for p in predictions])
  np.testing.assert_allclose(table["toy_mIoU"], ious.mean(), rtol=1e-6)
  np.testing.assert_allclose(table["toy_R1@0.5"], np.mean(ious >= 0.5), rtol=1e-6)
  assert table["loss"] > 0

  # Exported and grounded as sscs-export and sscs-ground do; the served segment is the
  # model's span in seconds.
  model_dir = str(tmp_path / "export")
  export_lib.export_run(workdir, model_dir)
  features = np.random.default_rng(0).normal(size=(40, config.model.feature_dim))
  features = features.astype(np.float32)
  sentences = [predictions[0]["sentence"], "a person opens a door"]
  segments, scores = grounding.ground(model_dir, features, 30.0, sentences)
  assert segments.shape == (2, 1, 2) and scores.shape == (2, 1)
  vocabulary = run_dir.load_vocabulary(config)
  for i, sentence in enumerate(sentences):
    span = model(_served_inputs(features, sentence, config, vocabulary),
                 training=False)["span"][0].numpy()
    np.testing.assert_allclose(segments[i, 0], span * 30.0, rtol=1e-5, atol=1e-4)


def test_a_local_run_takes_the_widths_of_the_record(toy_config):
  with toy_config.unlocked():
    common.shrink_for_local_run(toy_config)
  assert toy_config.model.hidden_size == TOY.local_run["hidden_size"] == 8
  assert toy_config.data.batch_size == 8 and toy_config.train.num_epochs == 2


def test_a_record_that_disagrees_with_its_model_is_named(toy_config, monkeypatch):
  outputs = {"span": tf.constant([[0.1, 0.5]])}
  batch = {"span_target": tf.constant([[0.2, 0.4]])}
  monkeypatch.setitem(models.BASELINES, "toy", dataclasses.replace(TOY, loss_terms=("boundary",)))
  with pytest.raises(ValueError, match=r"returned the terms \('boundary', 'length'\); its "
                     r"Baseline record lists \('boundary',\)"):
    objective.compute_losses("toy", outputs, batch, toy_config.loss, 1)
  with pytest.raises(ValueError, match="config.model has no field 'num_segments'"):
    models.clip_count({"name": "toy", "hidden_size": 8})
  monkeypatch.setitem(models.BASELINES, "toy", dataclasses.replace(TOY, local_run={"depth": 2}))
  with toy_config.unlocked(), pytest.raises(ValueError, match=r"local-run widths \['depth'\]"):
    common.shrink_for_local_run(toy_config)


@pytest.mark.slow
def test_a_baseline_with_dropout_resumes_bitwise(toy_config, tiny_records, tmp_path,
                                                 monkeypatch):
  # Its Dropout draws from a SeedGenerator: the trainer checkpoints that state with no word
  # about this model, so the resumed run draws the masks the uninterrupted one drew.
  with toy_config.unlocked():
    toy_config.data.data_dir = tiny_records
    toy_config.train.checkpoint_every_steps = 1
  assert_a_resumed_run_is_bitwise_equal(toy_config, tmp_path, monkeypatch)
