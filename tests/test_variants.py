"""Every Sscs variant of the configs (Tables 1 and 2) trains."""

import os

import numpy as np
import pytest

from configs import training
from sscs_tf.sscs import branch, functions, support
from tests.testing_train import tiny_config, tiny_vslnet_config, two_training_steps


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


# VSLNet: Table 1's rows and one Table 2 cell per support set and per function family: what
# the branch reads from it (clip_features, clip_mask, sentence_feature) is the same for every
# cell, and 2D-TAN trains every cell (all 25 on VSLNet with VSLNET_VARIANTS=all).
VSLNET_VARIANTS = ("off", "gtc", "gtc_contrast", "gtc_caption", "ss", "ss_contrast",
                   "ss_caption", "ss_gt_conv", "ss_non_gt_fc")
CASES = [("tan", v) for v in sorted(training.SSCS_VARIANTS)] + [
    ("vslnet", v) for v in (sorted(training.SSCS_VARIANTS)
                            if os.environ.get("VSLNET_VARIANTS") == "all" else VSLNET_VARIANTS)]


@pytest.mark.slow
@pytest.mark.parametrize("model_name, variant", CASES)
def test_every_variant_trains(model_name, variant, demo_records, tmp_path):
  tiny = tiny_config if model_name == "tan" else tiny_vslnet_config
  state, names, history, unchanged = two_training_steps(
      tiny(demo_records, f"sscs={variant}"), str(tmp_path))
  assert history.shape == (2, len(names)) and np.isfinite(history).all()
  mode, contrast, caption, _, _ = training.SSCS_VARIANTS[variant]
  assert ("contrast" in names) == contrast and ("caption" in names) == caption
  assert (state.branch is None) == (mode == "off")
  # Every weight moves but, in VSLNet, the unknown-word vector (no unknown word in these
  # batches) and maybe the start and end logits' biases: a softmax does not move when every
  # logit does, so their gradient is zero up to round-off (the L2 term of a zero bias too).
  exempt = (("/unk", "/span_predictor/start_dense/bias", "/span_predictor/end_dense/bias")
            if model_name == "vslnet" else ())
  assert not [p for p in unchanged if not p.endswith(exempt)], unchanged
