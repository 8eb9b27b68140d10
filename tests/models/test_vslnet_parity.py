"""Parity with the authors' VSLNet (26hzhang/VSLNet, TensorFlow 1 run through tf.compat.v1)
on seeded random inputs: every intermediate, the losses and the gradients of both predictors,
the training targets, the feature sampling, the decoding and the evaluation.

The goldens are written by tools/vslnet_goldens.py (its docstring names the commit and how
to run it); their variables are loaded with `vslnet_import`, by the reference's names.
"""

import os
import re

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from configs import vslnet_charades
from sscs_tf.data import preprocess
from sscs_tf.models import vslnet, vslnet_import, vslnet_spans
from sscs_tf.scoring import metrics
from sscs_tf.train import optimizers

GOLDENS = os.path.join(os.path.dirname(__file__), "goldens", "vslnet.npz")
COMMIT = "3793c625f2e251a5f19a0d59f0c83b12e386f808"
PREDICTORS = ("rnn", "transformer")
LOSS = ml_collections.ConfigDict(dict(highlight_lambda=5.0, l2_weight=3e-7))


@pytest.fixture(scope="module")
def goldens():
  data = dict(np.load(GOLDENS))
  assert str(data["commit"]) == COMMIT
  return data


def build(goldens, predictor, tmp_path):
  """The port at the goldens' widths, with the reference's weights; the GloVe rows come
  through an embeddings file (frozen, as the reference's word table)."""
  table = np.concatenate([np.zeros((2, 8), np.float32), goldens["vectors"]])
  path = tmp_path / f"glove_{predictor}.npy"
  np.save(path, table)
  model = vslnet.VSLNet(feature_dim=6, vocab_size=len(table), embedding_dim=8,
                        embeddings_file=str(path), char_vocab_size=11, char_dim=5,
                        hidden_size=16, num_heads=2, max_position_length=12,
                        predictor=predictor)
  prefix = f"{predictor}/param/"
  vslnet_import.load_reference_weights(
      model, {k[len(prefix):]: v for k, v in goldens.items() if k.startswith(prefix)})
  return model


def inputs(goldens):
  lengths = goldens["video_seq_length"]
  steps = goldens["video_inputs"].shape[1]
  return {"features": goldens["video_inputs"],
          "feature_mask": (np.arange(steps)[None] < lengths[:, None]).astype(np.float32),
          "word_ids": goldens["word_ids"], "num_words": (goldens["word_ids"] > 0).sum(1),
          "char_ids": goldens["char_ids"]}


def batch(goldens):
  """The pipeline's batch fields for these queries, with the targets computed by the port."""
  out = inputs(goldens)
  out.update(start=goldens["starts"], end=goldens["ends"], duration=goldens["durations"])
  config = ml_collections.ConfigDict(dict(highlight_extend=0.1))
  out.update({k: np.asarray(v) for k, v in vslnet.targets(
      {k: tf.constant(v) for k, v in out.items()}, config).items()})
  return out


def assert_close(got, reference, name, rtol=1e-5, scale=1e-6):
  """Relative error, with an absolute floor relative to the tensor's largest value (as the
  other parity tests); masked logits (-1e30) must be masked in both."""
  got, reference = np.asarray(got, np.float64), np.asarray(reference, np.float64)
  assert got.shape == reference.shape, name
  masked = np.abs(reference) >= 1e29
  np.testing.assert_array_equal(np.abs(got) >= 1e29, masked, err_msg=name)
  got, reference = got[~masked], reference[~masked]
  np.testing.assert_allclose(got, reference, rtol=rtol,
                             atol=scale * max(np.abs(reference).max(), 1e-30), err_msg=name)


INTERMEDIATES = ("words", "video_projected", "query_projected", "video_encoded",
                 "query_encoded", "similarity", "attention_fused", "concatenated",
                 "highlight_logits", "start_logits", "end_logits")


@pytest.mark.parametrize("predictor", PREDICTORS)
def test_every_intermediate_matches_reference(goldens, predictor, tmp_path):
  model = build(goldens, predictor, tmp_path)
  out = model(inputs(goldens), return_intermediates=True)
  for name in INTERMEDIATES:
    assert_close(out[name], goldens[f"{predictor}/{name}"], name)
  assert_close(out["sentence_feature"], goldens[f"{predictor}/pooled_query"], "pooled")
  assert_close(out["clip_features"], goldens[f"{predictor}/video_encoded"], "clip_features")
  scores = goldens[f"{predictor}/highlight_scores"]
  assert_close(tf.sigmoid(out["highlight_logits"]), scores, "highlight_scores")
  assert_close(out["highlighted"], goldens[f"{predictor}/concatenated"] * scores[..., None],
               "highlighted")
  mask = inputs(goldens)["feature_mask"]
  start, end = model.span_predictor.encode(out["highlighted"], mask)
  assert_close(start, goldens[f"{predictor}/start_features"], "start_features")
  assert_close(end, goldens[f"{predictor}/end_features"], "end_features")
  decoded = vslnet_spans.decode(out["start_logits"], out["end_logits"])
  np.testing.assert_array_equal(decoded[0], goldens[f"{predictor}/start_index"])
  np.testing.assert_array_equal(decoded[1], goldens[f"{predictor}/end_index"])


def test_padding_beyond_the_batch_does_not_change_outputs(goldens, tmp_path):
  """The pipeline pads to S = max_position_length; the model cuts to the batch's longest
  video and words first, so the reference's numbers (padded to the batch) come out."""
  model = build(goldens, "rnn", tmp_path)
  fed = inputs(goldens)
  wide = dict(fed, features=np.pad(fed["features"], [[0, 0], [0, 2], [0, 0]],
                                   constant_values=7.0),
              feature_mask=np.pad(fed["feature_mask"], [[0, 0], [0, 2]]),
              word_ids=np.pad(fed["word_ids"], [[0, 0], [0, 3]]),
              char_ids=np.pad(fed["char_ids"], [[0, 0], [0, 3], [0, 0]]))
  narrow, padded = model(fed), model(wide)
  for name in ("start_logits", "end_logits", "highlight_logits"):
    np.testing.assert_array_equal(np.asarray(padded[name])[:, :10], narrow[name])
    assert np.all(np.asarray(padded[name])[:, 10:] == -1e30)
  np.testing.assert_array_equal(padded["sentence_feature"], narrow["sentence_feature"])
  assert not np.asarray(padded["clip_features"])[:, 10:].any()


def test_targets_are_the_reference_labels(goldens):
  got = batch(goldens)
  np.testing.assert_array_equal(got["start_index"], goldens["s_labels"].argmax(1))
  np.testing.assert_array_equal(got["end_index"], goldens["e_labels"].argmax(1))
  assert (goldens["s_labels"].sum(1) == 1).all()
  np.testing.assert_array_equal(got["highlight_labels"], goldens["h_labels"])


@pytest.mark.parametrize("predictor", PREDICTORS)
def test_losses_and_gradients_match_reference(goldens, predictor, tmp_path):
  model = build(goldens, predictor, tmp_path)
  fed = batch(goldens)
  with tf.GradientTape() as tape:
    # Dropout off, as the reference's goldens (drop_rate 0).
    terms = vslnet.grounding_loss(model(inputs(goldens)), fed, LOSS)
    means = {k: tf.reduce_mean(v) for k, v in terms.items()}
    total = tf.add_n(list(means.values()))
  # The reference: loss = mean span CE + l2, total = loss + lambda * highlight.
  assert_close(means["span"] + means["l2"], goldens[f"{predictor}/loss"], "loss")
  assert_close(means["highlight"] / 5.0, goldens[f"{predictor}/highlight_loss"], "highlight")
  assert_close(means["l2"], goldens[f"{predictor}/l2_loss"], "l2")
  assert_close(total, goldens[f"{predictor}/total_loss"], "total")
  pairs = vslnet_import.reference_weight_map(model)
  grads = tape.gradient(total, [v for v in pairs.values()])
  assert not model.word_table.trainable  # frozen, as the reference's table
  references = {name: goldens[f"{predictor}/grad/{name}"].reshape(variable.shape)
                for name, variable in pairs.items()}
  # The floor is relative to the largest gradient of all: the attention's key biases have
  # an exactly zero gradient (a softmax does not move when every key's logit moves by the
  # same q.b), so both sides hold round-off there.
  largest = max(np.abs(r).max() for r in references.values())
  for name, grad in zip(pairs, grads):
    grad = tf.convert_to_tensor(grad)  # IndexedSlices of the lookups, densified
    assert_close(grad, references[name], f"grad {name}",
                 scale=1e-6 * largest / max(np.abs(references[name]).max(), 1e-30))
  # Every trainable reference variable has its gradient checked.
  assert {k.split("/grad/", 1)[1] for k in goldens if k.startswith(f"{predictor}/grad/")} == set(pairs)


def test_sampling_is_visual_feature_sampling(goldens):
  for rows in (5, 12, 13, 30, 47):
    got, mask = preprocess.resample(goldens[f"sampling/in_{rows}"], "pad_or_average", 12)
    reference = goldens[f"sampling/out_{rows}"]
    np.testing.assert_allclose(np.asarray(got)[:len(reference)], reference, rtol=1e-6,
                               atol=1e-7)
    assert not np.asarray(got)[len(reference):].any()
    np.testing.assert_array_equal(mask, np.arange(12) < len(reference))


def test_time_to_index_is_the_reference(goldens):
  cases = goldens["spans/cases"]
  steps, duration, start, end = (cases[:, i] for i in range(4))
  s, e = vslnet_spans.time_to_index(start, end, duration.astype(np.float32),
                                    steps.astype(np.int32), 40)
  np.testing.assert_array_equal(s, cases[:, 4])
  np.testing.assert_array_equal(e, cases[:, 5])


def test_evaluation_is_the_reference(goldens):
  cases, predictions = goldens["spans/cases"], goldens["eval/predictions"]
  seconds = vslnet_spans.index_to_time_np(predictions[:, 0].astype(int),
                                          predictions[:, 1].astype(int), cases[:, 0],
                                          cases[:, 1])
  np.testing.assert_array_equal(seconds, predictions[:, 2:])
  gt = cases[:, 2:4]
  np.testing.assert_allclose(metrics.span_iou(seconds, gt), goldens["eval/ious"], rtol=1e-12)
  table = metrics.r_at_1(seconds, gt, (0.3, 0.5, 0.7))
  got = [100.0 * table[k] for k in ("R1@0.3", "R1@0.5", "R1@0.7", "mIoU")]
  np.testing.assert_allclose(got, goldens["eval/table"], rtol=1e-12)


@pytest.mark.parametrize("predictor", PREDICTORS)
def test_weight_decay_skips_the_variables_the_authors_skip(goldens, predictor, tmp_path):
  """model/ops.py decays every trainable variable but those whose name matches
  'LayerNorm', 'layer_norm' or 'bias'; the config's exclusions over the port's paths pick
  the same ones, variable by variable."""
  model = build(goldens, predictor, tmp_path)
  optim = vslnet_charades.get_config().optim
  optimizer = optimizers.make_optimizer(optim, loss_scaled=False, total_steps=10)
  pairs = vslnet_import.reference_weight_map(model)
  assert {v.path for v in pairs.values()} == {v.path for v in model.trainable_variables}
  decided = {name: optimizer.decays(variable) for name, variable in pairs.items()}
  expected = {name: not any(re.search(p, name) for p in ("LayerNorm", "layer_norm", "bias"))
              for name in pairs}
  assert decided == expected
  assert 0 < sum(decided.values()) < len(decided)
