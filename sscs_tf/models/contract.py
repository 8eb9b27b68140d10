"""The model contract: what every grounding model is given, what it returns for the Sscs
branch, how its weights and random state are checkpointed, and the data it is trained on.

Training, evaluation, export and the branch all go through these functions, so a baseline
that keeps the contract (`models/baseline.py`) works with all of them.
"""

import tensorflow as tf
from keras import ops

from sscs_tf import models
from sscs_tf.data import pipeline, text

# What a model is called on: features [B, S, D], feature_mask [B, S], word_ids [B, L],
# num_words [B].
MODEL_INPUT_KEYS = ("features", "feature_mask", "word_ids", "num_words")
# The model outputs the Sscs branch reads: clip_features [B, T, H], clip_mask [B, T],
# sentence_feature [B, H'].
CLIP_OUTPUT_KEYS = ("clip_features", "clip_mask", "sentence_feature")
# The batch fields the branch reads: the ground truth (support sets) and the words (captions).
BRANCH_BATCH_KEYS = ("start", "end", "duration", "word_ids", "num_words")


# A model whose numbers depend on the whole batch (VSLNet pads it to its longest video,
# query and word; its highlighting loss divides by the batch's valid steps) declares
# `batch_statistics(inputs) -> {name: (scalar, "sum" | "max")}`. On several replicas each
# holds a part of the global batch: the trainer reduces the statistics over them and calls
# the model on `inputs["global/<name>"]` too, so a step is the single-device step. Without
# them (one device, evaluation, serving) the model takes its own batch's.
GLOBAL_PREFIX = "global/"


def model_inputs(batch):
  """The fields of a pipeline batch a model is called on (and its global statistics)."""
  inputs = {k: batch[k] for k in MODEL_INPUT_KEYS}
  inputs.update({k: v for k, v in batch.items() if k.startswith(GLOBAL_PREFIX)})
  return inputs


def with_global_statistics(model, batch):
  """`batch` plus the model's `batch_statistics` over every replica in sync
  (`global/<name>`, float32), when it declares some and runs on several replicas."""
  statistics = getattr(model, "batch_statistics", None)
  context = tf.distribute.get_replica_context()
  if statistics is None or context is None or context.num_replicas_in_sync == 1:
    return batch
  batch = dict(batch)
  for name, (value, reduction) in statistics(model_inputs(batch)).items():
    if reduction not in ("sum", "max"):
      raise ValueError(f"batch_statistics: {name!r} has the reduction {reduction!r}; "
                       "'sum' or 'max'.")
    values = context.all_gather(tf.reshape(tf.cast(value, tf.float32), [1]), axis=0)
    batch[GLOBAL_PREFIX + name] = (tf.reduce_sum(values) if reduction == "sum"
                                   else tf.reduce_max(values))
  return batch


def global_statistic(inputs, name: str, local):
  """`inputs["global/<name>"]` when the trainer gave it, else `local` (this batch's)."""
  value = inputs.get(GLOBAL_PREFIX + name)
  return local if value is None else ops.cast(value, local.dtype)


def branch_inputs(outputs, batch):
  """The Sscs branch's inputs: the model's clip and sentence features and the batch's ground
  truth and words."""
  return {**{k: outputs[k] for k in CLIP_OUTPUT_KEYS},
          **{k: batch[k] for k in BRANCH_BATCH_KEYS}}


def dummy_batch(config, batch_size: int = 1):
  """Inputs of the right shapes to build the model and the branch before restoring."""
  segments, dim = config.data.num_segments, config.model.feature_dim
  return {
      "features": tf.zeros([batch_size, segments, dim]),
      "feature_mask": tf.ones([batch_size, segments]),
      "word_ids": tf.fill([batch_size, 2], text.UNK_ID),
      "num_words": tf.fill([batch_size], 2),
      "start": tf.zeros([batch_size]), "end": tf.ones([batch_size]),
      "duration": tf.fill([batch_size], 2.0),
  }


def xla_compiled(fn):
  """`fn(batch)` compiled by XLA (`config.train.jit_compile`), given the batch's numeric
  fields only: string fields (query ids, sentences) cannot enter an XLA cluster, and a model,
  its loss and the branch read none."""
  compiled = tf.function(fn, jit_compile=True)
  return lambda batch: compiled({k: v for k, v in batch.items() if v.dtype != tf.string})


def model_checkpoint(model) -> tf.train.Checkpoint:
  """A checkpoint of the model's weights alone, readable from a full training checkpoint."""
  return tf.train.Checkpoint(model_weights=list(model.weights))


def random_state(layer) -> list:
  """The variables `layer` holds beside its weights: the states of the Keras SeedGenerators
  its random layers draw from (the masks of `keras.layers.Dropout`, `keras.random.*` given a
  SeedGenerator). A training checkpoint holds them, so that a resumed run draws what an
  uninterrupted one would; a draw from TensorFlow's global random state would escape it."""
  weights = {id(v) for v in layer.weights}
  return [v for v in layer.variables if id(v) not in weights]


def make_dataset(config, split: str, input_context=None, **kwargs) -> tf.data.Dataset:
  """`pipeline.make_dataset` of `config.data`, with the targets `config.model`'s baseline
  trains on (keyword arguments as there)."""
  targets = models.get(config.model.name).targets
  return pipeline.make_dataset(config.data, split, input_context, targets=targets, **kwargs)


def gt_clip_mask(start, end, duration, clip_mask):
  """M_i: the clips of `clip_features` that lie at least half inside the ground truth.

  Clip t of a video with n valid clips spans [t*d/n, (t+1)*d/n]. The clip holding the
  interval's midpoint is always a GT clip, so M_i is never empty (docs/sscs.md,
  "What it computes", GT clips).

  Args:
    start, end, duration: `[B]` seconds.
    clip_mask: `[B, T]`, 1 for the video's clips (a prefix), 0 for padding.
  Returns:
    `[B, T]` float32.
  """
  clip_mask = ops.cast(clip_mask, "float32")
  start, end, duration = (ops.cast(x, "float32")[:, None] for x in (start, end, duration))
  num_valid = ops.sum(clip_mask, axis=1, keepdims=True)
  clip_length = duration / ops.maximum(num_valid, 1.0)
  index = ops.cast(ops.arange(ops.shape(clip_mask)[1]), "float32")[None, :]
  clip_start, clip_end = index * clip_length, (index + 1.0) * clip_length
  overlap = ops.maximum(ops.minimum(clip_end, end) - ops.maximum(clip_start, start), 0.0)
  half_inside = ops.cast(overlap >= 0.5 * clip_length, "float32")
  middle = ops.floor((start + end) * 0.5 / clip_length)
  middle = ops.clip(middle, 0.0, ops.maximum(num_valid - 1.0, 0.0))
  holds_middle = ops.cast(ops.equal(index, middle), "float32")
  return ops.maximum(half_inside, holds_middle) * clip_mask
