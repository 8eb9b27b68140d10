"""The training objective of Eq. 1: L = L_vg + lambda1 L_contrast + lambda2 L_caption.

The one place where a baseline's outputs meet the Sscs branch. A baseline model returns a
dict holding its own outputs plus `clip_features [B, T, H]`, `clip_mask [B, T]` and
`sentence_feature [B, H']` (models/contract.py); its `grounding_loss` (models/baseline.py)
turns its outputs into per-example grounding losses; the branch reads the three shared
tensors. Every value returned is this replica's share of the global-batch objective, so
summing over replicas (as gradients are summed) gives the single-device value.
"""

from typing import Optional

import tensorflow as tf

from sscs_tf import models
from sscs_tf.models import contract


def term_names(model_name: str, branch=None) -> tuple:
  """Names of the scalars `compute_losses` returns for this model and branch."""
  names = ["total", "vg"] + [n for n in models.get(model_name).loss_terms if n != "vg"]
  if branch is not None:
    names += [n for n, weight in (("contrast", branch.lambda1), ("caption", branch.lambda2))
              if weight > 0]
    names.append("sscs_fell_back")
  return tuple(names)


def compute_losses(model_name: str, outputs, batch, loss_config, global_batch_size,
                   branch: Optional[tf.keras.layers.Layer] = None, training: bool = True):
  """Returns a dict of scalars: `total` and every component (`vg`, the baseline's own
  terms when it has several, `contrast`, `caption`), and `sscs_fell_back` (count of Non-GT
  support sets that fell back to V-SS in this replica's batch)."""
  baseline = models.get(model_name)
  per_example = baseline.grounding_loss(outputs, batch, loss_config)
  if tuple(per_example) != tuple(baseline.loss_terms):
    # Found while tracing the step: the logs and the NaN guard name the terms by position.
    raise ValueError(f"The {model_name!r} grounding loss returned the terms "
                     f"{tuple(per_example)}; its Baseline record lists {baseline.loss_terms}.")
  terms = {name: tf.reduce_sum(value) / global_batch_size
           for name, value in per_example.items()}
  if "vg" not in terms:  # a baseline with several terms (LGI): L_vg is their sum
    terms["vg"] = tf.add_n(list(terms.values()))
  total = terms["vg"]
  if branch is not None:
    branch_outputs = branch(contract.branch_inputs(outputs, batch), training=training)
    shares = branch.losses_for_replica(branch_outputs, global_batch_size)
    total = total + shares.pop("total")
    terms.update(shares)
    terms["sscs_fell_back"] = tf.reduce_sum(branch_outputs["fell_back"])
  terms["total"] = total
  return terms
