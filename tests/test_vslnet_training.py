"""VSLNet through the same trainer, Sscs branch, evaluation and export as 2D-TAN and LGI
(its Sscs variants: tests/test_variants.py)."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from sscs_tf.data import preprocess
from sscs_tf.models import vslnet_spans
from sscs_tf.run import run_dir
from sscs_tf.train.run_config import prepare_config
from tests.testing import REPO_ROOT
from tests.testing_train import (encode_sentences, long_and_short_videos, serve_in_fresh_process,
                                 tiny_vslnet_config, train_and_export_on_two_replicas,
                                 train_scalars)

SENTENCES = ["a person opens the door", "person sits on a chair"]


def test_vslnet_trains_on_two_replicas_and_exports(demo_records, tmp_path, two_cpu_strategy):
  config = tiny_vslnet_config(demo_records, num_train_steps=4)
  table = train_and_export_on_two_replicas(config, tmp_path, two_cpu_strategy)
  assert {"R1@0.3", "R1@0.5", "R1@0.7", "mIoU", "loss"} <= set(table)
  # VSLNet's optimizer and schedule: the rate falls linearly to 0 at the last step.
  assert config.optim.name == "adam_weight_decay" and config.optim.schedule == "linear"
  rates = train_scalars(tmp_path / "run", "learning_rate")
  assert rates and rates == {step: pytest.approx(1e-3 * (1 - step / 4), abs=1e-9)
                             for step in rates}
  assert rates[4] == 0.0
  inputs = long_and_short_videos()  # 300 rows (averaged into 128 steps) and 70 (padded)
  segments, scores, names = serve_in_fresh_process(tmp_path / "model", inputs, SENTENCES,
                                                   tmp_path)
  assert segments.shape == (2, 5, 2) and np.all(np.diff(scores, axis=1) <= 0)

  # The same request through the Keras model and the head, outside the export.
  model, config, _ = run_dir.load_model(str(tmp_path / "run"))
  word_ids, num_words = encode_sentences(run_dir.load_vocabulary(config), SENTENCES)
  videos = [preprocess.resample(f[:n], "pad_or_average", 128)
            for f, n in zip(inputs["features"], inputs["lengths"])]
  outputs = model({"features": np.stack([v[0] for v in videos]),
                   "feature_mask": np.stack([v[1] for v in videos]),
                   "word_ids": word_ids, "num_words": num_words})
  expected = vslnet_spans.SpanHead(5)(outputs, tf.constant(inputs["durations"]))
  np.testing.assert_allclose(scores, expected[1], rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(segments, expected[0], rtol=1e-5, atol=1e-5)
  # The video of 70 rows has 70 valid steps: its spans end within its duration.
  assert segments[1].max() <= 12.0 + 1e-5

  # No Sscs weight in the SavedModel: exactly the baseline's variables.
  assert len(names) == len(model.weights)
  assert not [n for n in names if any(k in n for k in ("psi", "phi", "caption", "sscs",
                                                         "support", "decoder"))]


@pytest.mark.slow
def test_demo_with_vslnet(tmp_path):
  """`sscs-demo --baseline vslnet`, one epoch: data, training with Sscs, the test table, the
  report, the export and a sentence grounded through it."""
  result = subprocess.run(
      [sys.executable, "-m", "sscs_tf.cli.demo", "--baseline=vslnet",
       f"--workdir={tmp_path / 'demo'}", "--config_arg=sscs=ss,epochs=1"],
      capture_output=True, text=True, timeout=900, cwd=REPO_ROOT,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO_ROOT))
  assert result.returncode == 0, result.stderr[-3000:]
  out = result.stdout
  assert "| split | R1@0.3 | R1@0.5 | R1@0.7 | mIoU |" in out
  assert (tmp_path / "demo" / "report_vslnet.html").exists()
  grounded = re.findall(r"^\s+\d\.\s+([\d.]+) s -\s+([\d.]+) s\s+score ([\d.]+)$", out, re.M)
  assert len(grounded) == 5 and all(float(s) < float(e) for s, e, _ in grounded)
  scores = [float(score) for _, _, score in grounded]
  assert scores == sorted(scores, reverse=True)


def test_model_files_set_to_auto_are_the_datas(demo_records):
  config = prepare_config(tiny_vslnet_config(demo_records))
  assert config.model.vocab_file == os.path.join(os.path.abspath(demo_records), "vocab.txt")
  assert config.model.embeddings_file == os.path.join(os.path.abspath(demo_records),
                                                      "embeddings.npy")
  assert config.model.char_vocab_size == 31
