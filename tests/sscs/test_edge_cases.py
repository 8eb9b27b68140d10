"""The branch on inputs a careless pipeline could hand it: NaN/Inf in padded clip rows (past
the mask) and a sample with no valid clip. Case ids are rows of docs/reliability.md."""

import numpy as np
import pytest

from tests.sscs.test_exactness import make_branch, make_inputs


def _losses(branch, inputs):
  outputs = branch(inputs)
  terms = branch.losses_for_replica(outputs, 4)
  return {k: float(v) for k, v in terms.items()}, outputs


@pytest.mark.parametrize("case, value", [("case_sscs_nan_padding", np.nan),
                                         ("case_sscs_inf_padding", np.inf)])
@pytest.mark.parametrize("mode", ["ss", "gtc"])
def test_non_finite_padded_rows_do_not_reach_the_loss(case, value, mode):
  inputs = make_inputs(4, seed=3)
  branch, _ = make_branch(inputs, mode=mode)
  expected, _ = _losses(branch, inputs)
  poisoned = dict(inputs, clip_features=inputs["clip_features"].copy())
  poisoned["clip_features"][inputs["clip_mask"] == 0] = value
  assert (inputs["clip_mask"] == 0).any()
  got, _ = _losses(branch, poisoned)
  assert all(np.isfinite(v) for v in got.values()), got
  for name in expected:
    np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["ss", "gtc"])
def test_a_sample_without_valid_clips_adds_nothing(mode):
  # case_sscs_no_valid_clip: the sample is left out of the contrast (it has no clip to be
  # a positive or a negative); the others keep their values.
  inputs = make_inputs(4, seed=5, full_cover=False)
  branch, _ = make_branch(inputs, mode=mode, lambda2=0.0)
  _, before = _losses(branch, inputs)
  empty = dict(inputs, clip_mask=inputs["clip_mask"].copy())
  empty["clip_mask"][2] = 0.0
  terms, after = _losses(branch, empty)
  contrast = after["contrast"].numpy()
  assert contrast[2] == 0.0 and np.isfinite(terms["total"]) and terms["total"] < 1e3
  if mode == "gtc":  # the empty video held no negative of the others in its own row only
    keep = [0, 1, 3]
    assert np.all(np.isfinite(contrast[keep])) and np.all(contrast[keep] > 0)
  np.testing.assert_allclose(float(terms["contrast"]), contrast.sum(), rtol=1e-6)
  assert before["contrast"].numpy()[2] != 0.0


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("mode", ["ss", "gtc"])
def test_zero_padded_rows_give_finite_gradients(mode, jit_compile):
  """Padded rows of zeros through a bias-free projection (as at initialisation) are zero
  vectors to normalise: their gradient must be 0, not 0 * inf, with or without XLA."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  inputs = make_inputs(4, seed=7)
  inputs["clip_features"][inputs["clip_mask"] == 0] = 0.0
  branch, _ = make_branch(inputs, mode=mode)
  for variable in branch.weights:
    if "bias" in variable.path:
      variable.assign(tf.zeros_like(variable))
  values = {k: tf.constant(v) for k, v in inputs.items()}

  @tf.function(jit_compile=jit_compile)
  def gradients(values):
    with tf.GradientTape() as tape:
      tape.watch(values["clip_features"])
      total = branch.losses_for_replica(branch(values), 4)["total"]
    return total, tape.gradient(total, [values["clip_features"]] + branch.trainable_weights)

  total, grads = gradients(values)
  assert np.isfinite(float(total))
  for variable, grad in zip([None] + branch.trainable_weights, grads):
    grad = tf.convert_to_tensor(grad).numpy()
    assert np.isfinite(grad).all(), variable.path if variable is not None else "features"
  assert np.abs(grads[0].numpy()[inputs["clip_mask"] > 0]).sum() > 0
