"""Parity with the authors' LGI (PyTorch) through its exported weights, activations, losses,
gradients and batch-norm statistics (a tiny Charades configuration, eval and training mode)."""

import json

import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from sscs_tf.scoring import losses
from sscs_tf.data import preprocess
from sscs_tf.models import lgi, lgi_import
from tests import testing

pytestmark = pytest.mark.shared_data


def _load():
  data = dict(np.load(testing.shared_path("parity", "lgi", "model_charades.npz")))
  with open(testing.shared_path("parity", "lgi", "model_charades.config.json")) as f:
    return data, json.load(f)


def reference_state(data, prefix="param/"):
  return {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}


def build_reference_model(data, reference_config, **overrides):
  fields = lgi_import.config_from_reference(reference_config)
  fields.pop("name")
  fields.update(overrides)
  model = lgi.LGI(**fields)
  lgi_import.load_reference_weights(model, reference_state(data))
  return model


def reference_inputs(data):
  """The reference's net_inps as the port's call inputs (the shared README's mapping)."""
  return {"features": data["video_feats"],
          "feature_mask": data["video_masks"][..., 0].astype(np.float32),
          "word_ids": data["query_labels"].astype(np.int32),
          "num_words": data["query_masks"].sum(axis=1).astype(np.int32)}


def assert_close(got, reference, name, rtol=1e-5, scale=1e-6):
  """Relative error, with an absolute floor relative to the tensor's largest value (values
  crossing zero have no meaningful relative error), as the 2D-TAN parity tests measure."""
  got = np.asarray(got, np.float64)
  np.testing.assert_allclose(got, reference, rtol=rtol,
                             atol=scale * max(np.abs(reference).max(), 1e-30), err_msg=name)


def stagewise_intermediates(model, inputs, outputs):
  """Every reference intermediate, from the model's own layers, fed from its own outputs."""
  encoder, sqan = model.query_encoder, model.query_attention
  words, sentence, _ = encoder(inputs["word_ids"], inputs["num_words"])
  mask = inputs["feature_mask"]
  got = {"word_emb": encoder.embedding(inputs["word_ids"]), "word_feats": words,
         "sen_feats": sentence}
  previous = ops.zeros_like(sentence)
  queries, guides, logits = [], [], []
  for n, query_layer in enumerate(sqan.phrase_queries):
    queries.append(query_layer(sentence))
    guides.append(ops.relu(sqan.guide(ops.concatenate([queries[-1], previous], -1))))
    hidden = ops.tanh(sqan.word_key(words) + sqan.guide_key(guides[-1])[:, None])
    logits.append(sqan.score(hidden)[..., 0])
    previous = outputs["phrases"][:, n]
  got.update(sqan_q=ops.stack(queries, 1), sqan_g=ops.stack(guides, 1),
             sqan_logits=ops.stack(logits, 1))
  fused = [branch.fuse(outputs["clip_features"], outputs["phrases"][:, n])
           for n, branch in enumerate(model.phrase_branches)]
  got["fused"] = ops.stack(fused, 1)
  got["local_res"] = ops.stack([branch.local_residual(m) for branch, m in
                                zip(model.phrase_branches, fused)], 1)
  x = ops.einsum("bn,bnth->bth", outputs["phrase_weights"], outputs["local_features"])
  got["aggregated"] = x
  for k, block in enumerate(model.nonlocal_blocks):
    x, got[f"nl{k}_attw"] = block(x, mask, return_attention=True)
    got[f"nl{k}_out"] = x
  embed, hidden, to_times = model.regression
  got["tatt_pooled"] = ops.einsum("bt,bth->bh", outputs["temporal_attention"],
                                  outputs["global_features"])
  got["tatt_embed"] = embed(got["tatt_pooled"])
  got["reg_hidden"] = hidden(got["tatt_embed"])
  got["reg_logits"] = to_times(ops.relu(got["reg_hidden"]))
  return got


# The model's own outputs -> the reference's names.
MODEL_OUTPUTS = {"clip_features": "seg_feats", "sentence_feature": "sen_feats",
                 "phrases": "se_feats", "phrase_attention": "se_attw",
                 "local_features": "local", "phrase_weights": "phrase_pool_w",
                 "global_features": "sa_feats", "temporal_attention": "tag_attw",
                 "times": "loc"}


INPUTS = ("video_feats", "video_masks", "query_labels", "query_masks", "query_lengths",
          "grounding_start_pos", "grounding_end_pos", "grounding_att_masks", "nfeats",
          "timestamps", "duration", "raw_num_features", "dqa_lambda")


def test_every_intermediate_matches_reference():
  data, reference_config = _load()
  model = build_reference_model(data, reference_config)
  inputs = reference_inputs(data)
  outputs = model(inputs, return_intermediates=True)
  for name, reference_name in MODEL_OUTPUTS.items():
    assert_close(outputs[name], data[reference_name], name)
  got = stagewise_intermediates(model, inputs, outputs)
  # Together they cover every intermediate the file holds.
  intermediates = {k for k in data
                   if not k.startswith(("param/", "grad/", "trainbn/", "loss")) and k not in INPUTS}
  assert set(got) | set(MODEL_OUTPUTS.values()) == intermediates
  for name, value in got.items():
    assert_close(value, data[name], name)
  # Padding as the reference leaves it: zero words past the length and zero attention on
  # padded segments, but fused features that are not zero there.
  word_feats = np.asarray(got["word_feats"])  # 7, 10 and 3 words
  assert not word_feats[0, 7:].any() and not word_feats[2, 3:].any()
  assert not np.asarray(outputs["temporal_attention"])[1, 21:].any()
  assert np.asarray(got["fused"])[1, :, 21:].any()


def lgi_loss_terms(outputs, data, per_example=False):
  targets = np.stack([data["grounding_start_pos"], data["grounding_end_pos"]], -1)
  suffix = "_per_example" if per_example else ""
  return {
      "grounding": getattr(losses, f"lgi_regression_loss{suffix}")(outputs["times"], targets),
      "tag": getattr(losses, f"lgi_attention_guidance_loss{suffix}")(
          outputs["temporal_attention"], data["grounding_att_masks"]),
      "dqa": getattr(losses, f"lgi_distinct_query_loss{suffix}")(
          outputs["phrase_attention"], float(data["dqa_lambda"])),
  }


def test_loss_terms_match_reference():
  data, reference_config = _load()
  outputs = build_reference_model(data, reference_config)(reference_inputs(data))
  terms = lgi_loss_terms(outputs, data)
  for name, value in terms.items():
    assert_close(value, data[f"loss/{name}"], name)
    assert float(data[f"loss_weight/{name}"]) == 1.0
  for name, value in lgi_loss_terms(outputs, data, per_example=True).items():
    assert_close(value, data[f"loss_per_example/{name}"], name)
  assert_close(sum(terms.values()), data["loss/total"], "total")
  # The TAG target is the pipeline's: the annotated times, n = min(T, S) valid steps; sample
  # 1 marks padded step 21, where the attention is 0 and the term adds -log(1e-8).
  target = preprocess.lgi_gt_mask(data["timestamps"][:, 0], data["timestamps"][:, 1],
                                  data["duration"], np.minimum(data["raw_num_features"], 32), 32)
  np.testing.assert_array_equal(target, data["grounding_att_masks"])
  assert data["grounding_att_masks"][1, 21] == 1 and data["nfeats"][1] == 21


SHIFT_INVARIANT_BIAS = "sqan.att_fn.to_alpha.bias"


def test_eval_mode_gradients_match_reference():
  data, reference_config = _load()
  model = build_reference_model(data, reference_config)
  inputs = reference_inputs(data)
  with tf.GradientTape() as tape:
    total = sum(lgi_loss_terms(model(inputs), data).values())
  pairs = [(name, variable, convert) for name, (variable, convert)
           in lgi_import.reference_weight_map(model).items() if variable.trainable]
  grads = tape.gradient(total, [variable for _, variable, _ in pairs])
  reference = reference_state(data, "grad/")
  # Every reference gradient has a Keras variable; the unused Linear has neither.
  assert sorted(reference) == sorted(name for name, _, _ in pairs)
  for (name, _, convert), grad in zip(pairs, grads):
    # The layout conversions (transposes) are their own inverses.
    got = convert(np.asarray(tf.convert_to_tensor(grad)))
    if name == SHIFT_INVARIANT_BIAS:
      # It shifts every word logit of a softmax alike: its gradient is 0 up to rounding.
      assert max(abs(float(got[0])), abs(float(reference[name][0]))) < 1e-6
      continue
    assert_close(got, reference[name], name, rtol=1e-4, scale=1e-4)


def test_training_mode_batch_norm_matches_reference():
  data, reference_config = _load()
  inputs = reference_inputs(data)
  # Training mode with every dropout off, as the reference's trainbn pass.
  model = build_reference_model(data, reference_config, dropout=0.0)
  outputs = model(inputs, training=True, return_intermediates=True)
  for name, reference_name in (("local_features", "local"), ("global_features", "sa_feats"),
                               ("temporal_attention", "tag_attw"), ("times", "loc")):
    assert_close(outputs[name], data[f"trainbn/{reference_name}"], name)
  terms = lgi_loss_terms(outputs, data)
  for name, value in terms.items():
    assert_close(value, data[f"trainbn/loss/{name}"], name)
  assert_close(sum(terms.values()), data["trainbn/loss/total"], "total")
  updated = reference_state(data, "trainbn/updated/")
  targets = lgi_import.reference_weight_map(model)
  stats = [name for name in updated if name.endswith(("running_mean", "running_var"))]
  assert len(stats) == 3 * 2 * 2
  for name in stats:  # running_var from the unbiased batch variance (n = B S = 96)
    assert_close(targets[name][0], updated[name], name)
  # The residual branch, from a fresh copy (each training call updates the statistics).
  fresh = build_reference_model(data, reference_config, dropout=0.0)
  local_res = [branch.local_residual(branch.fuse(outputs["clip_features"],
                                                 outputs["phrases"][:, n]), training=True)
               for n, branch in enumerate(fresh.phrase_branches)]
  assert_close(ops.stack(local_res, 1), data["trainbn/local_res"], "local_res")
