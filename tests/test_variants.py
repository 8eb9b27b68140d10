"""Every Sscs variant of the configs (Tables 1 and 2) trains."""

import numpy as np
import pytest
import tensorflow as tf

from configs import training
from sscs_tf.train import objective, train_lib
from sscs_tf.models import contract
from sscs_tf.sscs import branch, functions, support
from sscs_tf.train.run_config import prepare_config
from sscs_tf.train.train_state import TrainState
from tests.testing_train import tiny_config


def test_variant_table_covers_the_paper():
  table1 = {f"{m}{o}" for m in ("gtc", "ss") for o in ("", "_contrast", "_caption")}
  table2 = {f"ss_{s}_{f}" for s in training.SUPPORTS for f in training.FUNCTIONS}
  assert set(training.SSCS_VARIANTS) == table1 | table2 | {"off"}
  assert len(table2) == 18


def test_variants_use_what_the_branch_accepts():
  # configs/ names the modes, support sets and functions without importing the package.
  assert {variant[0] for variant in training.SSCS_VARIANTS.values()} == set(branch.MODES)
  assert training.SUPPORTS == support.SUPPORT_SETS
  assert training.FUNCTIONS == functions.FUNCTIONS


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(training.SSCS_VARIANTS))
def test_every_variant_trains(variant, demo_records, tmp_path):
  config = prepare_config(tiny_config(demo_records, f"sscs={variant}"))
  state = TrainState(config, tf.distribute.get_strategy(), str(tmp_path))
  before = [v.numpy() for v in state.trainable_variables()]
  steps = train_lib.make_train_steps(state, tf.distribute.get_strategy(),
                                     config.data.batch_size)
  dataset = contract.make_dataset(config, "train", training=True, seed=0)
  history = steps(iter(dataset), tf.constant(2)).numpy()
  names = objective.term_names("tan", state.branch)
  assert history.shape == (2, len(names)) and np.isfinite(history).all()
  mode, contrast, caption, _, _ = training.SSCS_VARIANTS[variant]
  assert ("contrast" in names) == contrast and ("caption" in names) == caption
  assert (state.branch is None) == (mode == "off")
  changed = [not np.array_equal(a, v.numpy()) for a, v in zip(before,
                                                              state.trainable_variables())]
  assert all(changed)
