"""A run's config made final against its data: what comes from the data filled in (vocabulary
size, embeddings file, the branch's clip count), and every value checked before a run starts,
so that a mistyped value fails now rather than after an epoch.

`prepare_config` serves training and the importers alike; the result is what a run writes to
`{workdir}/config.json` and what evaluation and export read back (`run/run_dir.py`), without
this module.
"""

import copy
import math
import os
import re

from absl import logging

from sscs_tf import models
from sscs_tf.data import meta as meta_lib
from sscs_tf.sscs.branch import MODES
from sscs_tf.train import optimizers


def training_steps(config) -> tuple:
  """(steps per epoch, the run's last step) of `config` on its data."""
  meta = meta_lib.load_meta(config.data.data_dir)
  global_batch = config.data.batch_size
  steps_per_epoch = meta_lib.steps_per_epoch(meta, config.data.train_split, global_batch,
                                            protocol_name=config.data.protocol)
  if steps_per_epoch < 1:
    raise ValueError(f"The training split has fewer queries than one batch of {global_batch}.")
  return steps_per_epoch, (config.train.num_train_steps
                           or config.train.num_epochs * steps_per_epoch)


def prepare_config(config):
  """A copy of `config` with what comes from the data filled in: the vocabulary size, the
  model's files set to "auto" (embeddings, vocabulary), the branch's clip count; checks the
  feature width, the splits and the loop's periods, so that a mistyped value fails now
  rather than after an epoch."""
  meta = meta_lib.load_meta(config.data.data_dir)
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
    # A model field `<name>_file` set to "auto" names the data's file of meta.json's
    # `<name>_file` (embeddings.npy, vocab.txt), or "" when the data has none.
    for field in [f for f in model if f.endswith("_file") and model[f] == "auto"]:
      name = meta.get(field)
      model[field] = (os.path.join(os.path.abspath(config.data.data_dir), name)
                      if name else "")
    if config.sscs.mode != "off":
      config.sscs.vocab_size = meta["vocab_size"]
      config.sscs.num_clips = models.clip_count(config.model)
    # Not a model argument: a record of what the words start from, in config.json.
    config.word_embeddings = describe_word_embeddings(config, meta)
  return config


def describe_word_embeddings(config, meta: dict) -> dict:
  """What the model's word embeddings are: frozen vectors from a file (with the GloVe
  source and its coverage when the file is the data's), or learned from scratch."""
  path = config.model.get("embeddings_file", "")
  # The width, when the model's config names it (a model may size its words otherwise).
  dim = config.model.get("embedding_dim")
  if not path:
    return dict(kind="learned from scratch", dim=dim, vocab_size=config.model.vocab_size)
  described = dict(kind="frozen vectors from a file", file=path, dim=dim,
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
    logging.info("Word embeddings: learned from scratch (%d words%s)", described["vocab_size"],
                 f", {described['dim']}-d" if described["dim"] else "")


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
  if config.train.get("query_check_every", 0) < 0:
    raise ValueError("config.train.query_check_every must be 0 (the last and the best "
                     f"evaluations) or more, got {config.train.query_check_every}.")


def _check_optimizer(optim) -> None:
  if optim.name not in optimizers.NAMES:
    raise ValueError(f"config.optim.name must be one of {optimizers.NAMES}, got {optim.name!r}.")
  schedule = optimizers.schedule_of(optim)
  if schedule not in optimizers.SCHEDULES:
    raise ValueError(f"config.optim.schedule must be one of {optimizers.SCHEDULES}, got "
                     f"{schedule!r}.")
  if schedule != "constant" and optim.plateau_monitor:
    raise ValueError(f"config.optim.schedule {schedule!r} sets the learning rate at every "
                     f"step, so ReduceLROnPlateau (config.optim.plateau_monitor="
                     f"{optim.plateau_monitor!r}) cannot change it: set one of them "
                     "(--config.optim.plateau_monitor= or --config.optim.schedule=constant).")
  warmup = optim.get("warmup_proportion", 0.0)
  if not (isinstance(warmup, (int, float)) and math.isfinite(warmup) and warmup >= 0):
    raise ValueError(f"config.optim.warmup_proportion must be >= 0 (a share of the steps, or "
                     f"a step count when > 1), got {warmup!r}.")
  if warmup and schedule == "constant":
    raise ValueError("config.optim.warmup_proportion is a part of the linear schedule: set "
                     "--config.optim.schedule=linear or --config.optim.warmup_proportion=0.")
  for pattern in optim.get("weight_decay_exclude", ()):
    try:
      re.compile(pattern)
    except re.error as e:
      raise ValueError(f"config.optim.weight_decay_exclude holds {pattern!r}, not a regular "
                       f"expression: {e}.") from None


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
  _check_optimizer(config.optim)
  if config.optim.get("clip_norm") is not None and config.optim.clip_norm < 0:
    raise ValueError(f"config.optim.clip_norm must be >= 0 (0: no clipping), got "
                     f"{config.optim.clip_norm}.")
  for field in ("num_epochs", "num_train_steps"):
    if field in config.train and config.train[field] < 0:
      raise ValueError(f"config.train.{field} must be >= 0, got {config.train[field]}.")
  if config.sscs.mode not in MODES:
    raise ValueError(f"config.sscs.mode must be one of {MODES}, got {config.sscs.mode!r}.")


def selection_split(config) -> str:
  """The split evaluated during training: the validation split, which alone picks the best
  checkpoint and drives the plateau schedule. Without one (`data.val_split` empty), the
  evaluation split is evaluated for the curves only: no best checkpoint, no schedule."""
  return config.data.val_split or config.data.eval_split
