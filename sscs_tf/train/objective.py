"""The training objective of Eq. 1: L = L_vg + lambda1 L_contrast + lambda2 L_caption.

The one place where a baseline's outputs meet the Sscs branch. A baseline model returns a
dict holding its own outputs plus `clip_features [B, T, H]`, `clip_mask [B, T]` and
`sentence_feature [B, H']`; `VG_LOSSES[name]` turns its outputs into per-example grounding
losses; the branch reads the three shared tensors. Every value returned is this replica's
share of the global-batch objective, so summing over replicas (as gradients are summed)
gives the single-device value.
"""

from typing import Optional

import tensorflow as tf

from sscs_tf.scoring import losses


def tan_vg_loss(outputs, batch, loss_config):
  """2D-TAN's scaled-IoU BCE per example: {"vg": [B]}. (With one fixed map mask, the mean
  of these equals the reference's batch loss.)"""
  return {"vg": losses.tan_loss_per_example(outputs["scores"], batch["iou_map"],
                                            outputs["map_mask"], loss_config.min_iou,
                                            loss_config.max_iou)}


def lgi_vg_loss(outputs, batch, loss_config):
  """LGI's three terms per example (reference weights in the config): regression on the
  normalised boundaries, temporal attention guidance, distinct query attention."""
  duration = tf.cast(batch["duration"], tf.float32)
  targets = tf.stack([batch["start"], batch["end"]], axis=1) / duration[:, None]
  return {
      "regression": loss_config.regression_weight * losses.lgi_regression_loss_per_example(
          outputs["times"], targets),
      "attention_guidance": loss_config.attention_guidance_weight
                            * losses.lgi_attention_guidance_loss_per_example(
                                outputs["temporal_attention"], batch["gt_segment_mask"]),
      "distinct_query": loss_config.distinct_query_weight
                        * losses.lgi_distinct_query_loss_per_example(
                            outputs["phrase_attention"], loss_config.dqa_lambda),
  }


VG_LOSSES = {"tan": tan_vg_loss, "lgi": lgi_vg_loss}
# The per-example terms each baseline's loss returns, in order.
VG_TERMS = {"tan": ("vg",), "lgi": ("regression", "attention_guidance", "distinct_query")}


def term_names(model_name: str, branch=None) -> tuple:
  """Names of the scalars `compute_losses` returns for this model and branch."""
  names = ["total", "vg"] + [n for n in VG_TERMS[model_name] if n != "vg"]
  if branch is not None:
    names += [n for n, weight in (("contrast", branch.lambda1), ("caption", branch.lambda2))
              if weight > 0]
    names.append("sscs_fell_back")
  return tuple(names)

SSCS_INPUT_KEYS = ("start", "end", "duration", "word_ids", "num_words")


def compute_losses(model_name: str, outputs, batch, loss_config, global_batch_size,
                   branch: Optional[tf.keras.layers.Layer] = None, training: bool = True):
  """Returns a dict of scalars: `total` and every component (`vg`, the baseline's own
  terms when it has several, `contrast`, `caption`), and `sscs_fell_back` (count of Non-GT support sets
  that fell back to V-SS in this replica's batch)."""
  per_example = VG_LOSSES[model_name](outputs, batch, loss_config)
  terms = {name: tf.reduce_sum(value) / global_batch_size
           for name, value in per_example.items()}
  if "vg" not in terms:  # a baseline with several terms (LGI): L_vg is their sum
    terms["vg"] = tf.add_n(list(terms.values()))
  total = terms["vg"]
  if branch is not None:
    branch_inputs = {k: outputs[k] for k in ("clip_features", "clip_mask", "sentence_feature")}
    branch_inputs.update({k: batch[k] for k in SSCS_INPUT_KEYS})
    branch_outputs = branch(branch_inputs, training=training)
    shares = branch.losses_for_replica(branch_outputs, global_batch_size)
    total = total + shares.pop("total")
    terms.update(shares)
    terms["sscs_fell_back"] = tf.reduce_sum(branch_outputs["fell_back"])
  terms["total"] = total
  return terms
