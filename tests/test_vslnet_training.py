"""VSLNet through the same trainer, Sscs branch, evaluation and export as 2D-TAN and LGI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from configs import training
from sscs_tf.data import preprocess, text
from sscs_tf.models import contract, vslnet_spans
from sscs_tf.run import run_dir
from sscs_tf.serve import export_lib
from sscs_tf.train import objective, train_lib
from sscs_tf.train.run_config import prepare_config
from sscs_tf.train.train_state import TrainState
from tests.test_export import LOAD_AND_SERVE
from tests.testing_train import tiny_vslnet_config

SENTENCES = ["a person opens the door", "person sits on a chair"]


def test_vslnet_trains_on_two_replicas_and_exports(demo_records, tmp_path, two_cpu_strategy):
  config = tiny_vslnet_config(demo_records, num_train_steps=4)
  table = train_lib.train_and_evaluate(config, str(tmp_path / "run"),
                                       strategy=two_cpu_strategy)
  assert {"R1@0.3", "R1@0.5", "R1@0.7", "mIoU", "loss"} <= set(table)
  export_lib.export_run(str(tmp_path / "run"), str(tmp_path / "model"))
  rng = np.random.default_rng(1)
  # One video longer than 128 rows (averaged into 128 steps), one shorter (padded).
  inputs = {"features": rng.normal(size=(2, 300, 32)).astype(np.float32),
            "lengths": np.array([300, 70], np.int32),
            "durations": np.array([40.0, 12.0], np.float32)}
  np.savez(tmp_path / "in.npz", **inputs)
  result = subprocess.run([sys.executable, "-c", LOAD_AND_SERVE, str(tmp_path / "model"),
                           str(tmp_path / "in.npz"), json.dumps(SENTENCES),
                           str(tmp_path / "out.npz")],
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  served = np.load(tmp_path / "out.npz")
  assert served["segments"].shape == (2, 5, 2)
  assert np.all(np.diff(served["scores"], axis=1) <= 0)

  # The same request through the Keras model and the head, outside the export.
  model, config, _ = run_dir.load_model(str(tmp_path / "run"))
  vocab = run_dir.load_vocabulary(config)
  tokens = text.tokenize_py(SENTENCES)
  width = max(map(len, tokens))
  word_ids = np.array([vocab.encode(t) + [0] * (width - len(t)) for t in tokens], np.int32)
  videos = [preprocess.resample(f[:n], "pad_or_average", 128)
            for f, n in zip(inputs["features"], inputs["lengths"])]
  outputs = model({"features": np.stack([v[0] for v in videos]),
                   "feature_mask": np.stack([v[1] for v in videos]),
                   "word_ids": word_ids, "num_words": np.array([len(t) for t in tokens])})
  segments, scores = vslnet_spans.SpanHead(5)(outputs, tf.constant(inputs["durations"]))
  np.testing.assert_allclose(served["scores"], scores, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(served["segments"], segments, rtol=1e-5, atol=1e-5)
  # The video of 70 rows has 70 valid steps: its spans end within its duration.
  assert served["segments"][1].max() <= 12.0 + 1e-5

  # No Sscs weight in the SavedModel: exactly the baseline's variables.
  names = json.loads(result.stdout.strip().splitlines()[-1])
  assert len(names) == len(model.weights)
  assert not [n for n in names if any(k in n for k in ("psi", "phi", "caption", "sscs",
                                                         "support", "decoder"))]


# Table 1's rows and one Table 2 cell per support set and per function family: what the
# branch reads from VSLNet (clip_features, clip_mask, sentence_feature) is the same for
# every cell, and tests/test_variants.py trains every cell on 2D-TAN (all 25 on VSLNet:
# VSLNET_VARIANTS=all).
VARIANTS = ("off", "gtc", "gtc_contrast", "gtc_caption", "ss", "ss_contrast", "ss_caption",
            "ss_gt_conv", "ss_non_gt_fc")


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(training.SSCS_VARIANTS)
                         if os.environ.get("VSLNET_VARIANTS") == "all" else VARIANTS)
def test_sscs_variants_train_vslnet(variant, demo_records, tmp_path):
  config = prepare_config(tiny_vslnet_config(demo_records, f"sscs={variant}"))
  state = TrainState(config, tf.distribute.get_strategy(), str(tmp_path))
  before = [v.numpy() for v in state.trainable_variables()]
  steps = train_lib.make_train_steps(state, tf.distribute.get_strategy(),
                                     config.data.batch_size)
  dataset = contract.make_dataset(config, "train", training=True, seed=0)
  history = steps(iter(dataset), tf.constant(2)).numpy()
  names = objective.term_names("vslnet", state.branch)
  assert history.shape == (2, len(names)) and np.isfinite(history).all()
  mode, contrast, caption, _, _ = training.SSCS_VARIANTS[variant]
  assert ("contrast" in names) == contrast and ("caption" in names) == caption
  assert (state.branch is None) == (mode == "off")
  assert {"span", "highlight", "l2"} <= set(names)
  # Every weight moves but the unknown-word vector, which no word of these batches uses.
  unchanged = [v.path.split("/")[-1] for a, v in zip(before, state.trainable_variables())
               if np.array_equal(a, v.numpy())]
  assert unchanged in ([], ["unk"]), unchanged
