"""`train_and_evaluate(config, workdir)`: the custom training loop under `tf.distribute`.

One loop serves one device, several GPUs (MirroredStrategy) and several machines
(MultiWorkerMirroredStrategy); Keras' `fit` fails under the latter with Keras 3. The data
position is part of the state: epoch e reads the training split shuffled with a seed derived
from (config.seed, e), so a restarted run rebuilds epoch e's stream and skips the batches it
already trained on, losing at most the steps since the last checkpoint.
"""

import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from sscs_tf.core import fileio
from sscs_tf.evaluate import eval_lib
from sscs_tf.train import distribute, objective, summaries
from sscs_tf.data import pipeline
from sscs_tf.models import contract
from sscs_tf.train.run_config import (log_word_embeddings, prepare_config, selection_split,
                                      training_steps)
from sscs_tf.train.train_state import TrainState


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or Inf loss; the message names the step and the component."""


def _epoch_dataset_fn(config, epoch: int, skip: int, num_steps: int):
  seed = config.seed * 1_000_003 + 10 * epoch

  def dataset_fn(input_context):
    ds = contract.make_dataset(config, config.data.train_split, input_context,
                               training=True, seed=seed, repeat=True)
    # A step takes one batch per replica; a pipeline feeds this many replicas.
    replicas = input_context.num_replicas_in_sync // input_context.num_input_pipelines
    return ds.skip(skip * replicas).take((num_steps - skip) * replicas)

  return dataset_fn


def _clip_and_apply(state: TrainState, grads, variables, loss_scale):
  """Clips the *global* gradient to `optim.clip_norm`, then applies it.

  Keras 3 clips each replica's gradient before summing them; to clip the summed gradient as
  on one device, it is all-reduced here first, clipped, and divided by the replica count
  (the optimizer sums it back). Without a clip the optimizer's own sum is all it takes.
  """
  context = tf.distribute.get_replica_context()
  replicas = context.num_replicas_in_sync if context is not None else 1
  pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
  # Embedding gradients arrive as IndexedSlices whose row count differs between replicas;
  # their collective gather then aborts inside a loop. Dense, they all-reduce like the rest.
  grads = [tf.convert_to_tensor(g) for g, _ in pairs]
  variables = [v for _, v in pairs]
  clip_norm = state.config.optim.clip_norm
  if clip_norm:
    if replicas > 1:
      grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
    norm = tf.linalg.global_norm(grads) / loss_scale
    factor = clip_norm / tf.maximum(norm, clip_norm)
    grads = [g * factor / replicas for g in grads]
  state.optimizer.apply_gradients(zip(grads, variables))


def make_losses_and_grads(state: TrainState, global_batch_size: int):
  """`f(batch) -> (loss terms in term_names order, gradients of the (scaled) total)` for one
  replica: the forward and backward pass, compiled by XLA with `train.jit_compile` (once per
  batch shape); the cross-replica clip and the update stay outside, where every strategy
  runs them."""
  config = state.config
  variables = state.trainable_variables()
  names = objective.term_names(config.model.name, state.branch)

  def losses_and_grads(batch):
    with tf.GradientTape() as tape:
      outputs = state.model(contract.model_inputs(batch), training=True)
      terms = objective.compute_losses(config.model.name, outputs, batch, config.loss,
                                       global_batch_size, state.branch, training=True)
      loss = terms["total"]
      scaled = state.optimizer.scale_loss(loss) if state.loss_scaled else loss
    return [terms[name] for name in names], tape.gradient(scaled, variables)

  if config.train.get("jit_compile", False):
    return contract.xla_compiled(losses_and_grads)
  return losses_and_grads


def make_train_steps(state: TrainState, strategy, global_batch_size: int):
  """A compiled function running `num_steps` steps; returns per-step global metrics."""
  variables = state.trainable_variables()
  losses_and_grads = make_losses_and_grads(state, global_batch_size)

  def step_fn(batch):
    # Outside the XLA cluster: a collective across replicas.
    batch = contract.with_global_statistics(state.model, batch)
    values, grads = losses_and_grads(batch)
    scale = state.optimizer.dynamic_scale if state.loss_scaled else 1.0
    _clip_and_apply(state, grads, variables, scale)
    return values

  def body(i, history, iterator):
    per_replica = strategy.run(step_fn, args=(next(iterator),))
    values = [strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for v in per_replica]
    return i + 1, history.write(i, tf.stack(values)), iterator

  # Written as the loop AutoGraph would make of it: nothing traced here has Python control
  # flow on tensors, and converting every layer's source costs seconds at each start.
  @tf.function(autograph=False)
  def train_steps(iterator, num_steps):
    history = tf.TensorArray(tf.float32, size=num_steps)
    _, history, _ = tf.while_loop(lambda i, *_: i < num_steps, body,
                                  (tf.constant(0), history, iterator))
    return history.stack()

  return train_steps


def check_finite(history: np.ndarray, names, first_step: int) -> None:
  """Raises NonFiniteLossError naming the first step and component that is NaN or Inf."""
  bad = ~np.isfinite(history)
  if bad.any():
    row, col = np.argwhere(bad)[0]
    raise NonFiniteLossError(
        f"Non-finite loss at step {first_step + row + 1}: component {names[col]!r} = "
        f"{history[row, col]} (all components: {dict(zip(names, history[row].tolist()))}). "
        "The last checkpoint is intact; lower the learning rate or check the data.")


class _Progress:
  """A progress bar with rate and ETA on a terminal; periodic log lines otherwise."""

  def __init__(self, total_steps: int, log_every: int):
    self.total, self.log_every = total_steps, max(1, log_every)
    self.bar = keras.utils.Progbar(total_steps) if sys.stdout.isatty() else None

  def update(self, step: int, values: dict, rate: float) -> None:
    if self.bar is not None:
      self.bar.update(step, [(k, v) for k, v in values.items()] + [("q/s", rate)])
    elif step % self.log_every == 0 or step == self.total:
      parts = ", ".join(f"{k} {v:.4f}" for k, v in values.items())
      logging.info("step %d/%d: %s, %.1f queries/s", step, self.total, parts, rate)


def train_and_evaluate(config, workdir: str, strategy=None) -> dict:
  """Trains `config` in `workdir`, resuming from its last checkpoint; returns the last
  evaluation table (metric name -> value) of `selection_split(config)`."""
  strategy = strategy or distribute.make_strategy(config.train.strategy,
                                                  config.train.devices)
  config = prepare_config(config)
  log_word_embeddings(config.word_embeddings)
  chief = distribute.is_chief(strategy)
  keras.utils.set_random_seed(config.seed)
  state = TrainState(config, strategy, workdir)
  state.restore_or_initialize()
  if chief:  # after the restore: a config that does not fit the checkpoints leaves it as is
    os.makedirs(workdir, exist_ok=True)
    fileio.atomic_write_text(os.path.join(workdir, "config.json"),
                             config.to_json_best_effort(indent=2) + "\n")
  global_batch = config.data.batch_size
  steps_per_epoch, total_steps = training_steps(config)
  writer = summaries.Writer(workdir, config, enabled=chief)
  train_steps = make_train_steps(state, strategy, global_batch)
  progress = _Progress(total_steps, config.train.log_every_steps)
  names = objective.term_names(config.model.name, state.branch)
  shown = [n for n in names if n != "sscs_fell_back"]
  table = {}
  step = state.step_value()
  logging.info("Training from step %d to %d (%d steps per epoch)", step, total_steps,
               steps_per_epoch)
  while step < total_steps:
    epoch, offset = divmod(step, steps_per_epoch)
    epoch_end = min((epoch + 1) * steps_per_epoch, total_steps)
    iterator = iter(strategy.distribute_datasets_from_function(
        _epoch_dataset_fn(config, epoch, offset, epoch_end - epoch * steps_per_epoch)))
    while step < epoch_end:
      num_steps = min(config.train.steps_per_call, epoch_end - step,
                      _steps_to_next(step, config.train.checkpoint_every_steps))
      started = time.time()
      with pipeline.reading_records(config.data.data_dir):
        history = train_steps(iterator, tf.constant(num_steps)).numpy()
      check_finite(history, names, step)
      step = state.advance(num_steps)
      rate = num_steps * global_batch / max(time.time() - started, 1e-9)
      values = dict(zip(names, history[-1].tolist()))
      progress.update(step, {k: values[k] for k in shown}, rate)
      writer.train_scalars(step, values, state.learning_rate(), rate, shown)
      # An epoch end that evaluates saves after its best checkpoint (in _end_of_epoch).
      if step % config.train.checkpoint_every_steps == 0 and not (
          step == epoch_end and _evaluates(config, epoch, step, total_steps)):
        state.save(step)
    table = _end_of_epoch(state, writer, epoch, step, total_steps)
  state.save(step)
  writer.close()
  if not table:  # nothing left to train (a finished run started again): evaluate anyway
    split = selection_split(config)
    table, _ = eval_lib.evaluate(state.model, config, split, predict_fn=state.predict_fn,
                                 dataset=state.eval_dataset(split))
  return table


def _steps_to_next(step: int, every: int) -> int:
  return every - step % every


def _evaluates(config, epoch: int, step: int, total_steps: int) -> bool:
  return step >= total_steps or (epoch + 1) % config.train.eval_every_epochs == 0


def _query_check_due(state: TrainState, epoch: int, step: int, total_steps: int):
  """When the swapped-sentence control (a second pass over the split) runs during training:
  at the last evaluation, at one that is a new best on the validation split, and at every
  `train.query_check_every`-th evaluation when that is > 0; never without
  `eval.query_diagnostics`. A function of the metric table, which tells a new best."""
  config = state.config
  if not config.eval.get("query_diagnostics", False):
    return False
  every = config.train.get("query_check_every", 0)
  index = (epoch + 1) // config.train.eval_every_epochs
  if step >= total_steps or (every > 0 and index % every == 0):
    return True
  return lambda table: bool(config.data.val_split) and state.is_new_best(table)


def _end_of_epoch(state: TrainState, writer, epoch: int, step: int, total_steps: int):
  """Evaluates the validation split when due; updates the plateau schedule and the best
  checkpoint from it, then saves. The evaluation (test) split never steers training.

  The order makes a kill at any moment cost nothing but time: the step's checkpoint is
  written after its best checkpoint, so a run killed before that restarts from an earlier
  checkpoint, trains the same steps again and repeats this evaluation (a best already saved
  compares equal and is kept).
  """
  config = state.config
  if not _evaluates(config, epoch, step, total_steps):
    return {}
  split = selection_split(config)
  table, predictions = eval_lib.evaluate(
      state.model, config, split, predict_fn=state.predict_fn,
      dataset=state.eval_dataset(split), with_predictions=True,
      query_diagnostics=_query_check_due(state, epoch, step, total_steps))
  writer.eval_scalars(step, split, table)
  if config.train.get("analysis_images", True):
    writer.analysis_images(step, state, predictions, split=split)
  if config.data.val_split and config.optim.plateau_monitor:
    if state.plateau.update(table[config.optim.plateau_monitor]):
      logging.info("Learning rate reduced to %g", state.learning_rate())
  if config.data.val_split:
    state.maybe_save_best(step, table, split)
  state.save(step)
  return table
