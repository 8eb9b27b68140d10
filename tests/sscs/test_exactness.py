"""SscsBranch against the independent numpy reference, and against values worked by hand."""

import math

import numpy as np
import pytest
import tensorflow as tf

from sscs_tf.sscs.branch import SscsBranch
from tests.sscs import numpy_reference as ref

T, H, H_SENTENCE, DIM, VOCAB, MAX_WORDS = 8, 6, 5, 8, 11, 6
RTOL, ATOL = 1e-5, 1e-5
SUPPORTS = ("video", "gt", "non_gt")
FUNCTIONS = ("ca", "sa", "fc", "conv", "mp", "ap")
LN2 = math.log(2.0)


def make_inputs(batch, seed, full_cover=True):
  """Random inputs; example 0 has all T clips, the others fewer (padded at the end). With
  full_cover and batch >= 3, the last example's GT covers its whole video."""
  rng = np.random.default_rng(seed)
  valid = np.concatenate([[T], rng.integers(2, T + 1, batch - 1)]).astype(int)
  clip_mask = (np.arange(T)[None] < valid[:, None]).astype(np.float32)
  duration = rng.uniform(5.0, 40.0, batch)
  start = rng.uniform(0.0, 0.7, batch) * duration
  end = np.minimum(start + rng.uniform(0.05, 0.5, batch) * duration, duration)
  if full_cover and batch >= 3:
    start[-1], end[-1] = 0.0, duration[-1]
  num_words = rng.integers(1, MAX_WORDS + 1, batch)
  word_ids = rng.integers(1, VOCAB, (batch, MAX_WORDS))
  word_ids[np.arange(MAX_WORDS)[None] >= num_words[:, None]] = 0
  return {
      # Padded clips hold non-zero features: the branch must ignore them.
      "clip_features": rng.normal(size=(batch, T, H)).astype(np.float32),
      "clip_mask": clip_mask,
      "sentence_feature": rng.normal(size=(batch, H_SENTENCE)).astype(np.float32),
      "start": start.astype(np.float32), "end": end.astype(np.float32),
      "duration": duration.astype(np.float32),
      "word_ids": word_ids.astype(np.int32), "num_words": num_words.astype(np.int32)}


def make_branch(inputs, seed=0, **kwargs):
  """A built branch whose every weight (biases included) is random."""
  config = dict(mode="ss", lambda1=0.3, lambda2=0.2, tau=0.1, dim=DIM, head="linear",
                support="video", function="ca", reduction="sum", num_clips=T,
                vocab_size=VOCAB, caption_units=7, caption_embedding_dim=5)
  config.update(kwargs)
  branch = SscsBranch(**config)
  branch(inputs)
  rng = np.random.default_rng(seed + 100)
  for variable in branch.weights:
    variable.assign(rng.normal(0.0, 0.5, variable.shape).astype(np.float32))
  return branch, config


def check_against_reference(branch, config, inputs):
  got = {k: v.numpy() for k, v in branch(inputs).items()}
  expected = ref.branch_outputs(ref.branch_params(branch), config, inputs)
  assert set(got) == set(expected)
  for key in expected:
    np.testing.assert_allclose(got[key], expected[key], rtol=RTOL, atol=ATOL, err_msg=key)
  batch = len(inputs["start"])
  for reduction in ("sum", "mean"):
    # losses_for_replica reads only the config, so an unbuilt copy serves for both.
    other = SscsBranch.from_config({**branch.get_config(), "reduction": reduction})
    terms = {k: np.asarray(v) for k, v in other.losses_for_replica(got, batch).items()}
    expected_terms = ref.losses(expected, {**config, "reduction": reduction}, batch)
    assert set(terms) == set(expected_terms)
    for key in expected_terms:
      np.testing.assert_allclose(terms[key], expected_terms[key], rtol=RTOL, atol=ATOL,
                                 err_msg=f"{reduction} {key}")
  return got, expected


@pytest.mark.parametrize("batch", [1, 3, 8])
@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize("support", SUPPORTS)
def test_ss_matches_reference(support, function, batch):
  inputs = make_inputs(batch, seed=batch)
  branch, config = make_branch(inputs, mode="ss", support=support, function=function)
  got, _ = check_against_reference(branch, config, inputs)
  full_cover = support == "non_gt" and batch >= 3
  np.testing.assert_array_equal(got["fell_back"], [0] * (batch - 1) + [float(full_cover)])


@pytest.mark.parametrize("head", ["linear", "mlp"])
@pytest.mark.parametrize("batch", [1, 3, 8])
def test_gtc_matches_reference(batch, head):
  inputs = make_inputs(batch, seed=10 + batch)
  branch, config = make_branch(inputs, mode="gtc", head=head, reduction="mean")
  got, _ = check_against_reference(branch, config, inputs)
  np.testing.assert_array_equal(got["fell_back"], np.zeros(batch))


@pytest.mark.parametrize("support,function", [("video", "ca"), ("non_gt", "conv"),
                                              ("gt", "fc")])
def test_ss_mlp_head_matches_reference(support, function):
  inputs = make_inputs(3, seed=21)
  branch, config = make_branch(inputs, head="mlp", support=support, function=function,
                               reduction="mean")
  check_against_reference(branch, config, inputs)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_empty_non_gt_falls_back_to_video_support(function):
  inputs = make_inputs(3, seed=5)
  non_gt, _ = make_branch(inputs, support="non_gt", function=function)
  video, _ = make_branch(inputs, support="video", function=function)
  video.set_weights(non_gt.get_weights())
  got_non_gt, got_video = non_gt(inputs), video(inputs)
  np.testing.assert_array_equal(got_non_gt["fell_back"].numpy(), [0, 0, 1])
  assert got_non_gt["gt_clips"].numpy()[2] == inputs["clip_mask"][2].sum()
  for key in ("contrast", "caption"):
    # Eq. 6 for sentence i reads only w_i and the Y_j, so the fallback example matches V-SS.
    np.testing.assert_allclose(got_non_gt[key].numpy()[2], got_video[key].numpy()[2],
                               rtol=1e-6, err_msg=key)
    if function != "mp":  # a max over all clips may well come from the non-GT ones alone
      assert abs(got_non_gt[key].numpy()[0] - got_video[key].numpy()[0]) > 1e-4, key


@pytest.mark.parametrize("mode", ["gtc", "ss"])
@pytest.mark.parametrize("lambda1,lambda2", [(0.0, 0.2), (0.3, 0.0)])
def test_zero_lambda_drops_its_objective(mode, lambda1, lambda2):
  inputs = make_inputs(3, seed=7)
  branch, config = make_branch(inputs, mode=mode, lambda1=lambda1, lambda2=lambda2,
                               support="gt", function="sa")
  got, expected = check_against_reference(branch, config, inputs)
  assert ("contrast" in got) == (lambda1 > 0) and ("caption" in got) == (lambda2 > 0)
  terms = branch.losses_for_replica(got, 3)
  kept = "contrast" if lambda1 > 0 else "caption"
  np.testing.assert_allclose(np.asarray(terms["total"]),
                             max(lambda1, lambda2) * np.asarray(terms[kept]), rtol=1e-6)
  if lambda2 == 0:
    assert branch.decoder is None and branch.pooling is None
  if lambda1 == 0:  # "sa" does not read Y either: Phi would get no gradient
    assert branch.phi is None


@pytest.mark.parametrize("mode,function", [("gtc", "ca"), ("ss", "ca"), ("ss", "fc"),
                                           ("ss", "conv")])
def test_gradients_reach_the_encoders(mode, function):
  inputs = make_inputs(3, seed=9)
  branch, _ = make_branch(inputs, mode=mode, function=function)
  clip_features = tf.constant(inputs["clip_features"])
  sentence = tf.constant(inputs["sentence_feature"])
  with tf.GradientTape() as tape:
    tape.watch([clip_features, sentence])
    outputs = branch({**inputs, "clip_features": clip_features, "sentence_feature": sentence})
    total = branch.losses_for_replica(outputs, 3)["total"]
  clip_grad, sentence_grad = (g.numpy() for g in tape.gradient(total, [clip_features, sentence]))
  for grad in (clip_grad, sentence_grad):
    assert np.isfinite(grad).all() and np.abs(grad).max() > 1e-6
  padded = inputs["clip_mask"] == 0
  assert padded.any()
  np.testing.assert_array_equal(clip_grad[padded], 0.0)  # padded clips never contribute
  assert np.abs(clip_grad[~padded]).sum(axis=-1).min() > 0.0


@pytest.mark.parametrize("mode", ["gtc", "ss"])
def test_sentence_gradient_matches_reference_finite_differences(mode):
  inputs = make_inputs(3, seed=11)
  branch, config = make_branch(inputs, mode=mode, support="non_gt", function="ca")
  params = ref.branch_params(branch)
  sentence = tf.constant(inputs["sentence_feature"])
  with tf.GradientTape() as tape:
    tape.watch(sentence)
    total = branch.losses_for_replica(branch({**inputs, "sentence_feature": sentence}),
                                      3)["total"]
  grad = tape.gradient(total, sentence).numpy()

  def reference_total(values):
    feed = {**inputs, "sentence_feature": values}
    return ref.losses(ref.branch_outputs(params, config, feed), config, 3)["total"]

  base, step = inputs["sentence_feature"].astype(np.float64), 1e-5
  numeric = np.zeros_like(base)
  for index in np.ndindex(base.shape):
    plus, minus = base.copy(), base.copy()
    plus[index] += step
    minus[index] -= step
    numeric[index] = (reference_total(plus) - reference_total(minus)) / (2 * step)
  np.testing.assert_allclose(grad, numeric, rtol=2e-3, atol=2e-4)


# ----------------------------------------------------------------------------- by hand
# tau = 1 / ln 2, so e^{x.y/tau} = 2^{x.y}. Identity heads, so X and Y are the inputs.
# Duration 2 s, two clips [0,1] [1,2]; sentence 0 is [0,1] s (M_0 = {clip 0}),
# sentence 1 is [1,2] s (M_1 = {clip 1}).
# X_0 = [(1,0), (0,1)], X_1 = [(-1,0), (0,1)], Y_0 = (1,0), Y_1 = (0,1).
HAND_INPUTS = {
    "clip_features": np.float32([[[1, 0], [0, 1]], [[-1, 0], [0, 1]]]),
    "clip_mask": np.float32([[1, 1], [1, 1]]),
    "sentence_feature": np.float32([[1, 0], [0, 1]]),
    "start": np.float32([0, 1]), "end": np.float32([1, 2]), "duration": np.float32([2, 2]),
    "word_ids": np.int32([[1], [1]]), "num_words": np.int32([1, 1])}


def _hand_branch(**kwargs):
  branch = SscsBranch(lambda1=1.0, lambda2=0.0, tau=1.0 / LN2, dim=2, num_clips=2,
                      **kwargs)
  branch(HAND_INPUTS)
  for head in (branch.psi, branch.phi):
    head.set_weights([np.eye(2, dtype=np.float32), np.zeros(2, np.float32)])
  return branch


def test_gtc_contrast_by_hand():
  # Sentence 0: P = {x00.Y0 = 1} -> 2; N = {x01: 0, x10: -1, x11: 0} -> 1 + 1/2 + 1.
  # Sentence 1: P = {x11.Y1 = 1} -> 2; N = {x10: 0, x00: 0, x01: 1} -> 1 + 1 + 2.
  branch = _hand_branch(mode="gtc")
  outputs = branch(HAND_INPUTS)
  np.testing.assert_array_equal(outputs["gt_clips"].numpy(), [1, 1])
  expected = [math.log(4.5 / 2.0), math.log(6.0 / 2.0)]
  np.testing.assert_allclose(outputs["contrast"].numpy(), expected, rtol=1e-6)
  np.testing.assert_allclose(float(branch.losses_for_replica(outputs, 2)["total"]),
                             sum(expected), rtol=1e-6)


ROOT2, ROOT5 = math.sqrt(2.0), math.sqrt(5.0)


@pytest.mark.parametrize("support,function,expected", [
    # GT-SS holds one clip, so w_0 = x00 = Y0 and w_1 = x11 = Y1: -log(2 / (2 + 1)).
    ("gt", "ca", [math.log(1.5), math.log(1.5)]),
    ("gt", "mp", [math.log(1.5), math.log(1.5)]),
    # AP: w_0 = (1,1)/sqrt2 (ties: log 2); w_1 = (-1,1)/sqrt2: w.Y1 = 1/sqrt2 = -w.Y0.
    ("video", "ap", [LN2, math.log(1.0 + 2.0 ** -ROOT2)]),
    # SA: the two clips of each video are orthogonal, z ties, so SA equals AP here.
    ("video", "sa", [LN2, math.log(1.0 + 2.0 ** -ROOT2)]),
    # MP: w_0 = (1,1)/sqrt2; w_1 = max((-1,0),(0,1)) = (0,1) = Y1: log(1 + 2^-1).
    ("video", "mp", [LN2, math.log(1.5)]),
    # CA: a_0 = (2/3, 1/3), w_0 = (2,1)/sqrt5; a_1 = (1/3, 2/3), w_1 = (-1,2)/sqrt5.
    ("video", "ca", [math.log(1.0 + 2.0 ** (-1.0 / ROOT5)),
                     math.log(1.0 + 2.0 ** (-3.0 / ROOT5))]),
    # Non-GT-SS: w_0 = x01 = Y1, so w.Y0 = 0, w.Y1 = 1: -log(1 / (1 + 2));
    # w_1 = x10 = -Y0, so w.Y1 = 0, w.Y0 = -1: -log(1 / (1 + 1/2)).
    ("non_gt", "ap", [math.log(3.0), math.log(1.5)]),
])
def test_ss_contrast_by_hand(support, function, expected):
  branch = _hand_branch(mode="ss", support=support, function=function, reduction="mean")
  outputs = branch(HAND_INPUTS)
  np.testing.assert_allclose(outputs["contrast"].numpy(), expected, rtol=1e-6)
  np.testing.assert_allclose(float(branch.losses_for_replica(outputs, 2)["total"]),
                             sum(expected) / 2.0, rtol=1e-6)


def test_caption_by_hand():
  # A decoder with zero weights except the output bias (0, 0, ln 2) over a 3-word
  # vocabulary: every step predicts p(<eos>=2) = 1/2 and p(w) = 1/4 for the others, so
  # -log p = n log 4 + log 2 whatever w is: the n words, then <eos>.
  inputs = {**HAND_INPUTS, "word_ids": np.int32([[1, 1, 0], [1, 0, 0]]),
            "num_words": np.int32([2, 1])}
  branch = SscsBranch(mode="ss", lambda1=0.0, lambda2=1.0, dim=2, num_clips=2, vocab_size=3,
                      caption_units=3, caption_embedding_dim=2)
  branch(inputs)
  decoder = branch.decoder
  for variable in decoder.weights:
    variable.assign(np.zeros(variable.shape, np.float32))
  decoder.logits.bias.assign(np.float32([0.0, 0.0, LN2]))
  outputs = branch(inputs)
  assert "contrast" not in outputs
  np.testing.assert_allclose(outputs["caption"].numpy(), [5 * LN2, 3 * LN2], rtol=1e-6)
  np.testing.assert_allclose(float(branch.losses_for_replica(outputs, 2)["total"]),
                             4 * LN2, rtol=1e-6)
