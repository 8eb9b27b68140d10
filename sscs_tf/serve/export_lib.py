"""SavedModel export: raw sentences + video features in, intervals in seconds out.

The `serving_default` signature:
  inputs   sentences [B] string, features [B, T, D] float32 (any T, D the trained
           `config.model.feature_dim`; rows past `lengths` are padding), lengths [B] int32
           (valid rows per video), durations [B] float32 (s)
  outputs  segments [B, k, 2] float32 seconds (best first), scores [B, k] float32, from the
           baseline's serving head (models/heads.py; 2D-TAN: k = 5 after NMS, padded with -1
           where fewer survive; LGI: k = 1)
The export also records which extractor made the training features (`assets.extra/
extractor.json`, from the dataset's meta.json; null when unknown), so that `sscs-ground
--video` extracts features of the same kind (docs/video.md). Everything happens in the graph,
with the same code as training: the tensorflow-text tokenizer of `sscs_tf.data.text`, the
feature preprocessing of `sscs_tf.data.preprocess`, the model's forward pass. The Sscs
branch is not part of it: a model trained with Sscs exports exactly the baseline's weights and
ops. A process loading it needs `import tensorflow_text`.
"""

import os
import shutil
import tempfile

import tensorflow as tf
from absl import logging

from sscs_tf import models
from sscs_tf.core import fileio
from sscs_tf.data import preprocess, text
from sscs_tf.run import run_dir

SIGNATURE = "serving_default"
EXTRACTOR_FILE = os.path.join("assets.extra", "extractor.json")


def _assert(condition, *message):
  return tf.debugging.Assert(condition, list(message), summarize=5)


class ServingModule(tf.Module):
  """The exported graph; see the module docstring for the signature."""

  def __init__(self, model, config, vocabulary: text.Vocabulary):
    super().__init__()
    self.model = model
    self.encoder = text.SentenceEncoder(vocabulary, config.data.max_query_length)
    self.head = models.get(config.model.name).serving_head(config)
    self.feature_dim = int(config.model.feature_dim)
    self.sampling = config.data.sampling
    self.normalize_rows = bool(config.data.normalize_rows)
    self.num_segments = int(config.data.num_segments)
    self.serve = tf.function(self._serve, input_signature=[
        tf.TensorSpec([None], tf.string, name="sentences"),
        # Declared for clients (saved_model_cli, TensorFlow Serving's metadata); a loaded
        # signature does not enforce it, so _check refuses all but [B, T, D] in the graph.
        tf.TensorSpec([None, None, self.feature_dim], tf.float32, name="features"),
        tf.TensorSpec([None], tf.int32, name="lengths"),
        tf.TensorSpec([None], tf.float32, name="durations"),
    ])

  def _check(self, sentences, features, lengths, durations, num_words):
    # The rank and shape are read through a serialized copy of tf.shape: from the declared
    # [None, None, D], tracing and the graph optimizer would fold the rank and width checks
    # to true (an Identity-like view is seen through). The shape is padded so that reading
    # its third entry cannot fail, and the checks that read it only speak for rank 3, so a
    # request of another rank fails the rank check alone.
    request_shape = tf.io.parse_tensor(tf.io.serialize_tensor(tf.shape(features)), tf.int32)
    rank = tf.size(request_shape)
    other_rank = tf.not_equal(rank, 3)
    shape = tf.concat([request_shape, tf.zeros([3], tf.int32)], axis=0)
    batch = shape[0]
    return [
        _assert(~other_rank, f"features must be [batch, T, {self.feature_dim}]: got rank",
                rank),
        _assert(other_rank | tf.equal(shape[2], self.feature_dim), "features must be "
                f"[batch, T, {self.feature_dim}]: got width", shape[2]),
        _assert(other_rank | (shape[1] > 0), "features hold no rows (T = 0)"),
        _assert(other_rank | (tf.equal(tf.size(sentences), batch)
                              & tf.equal(tf.size(lengths), batch)
                              & tf.equal(tf.size(durations), batch)),
                "sentences, features, lengths and durations must have the same batch size: "
                "got", tf.size(sentences), batch, tf.size(lengths), tf.size(durations)),
        _assert(other_rank | tf.reduce_all((lengths > 0) & (lengths <= shape[1])),
                "lengths must be in [1, T]; T is", shape[1], "lengths are", lengths),
        _assert(tf.reduce_all(tf.math.is_finite(durations) & (durations > 0)),
                "durations must be positive seconds, finite: got", durations),
        _assert(tf.reduce_all(num_words > 0), "empty sentence (no word) at batch indices",
                tf.where(num_words <= 0)[:, 0]),
        _assert(tf.reduce_all(tf.math.is_finite(tf.reshape(features, [-1]))),
                "features hold NaN or Inf"),
    ]

  def _prepare_video(self, args):
    features, length = args
    rows = features[:length]
    if self.normalize_rows:
      rows = preprocess.l2_normalize_rows(rows)
    return preprocess.resample(rows, self.sampling, self.num_segments)

  def _serve(self, sentences, features, lengths, durations):
    word_ids, num_words = self.encoder(sentences)
    # Every input of the computation waits for the checks: an op fed a bad request must
    # not run (and fail deep in the graph) before the check that names the problem.
    with tf.control_dependencies(self._check(sentences, features, lengths, durations,
                                             num_words)):
      features, lengths, durations, word_ids, num_words = (
          tf.identity(t) for t in (features, lengths, durations, word_ids, num_words))
    video, mask = tf.map_fn(self._prepare_video, (features, lengths), fn_output_signature=(
        tf.TensorSpec([self.num_segments, self.feature_dim], tf.float32),
        tf.TensorSpec([self.num_segments], tf.float32)))
    outputs = self.model({"features": video, "feature_mask": mask, "word_ids": word_ids,
                          "num_words": num_words}, training=False)
    segments, scores = self.head(outputs, durations)
    return {"segments": segments, "scores": scores}


def export(model, config, vocabulary: text.Vocabulary, output_dir: str,
           extractor=None) -> str:
  """Writes the SavedModel to `output_dir` (with `extractor`, the training features'
  extractor attributes or None) and returns it."""
  module = ServingModule(model, config, vocabulary)
  tf.saved_model.save(module, output_dir, signatures={SIGNATURE: module.serve})
  fileio.atomic_write_json(os.path.join(output_dir, EXTRACTOR_FILE), {"extractor": extractor})
  return output_dir


def training_extractor(config):
  """The extractor attributes meta.json records for the run's data (None when unknown)."""
  path = os.path.join(config.data.data_dir, "meta.json")
  if not os.path.exists(path):
    logging.warning("%s not found: the export will not say which features it expects", path)
    return None
  return fileio.read_json(path).get("extractor")


def read_extractor(model_dir: str):
  """What `export` recorded: the extractor attributes, or None (unknown, older exports)."""
  path = os.path.join(model_dir, EXTRACTOR_FILE)
  if not os.path.exists(path):
    return None
  return fileio.read_json(path).get("extractor")


def export_run(workdir: str, output: str, checkpoint: str = "best") -> str:
  """Exports into a temporary folder, then swaps it in place of `output`."""
  model, config, path = run_dir.load_model(workdir, checkpoint)
  vocabulary = run_dir.load_vocabulary(config)
  parent = os.path.dirname(os.path.abspath(output))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(dir=parent, prefix=".export-")
  try:
    export(model, config, vocabulary, os.path.join(tmp, "model"), training_extractor(config))
    if os.path.exists(output):
      shutil.rmtree(output)
    os.replace(os.path.join(tmp, "model"), output)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  logging.info("Exported %s to %s", path, output)
  return path
