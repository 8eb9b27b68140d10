"""Tiny training configs for the trainer, export and CLI tests, and what the tests of
several baselines share: two training steps, a request to an export from a fresh process."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from configs import lgi_demo, tan_demo, vslnet_demo
from sscs_tf.data import text
from sscs_tf.models import contract
from sscs_tf.serve import export_lib
from sscs_tf.train import objective, train_lib
from sscs_tf.train.run_config import prepare_config
from sscs_tf.train.train_state import TrainState


def _shrink(config, data_dir: str, train: dict):
  """Width 16, batches of 8 and frequent logs and checkpoints: a few steps take seconds."""
  with config.unlocked():
    config.data.data_dir = data_dir
    config.data.batch_size = 8
    config.data.eval_batch_size = 32
    config.data.shuffle_buffer = 64
    config.model.feature_dim = 32
    config.model.hidden_size = 16
    config.sscs.dim = 16
    config.sscs.caption_units = 16
    config.sscs.caption_embedding_dim = 16
    config.train.log_every_steps = 1
    config.train.checkpoint_every_steps = 5
    # The figures cost a second or two per evaluation; the tests that check them ask.
    config.train.analysis_images = False
    for key, value in train.items():
      config.train[key] = value
  return config


def tiny_config(data_dir: str, arg: str = "sscs=ss", **train):
  """2D-TAN at width 16 on the demo data."""
  config = tan_demo.get_config(arg + ",epochs=1")
  with config.unlocked():
    config.model.lstm_units = 16
    config.model.map_num_layers = 2
  return _shrink(config, data_dir, train)


def tiny_lgi_config(data_dir: str, arg: str = "sscs=ss", **train):
  """LGI at width 16 on the demo data."""
  config = lgi_demo.get_config(arg + ",epochs=1")
  with config.unlocked():
    config.model.embedding_dim = 16
  return _shrink(config, data_dir, train)


def tiny_vslnet_config(data_dir: str, arg: str = "sscs=ss", **train):
  """VSLNet at width 16 (2 heads) on the demo data."""
  config = vslnet_demo.get_config(arg + ",epochs=1")
  with config.unlocked():
    config.model.num_heads = 2
  return _shrink(config, data_dir, train)


def assert_config_refused(data_dir: str, field: str, value, message: str) -> None:
  """`prepare_config` refuses the tiny config with `field` ("section.name") set to `value`,
  with an error matching `message`."""
  config = tiny_config(data_dir)
  section, name = field.split(".")
  with config.unlocked():
    config[section][name] = value
  with pytest.raises(ValueError, match=message):
    prepare_config(config)


def two_training_steps(config, workdir: str):
  """Two steps of the trainer on `config` (a tiny one): (state, the loss term names, the
  [2, terms] history, the paths of the trainable weights the steps left unchanged)."""
  config = prepare_config(config)
  state = TrainState(config, tf.distribute.get_strategy(), workdir)
  before = [v.numpy() for v in state.trainable_variables()]
  steps = train_lib.make_train_steps(state, tf.distribute.get_strategy(),
                                     config.data.batch_size)
  dataset = contract.make_dataset(config, "train", training=True, seed=0)
  history = steps(iter(dataset), tf.constant(2)).numpy()
  unchanged = [v.path for a, v in zip(before, state.trainable_variables())
               if np.array_equal(a, v.numpy())]
  return state, objective.term_names(config.model.name, state.branch), history, unchanged


SERVE_ONE_REQUEST = r"""
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # registers the tokenizer ops
loaded = tf.saved_model.load(sys.argv[1])  # kept: the signature's variables live in it
serve = loaded.signatures["serving_default"]
inputs = np.load(sys.argv[2])
out = serve(sentences=tf.constant([s.encode() for s in json.loads(sys.argv[3])]),
            features=tf.constant(inputs["features"]), lengths=tf.constant(inputs["lengths"]),
            durations=tf.constant(inputs["durations"]))
np.savez(sys.argv[4], segments=out["segments"].numpy(), scores=out["scores"].numpy())
print(json.dumps(sorted(v.name for v in serve.variables)))
"""


def serve_in_fresh_process(model_dir: str, inputs: dict, sentences, tmp_path):
  """One request to the SavedModel from a new Python process (features [B, T, D], lengths,
  durations; sentences): (segments, scores, the names of the signature's variables)."""
  np.savez(tmp_path / "request.npz", **inputs)
  result = subprocess.run([sys.executable, "-c", SERVE_ONE_REQUEST, str(model_dir),
                           str(tmp_path / "request.npz"), json.dumps(list(sentences)),
                           str(tmp_path / "answer.npz")],
                          capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
  assert result.returncode == 0, result.stderr[-3000:]
  served = np.load(tmp_path / "answer.npz")
  return served["segments"], served["scores"], json.loads(result.stdout.strip().splitlines()[-1])


def encode_sentences(vocab, sentences):
  """word_ids [B, L] (0-padded) and num_words [B] of the sentences, as the export encodes."""
  tokens = text.tokenize_py(list(sentences))
  width = max(map(len, tokens))
  word_ids = np.array([vocab.encode(t) + [0] * (width - len(t)) for t in tokens], np.int32)
  return word_ids, np.array([len(t) for t in tokens], np.int32)


def long_and_short_videos(feature_dim: int = 32):
  """A request's videos: one of 300 rows (longer than 128) and one of 70, random."""
  rng = np.random.default_rng(1)
  return {"features": rng.normal(size=(2, 300, feature_dim)).astype(np.float32),
          "lengths": np.array([300, 70], np.int32),
          "durations": np.array([40.0, 12.0], np.float32)}


def train_scalars(workdir, tag: str) -> dict:
  """{step: value} of one scalar of a run's `tensorboard/train` events."""
  values = {}
  for path in sorted(glob.glob(os.path.join(str(workdir), "tensorboard", "train",
                                            "events.out.tfevents.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == tag:
          values[event.step] = float(tf.make_ndarray(value.tensor))
  return values


def train_and_export_on_two_replicas(config, tmp_path, strategy) -> dict:
  """A tiny run on two replicas, exported to tmp_path/model; its last evaluation table."""
  table = train_lib.train_and_evaluate(config, str(tmp_path / "run"), strategy=strategy)
  export_lib.export_run(str(tmp_path / "run"), str(tmp_path / "model"))
  return table
