"""LGI through the same trainer, evaluation and export as 2D-TAN."""

import numpy as np
import pytest
import tensorflow as tf

from data_prep import demo
from sscs_tf.run import run_dir
from sscs_tf.scoring import metrics
from sscs_tf.train import train_lib
from sscs_tf.data import preprocess
from tests.testing_train import (encode_sentences, long_and_short_videos, serve_in_fresh_process,
                                 tiny_lgi_config, train_and_export_on_two_replicas)

SENTENCES = ["a person opens the door", "person sits on a chair"]


def test_lgi_trains_on_two_replicas_and_exports(demo_records, tmp_path, two_cpu_strategy):
  config = tiny_lgi_config(demo_records, num_train_steps=4)
  table = train_and_export_on_two_replicas(config, tmp_path, two_cpu_strategy)
  assert {"R1@0.3", "R1@0.5", "R1@0.7", "mIoU", "loss"} <= set(table)
  inputs = long_and_short_videos()  # 300 rows (picked) and 70 (padded)
  segments, scores, _ = serve_in_fresh_process(tmp_path / "model", inputs, SENTENCES, tmp_path)
  assert segments.shape == (2, 1, 2) and np.all(scores == 1.0)
  model, config, _ = run_dir.load_model(str(tmp_path / "run"))
  word_ids, num_words = encode_sentences(run_dir.load_vocabulary(config), SENTENCES)
  picked = [preprocess.pick_segments(f[:n], 128, 0.0)
            for f, n in zip(inputs["features"], inputs["lengths"])]
  outputs = model({"features": np.stack([p[0] for p in picked]),
                   "feature_mask": np.stack([p[1] for p in picked]),
                   "word_ids": word_ids, "num_words": num_words})
  expected = outputs["times"].numpy() * inputs["durations"][:, None]
  np.testing.assert_allclose(segments[:, 0], expected, rtol=1e-5, atol=1e-5)


def _random_interval_r1(gts, durations, threshold, draws=200, seed=0):
  """Chance: R1@m of intervals drawn uniformly (two sorted uniform points) in the video."""
  rng = np.random.default_rng(seed)
  points = np.sort(rng.uniform(size=(draws, len(gts), 2)), axis=-1) * durations[None, :, None]
  ious = metrics.temporal_iou(points, np.broadcast_to(gts, points.shape))
  return float(np.mean(ious >= threshold))


@pytest.mark.slow
def test_a_short_lgi_run_on_demo_data_learns(tmp_path):
  records = demo.build(str(tmp_path / "data"), seed=5, num_train_videos=200,
                       num_test_videos=40, feature_dim=32)
  config = tiny_lgi_config(records, "sscs=off")
  with config.unlocked():
    config.data.batch_size = 16
    config.model.hidden_size = 32
    config.model.embedding_dim = 32
    # Less dropout and a larger step than the published 0.5 / 4e-4: a width-32 model on
    # 600 queries has to learn in 8 epochs here. At 2e-3 the outcome hung on rounding:
    # R1@0.3 0.50 or 0.34 (chance + 0.1 = 0.35) from two Adam kernels whose losses agree
    # to 1e-7 at the first step; at 1e-3 it was 0.40-0.42 with either, on two datasets.
    config.model.dropout = 0.1
    config.optim.learning_rate = 1e-3
    config.train.num_epochs = 8
    config.train.eval_every_epochs = 8
    config.train.log_every_steps = 1000
  workdir = tmp_path / "run"
  table = train_lib.train_and_evaluate(config, str(workdir))
  losses = [e.summary.value[0] for path in (workdir / "tensorboard" / "train").iterdir()
            for e in tf.compat.v1.train.summary_iterator(str(path))
            if e.summary.value and e.summary.value[0].tag == "loss/vg"]
  values = [float(tf.make_ndarray(v.tensor)) for v in losses]
  assert np.mean(values[-20:]) < 0.9 * np.mean(values[:20])
  assert table["num_queries"] > 0  # the last validation table
  test_table, predictions = _evaluate_with_predictions(workdir)
  gts = np.array([p["gt"] for p in predictions])
  durations = np.array([p["duration"] for p in predictions])
  chance = _random_interval_r1(gts, durations, 0.3)
  assert test_table["R1@0.3"] > chance + 0.1, (test_table, chance)


def _evaluate_with_predictions(workdir):
  from sscs_tf.evaluate import eval_lib
  model, config, _ = run_dir.load_model(str(workdir), "latest")
  return eval_lib.evaluate(model, config, config.data.eval_split, with_predictions=True)
