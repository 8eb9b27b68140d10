"""What a training run holds and checkpoints: model, Sscs branch, optimizer, schedule, step.

Checkpoints live in `{workdir}/checkpoints` (the last few, every K steps and at the end) and
`{workdir}/best` (the best evaluation so far, with `best.json`). Only the model's weights
matter for inference; the branch and the optimizer are training state.
"""

import os
import re
import shutil

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from sscs_tf import models
from sscs_tf.core import fileio
from sscs_tf.core.faults import fault_point
from sscs_tf.evaluate import eval_lib
from sscs_tf.models import contract
from sscs_tf.sscs.branch import SscsBranch
from sscs_tf.train import distribute, optimizers, run_config
from sscs_tf.train.schedules import ReduceLROnPlateau

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# What tf.train.Checkpoint writes before it renames a save into place; a kill leaves it.
_STALE_SAVE = re.compile(r"ckpt-\d+_temp")


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
      # A decaying schedule needs the run's length; a constant one does not read the data.
      total_steps = (run_config.training_steps(config)[1]
                     if optimizers.schedule_of(config.optim) != "constant" else 0)
      self.optimizer = optimizers.make_optimizer(config.optim, self.loss_scaled, total_steps)
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
    # The data order is a function of seed and epoch (train_lib); what dropout draws is the
    # state of the layers' SeedGenerators, checkpointed so that a resumed run is bitwise
    # equal to an uninterrupted one. Models without one keep their checkpoint layout.
    random_state = [v for layer in (self.model, self.branch) if layer is not None
                    for v in contract.random_state(layer)]
    if random_state:
      parts["random_state"] = random_state
    self.parts = parts
    self.checkpoint = tf.train.Checkpoint(**parts)
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, os.path.join(directory, "checkpoints"),
        max_to_keep=config.train.keep_checkpoints)
    self.best_checkpoint = contract.model_checkpoint(self.model)
    self.best_manager = tf.train.CheckpointManager(
        self.best_checkpoint, os.path.join(directory, "best"), max_to_keep=1)
    # Read once, before training: every worker then decides on the same value, whenever
    # the chief rewrites the file.
    best_path = os.path.join(workdir, "best", "best.json")
    self._best_value = (fileio.read_json(best_path)["value"] if os.path.exists(best_path)
                        else None)
    self._predict_fn = None
    self._eval_datasets = {}

  def eval_dataset(self, split: str):
    """The evaluation pipeline of `split`, built once per process (its functions are traced
    when it is built) and iterated from its start at every evaluation."""
    if split not in self._eval_datasets:
      self._eval_datasets[split] = contract.make_dataset(self.config, split, training=False)
    return self._eval_datasets[split]

  @property
  def predict_fn(self):
    """The compiled evaluation forward pass, traced once for the evaluation batches (every
    split's have the same structure)."""
    if self._predict_fn is None:
      spec = self.eval_dataset(run_config.selection_split(self.config)).element_spec
      self._predict_fn = eval_lib.make_predict_fn(
          self.model, self.config.model.name, self.config.loss, spec,
          jit_compile=bool(self.config.train.get("jit_compile", False)))
    return self._predict_fn

  def _build(self):
    batch = contract.dummy_batch(self.config)
    outputs = self.model(contract.model_inputs(batch), training=False)
    if self.branch is not None:
      self.branch(contract.branch_inputs(outputs, batch))
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
      self._checkpoint_to_restore(latest).restore(latest).assert_existing_objects_matched()
      logging.info("Resumed from %s at step %d", latest, self.step_value())

  def _checkpoint_to_restore(self, path: str) -> tf.train.Checkpoint:
    """The run's checkpoint; without its random state when `path` was written before the
    random state was checkpointed (the run resumes, drawing other dropout masks)."""
    if "random_state" not in self.parts or any(
        name.startswith("random_state/") for name, _ in tf.train.list_variables(path)):
      return self.checkpoint
    logging.warning("%s holds no random state: the resumed run draws other dropout masks "
                    "than an uninterrupted run would", path)
    return tf.train.Checkpoint(**{k: v for k, v in self.parts.items() if k != "random_state"})

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

  def is_new_best(self, table: dict) -> bool:
    """Whether `table` beats the best `train.best_metric` so far (lower is better for loss)."""
    metric = self.config.train.best_metric
    if metric not in table:
      raise ValueError(f"train.best_metric {metric!r} is not among the evaluation's metrics "
                       f"{sorted(table)}")
    value = table[metric]
    if self._best_value is None:
      return True
    return value < self._best_value if metric == "loss" else value > self._best_value

  def maybe_save_best(self, step: int, table: dict, split: str) -> None:
    """Keeps the checkpoint with the best `train.best_metric` on `split` (the validation
    split); best.json records the split, so sscs-eval can say how it was chosen."""
    if self.is_new_best(table):
      metric = self.config.train.best_metric
      self._best_value = table[metric]
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
