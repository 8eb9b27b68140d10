"""What a training run holds and checkpoints: model, Sscs branch, optimizer, schedule, step.

Checkpoints live in `{workdir}/checkpoints` (the last few, every K steps and at the end) and
`{workdir}/best` (the best evaluation so far, with `best.json`). Only the model's weights
matter for inference; the branch and the optimizer are training state.
"""

import copy
import math
import os
import re
import shutil

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from keras import ops

from sscs_tf import models
from sscs_tf.core import fileio
from sscs_tf.data import text
from sscs_tf.evaluate import eval_lib
from sscs_tf.train import distribute
from sscs_tf.core.faults import fault_point
from sscs_tf.data import pipeline
from sscs_tf.train.schedules import ReduceLROnPlateau
from sscs_tf.sscs.branch import MODES, SscsBranch

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# What tf.train.Checkpoint writes before it renames a save into place; a kill leaves it.
_STALE_SAVE = re.compile(r"ckpt-\d+_temp")


def prepare_config(config):
  """A copy of `config` with what comes from the data filled in: the vocabulary size, the
  embeddings file, the branch's clip count; checks the feature width, the splits and the
  loop's periods, so that a mistyped value fails now rather than after an epoch."""
  meta = pipeline.load_meta(config.data.data_dir)
  _check_splits_and_periods(config, meta)
  _check_values(config)
  config = copy.deepcopy(config)
  with config.unlocked():
    model = config.model
    if model.feature_dim != meta["feature_dim"]:
      raise ValueError(
          f"config.model.feature_dim is {model.feature_dim} but the features in "
          f"{config.data.data_dir} are {meta['feature_dim']}-d: pick the config's feature "
          "variant that matches the data (e.g. feature=i3d) or set "
          f"--config.model.feature_dim={meta['feature_dim']}.")
    if not model.vocab_size:
      model.vocab_size = meta["vocab_size"]
    elif model.vocab_size != meta["vocab_size"]:
      raise ValueError(f"config.model.vocab_size {model.vocab_size} differs from the data's "
                       f"vocabulary ({meta['vocab_size']} words).")
    if "embeddings_file" in model and model.embeddings_file == "auto":
      embeddings = meta.get("embeddings_file")
      model.embeddings_file = (os.path.join(os.path.abspath(config.data.data_dir), embeddings)
                               if embeddings else "")
    if config.sscs.mode != "off":
      config.sscs.vocab_size = meta["vocab_size"]
      config.sscs.num_clips = models.num_clips(config.model)
    # Not a model argument: a record of what the words start from, in config.json.
    config.word_embeddings = describe_word_embeddings(config, meta)
  return config


def describe_word_embeddings(config, meta: dict) -> dict:
  """What the model's word embeddings are: frozen vectors from a file (with the GloVe
  source and its coverage when the file is the data's), or learned from scratch."""
  path = config.model.get("embeddings_file", "")
  if not path:
    return dict(kind="learned from scratch", dim=config.model.embedding_dim,
                vocab_size=config.model.vocab_size)
  described = dict(kind="frozen vectors from a file", file=path, dim=config.model.embedding_dim,
                   vocab_size=config.model.vocab_size)
  data_file = meta.get("embeddings_file")
  if (data_file and meta.get("glove") and os.path.abspath(path) ==
      os.path.join(os.path.abspath(config.data.data_dir), data_file)):
    described.update(kind="frozen GloVe", glove=meta["glove"])
  return described


def log_word_embeddings(described: dict) -> None:
  glove = described.get("glove")
  if glove:
    logging.info("Word embeddings: frozen GloVe %s (%d-d): %d of %d vocabulary words have a "
                 "vector, %.1f%% of training tokens; the rest are zero vectors", glove["path"],
                 glove["dim"], glove["vocabulary_words_with_vector"],
                 glove["vocabulary_words"], 100.0 * glove["train_token_coverage"])
  elif "file" in described:
    logging.info("Word embeddings: frozen vectors from %s", described["file"])
  else:
    logging.info("Word embeddings: learned from scratch (%d words, %d-d)",
                 described["vocab_size"], described["dim"])


def _check_splits_and_periods(config, meta: dict) -> None:
  for field in ("train_split", "val_split", "eval_split"):
    split = config.data[field]
    if (split or field != "val_split") and split not in meta["splits"]:
      hint = (" (data_prep.charades_sta carves `val` out of the training videos unless "
              "--val_fraction 0; or set --config.data.val_split= to train without checkpoint "
              "selection)" if field == "val_split" else "")
      raise ValueError(f"config.data.{field} is {split!r}, but {config.data.data_dir} holds "
                       f"the splits {sorted(meta['splits'])}{hint}.")
  if config.data.val_split and config.data.val_split == config.data.eval_split:
    raise ValueError(f"config.data.val_split and eval_split are both "
                     f"{config.data.eval_split!r}: the split that picks the checkpoint would "
                     "be the one reported.")
  if config.optim.plateau_monitor and not config.data.val_split:
    raise ValueError(f"config.optim.plateau_monitor is {config.optim.plateau_monitor!r} but "
                     "there is no config.data.val_split: the schedule would follow the test "
                     "split. Set a validation split or --config.optim.plateau_monitor=.")
  for field in ("steps_per_call", "log_every_steps", "checkpoint_every_steps",
                "eval_every_epochs"):
    if config.train[field] < 1:
      raise ValueError(f"config.train.{field} must be at least 1, got {config.train[field]}.")


def _check_values(config) -> None:
  """Values no run can use, named now rather than as a shape error or a NaN later."""
  for field in ("batch_size", "eval_batch_size"):
    if config.data[field] < 1:
      raise ValueError(f"config.data.{field} must be at least 1, got {config.data[field]}.")
  rate = config.optim.learning_rate
  if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
    raise ValueError(f"config.optim.learning_rate must be a positive number, got {rate!r}.")
  decay = config.optim.weight_decay
  if not (isinstance(decay, (int, float)) and math.isfinite(decay) and decay >= 0):
    raise ValueError(f"config.optim.weight_decay must be a finite number >= 0 (0: none), got "
                     f"{decay!r}.")
  if config.optim.get("clip_norm") is not None and config.optim.clip_norm < 0:
    raise ValueError(f"config.optim.clip_norm must be >= 0 (0: no clipping), got "
                     f"{config.optim.clip_norm}.")
  for field in ("num_epochs", "num_train_steps"):
    if field in config.train and config.train[field] < 0:
      raise ValueError(f"config.train.{field} must be >= 0, got {config.train[field]}.")
  if config.sscs.mode not in MODES:
    raise ValueError(f"config.sscs.mode must be one of {MODES}, got {config.sscs.mode!r}.")


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


def model_checkpoint(model) -> tf.train.Checkpoint:
  """A checkpoint of the model's weights alone, readable from a full training checkpoint."""
  return tf.train.Checkpoint(model_weights=list(model.weights))


class TrainState:
  """Builds (inside the strategy's scope) and checkpoints everything a run trains."""

  def __init__(self, config, strategy, workdir: str):
    if config.train.precision not in PRECISIONS:
      raise ValueError(f"train.precision must be one of {PRECISIONS}")
    keras.mixed_precision.set_global_policy(config.train.precision)
    self.config, self.strategy, self.workdir = config, strategy, workdir
    # Every worker takes part in a save (MultiWorkerMirroredStrategy); the chief writes the
    # run's folder, the others a scratch folder that is removed after each save. All of
    # them resume from the chief's checkpoints.
    self.chief = distribute.is_chief(strategy)
    directory = self.directory = distribute.worker_dir(workdir, strategy)
    self.loss_scaled = config.train.precision == "mixed_float16"
    with strategy.scope():
      self.model = models.build_model(config.model)
      self.branch = SscsBranch(**config.sscs) if config.sscs.mode != "off" else None
      self.optimizer = _make_optimizer(config.optim, self.loss_scaled)
      self._build()
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
      mode = "min" if config.optim.plateau_monitor in ("", "loss") else "max"
      self.plateau = ReduceLROnPlateau(self.optimizer, config.optim.plateau_factor,
                                       config.optim.plateau_patience, mode)
    # Weights are checkpointed as explicit lists, in the models' construction order: Keras 3
    # layers held in Python lists are invisible to tf.train.Checkpoint's object graph, so
    # `Checkpoint(model=model)` would silently skip them.
    parts = dict(model_weights=list(self.model.weights),
                 optimizer_variables=list(self.optimizer.variables), step=self.step,
                 plateau=self.plateau)
    if self.branch is not None:
      parts["branch_weights"] = list(self.branch.weights)
    self.checkpoint = tf.train.Checkpoint(**parts)
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, os.path.join(directory, "checkpoints"),
        max_to_keep=config.train.keep_checkpoints)
    self.best_checkpoint = model_checkpoint(self.model)
    self.best_manager = tf.train.CheckpointManager(
        self.best_checkpoint, os.path.join(directory, "best"), max_to_keep=1)
    # Read once, before training: every worker then decides on the same value, whenever
    # the chief rewrites the file.
    best_path = os.path.join(workdir, "best", "best.json")
    self._best_value = (fileio.read_json(best_path)["value"] if os.path.exists(best_path)
                        else None)
    self._predict_fn = None

  @property
  def predict_fn(self):
    """The compiled evaluation forward pass, traced once for the evaluation split's batches."""
    if self._predict_fn is None:
      spec = pipeline.make_dataset(self.config.data, self.config.data.eval_split,
                                   training=False).element_spec
      self._predict_fn = eval_lib.make_predict_fn(self.model, self.config.model.name,
                                                  self.config.loss, spec)
    return self._predict_fn

  def _build(self):
    batch = dummy_batch(self.config)
    outputs = self.model(eval_lib.model_inputs(batch), training=False)
    if self.branch is not None:
      self.branch({**{k: outputs[k] for k in ("clip_features", "clip_mask",
                                               "sentence_feature")},
                   **{k: batch[k] for k in ("start", "end", "duration", "word_ids",
                                            "num_words")}})
    self.optimizer.build(self.trainable_variables())

  def trainable_variables(self):
    variables = list(self.model.trainable_variables)
    if self.branch is not None:
      variables += self.branch.trainable_variables
    return variables

  def restore_or_initialize(self) -> None:
    if self.chief:
      self._remove_stale_saves()
    latest = tf.train.latest_checkpoint(os.path.join(self.workdir, "checkpoints"))
    if latest:
      self._check_same_widths()
      self.checkpoint.restore(latest).assert_existing_objects_matched()
      logging.info("Resumed from %s at step %d", latest, self.step_value())

  def _remove_stale_saves(self) -> None:
    """Removes the `ckpt-N_temp` folders of saves a kill interrupted (TensorFlow writes a
    save there, then renames it); nothing else in the folders is touched."""
    for folder in ("checkpoints", "best"):
      path = os.path.join(self.workdir, folder)
      for name in (os.listdir(path) if os.path.isdir(path) else ()):
        if _STALE_SAVE.fullmatch(name) and os.path.isdir(os.path.join(path, name)):
          logging.info("Removing %s, left by an interrupted save", os.path.join(path, name))
          shutil.rmtree(os.path.join(path, name))

  def _check_same_widths(self) -> None:
    """The run's checkpoints fit only the widths it was trained with: say which differ
    rather than fail on a variable's shape."""
    path = os.path.join(self.workdir, "config.json")
    if not os.path.exists(path):
      return
    trained = fileio.read_json(path).get("model", {})
    for field in ("feature_dim", "hidden_size", "vocab_size"):
      if field in trained and field in self.config.model and (
          trained[field] != self.config.model[field]):
        raise ValueError(
            f"{self.workdir} holds a run trained with model.{field} {trained[field]}, but "
            f"this config has {self.config.model[field]}: its checkpoints cannot be "
            "restored. Use the run's own config and data, or another --workdir.")

  def step_value(self) -> int:
    return int(self.step.numpy())

  def advance(self, num_steps: int) -> int:
    self.step.assign_add(num_steps)
    return self.step_value()

  def learning_rate(self) -> float:
    return float(np.asarray(self.optimizer.learning_rate))

  def save(self, step: int) -> None:
    if self.manager.latest_checkpoint and self.manager.latest_checkpoint.endswith(f"-{step}"):
      return
    fault_point("checkpoint save")
    path = self.manager.save(checkpoint_number=step)
    fault_point("checkpoint saved")
    self._drop_scratch()
    logging.info("Saved %s", path)

  def _drop_scratch(self) -> None:
    if not self.chief:
      shutil.rmtree(self.directory, ignore_errors=True)

  def maybe_save_best(self, step: int, table: dict, split: str) -> None:
    """Keeps the checkpoint with the best `train.best_metric` on `split` (the validation
    split); best.json records the split, so sscs-eval can say how it was chosen."""
    metric = self.config.train.best_metric
    if metric not in table:
      raise ValueError(f"train.best_metric {metric!r} is not among the evaluation's metrics "
                     f"{sorted(table)}")
    value = table[metric]
    lower_is_better = metric == "loss"
    if self._best_value is None or (value < self._best_value if lower_is_better
                                    else value > self._best_value):
      self._best_value = value
      fault_point("best save")
      saved = self.best_manager.save(checkpoint_number=step)
      fault_point("best saved")
      path = os.path.join(self.workdir, "best", "best.json")
      if self.chief:
        fileio.atomic_write_json(path, {"metric": metric, "value": table[metric],
                                        "split": split, "step": step,
                                        "checkpoint": os.path.basename(saved),
                                        "table": table})
        logging.info("New best %s %.4f at step %d", metric, table[metric], step)
      self._drop_scratch()


class AdamWithL2(keras.optimizers.Adam):
  """Adam with PyTorch's `weight_decay`: each gradient gets `l2 * variable` before the
  moments, as torch.optim.Adam computes it (2D-TAN's train.py builds its Adam so). Keras'
  own `weight_decay` is the decoupled AdamW decay, another update.

  The term joins inside the update step: after the loss scale is divided out, after the
  replicas' gradients are summed and after the loop's clipping (`train_lib._clip_and_apply`),
  as the reference adds it inside `optimizer.step()`, after `clip_grad_norm_`.
  """

  def __init__(self, l2: float, **kwargs):
    super().__init__(**kwargs)
    self.l2 = l2

  def update_step(self, gradient, variable, learning_rate):
    gradient = ops.cast(gradient, variable.dtype) + ops.cast(self.l2, variable.dtype) * variable
    super().update_step(gradient, variable, learning_rate)

  def get_config(self):
    return {**super().get_config(), "l2": self.l2}


def _make_optimizer(optim, loss_scaled: bool):
  if optim.name != "adam":
    raise ValueError(f"Unknown optimizer {optim.name!r}; 'adam' is what the baselines use.")
  kwargs = dict(learning_rate=optim.learning_rate, beta_1=optim.beta_1, beta_2=optim.beta_2,
                epsilon=optim.epsilon)
  optimizer = (AdamWithL2(optim.weight_decay, **kwargs) if optim.weight_decay
               else keras.optimizers.Adam(**kwargs))
  return keras.optimizers.LossScaleOptimizer(optimizer) if loss_scaled else optimizer
