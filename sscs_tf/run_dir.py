"""Reading a training run's folder back: its config, its vocabulary, a trained model."""

import json
import os

import ml_collections
import tensorflow as tf

from sscs_tf import eval_lib, fileio, models, text
from sscs_tf.train_state import dummy_batch, model_checkpoint

CHOICES = ("best", "latest")


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The final config that `train_and_evaluate` wrote into `workdir`."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: --workdir must be a folder written by "
                            "sscs-train.")
  with open(path, encoding="utf-8") as f:
    return ml_collections.ConfigDict(json.load(f))


def checkpoint_path(workdir: str, checkpoint: str = "best") -> str:
  """"best" (best evaluation), "latest" (last saved) or an explicit checkpoint prefix."""
  if checkpoint not in CHOICES:
    if not tf.io.gfile.exists(checkpoint + ".index"):
      raise FileNotFoundError(f"Checkpoint {checkpoint} not found (no {checkpoint}.index).")
    return checkpoint
  folder = os.path.join(workdir, "best" if checkpoint == "best" else "checkpoints")
  path = tf.train.latest_checkpoint(folder)
  if path is None and checkpoint == "best":
    path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  if path is None:
    raise FileNotFoundError(f"No checkpoint in {folder}: has the run saved one yet?")
  return path


def load_vocabulary(config) -> text.Vocabulary:
  return text.Vocabulary.load(os.path.join(config.data.data_dir, "vocab.txt"))


def load_model(workdir: str, checkpoint: str = "best"):
  """(model with the checkpoint's weights, config, checkpoint path). Only the model's
  weights are read; the Sscs branch and the optimizer state stay in the checkpoint."""
  config = load_config(workdir)
  model = models.build_model(config.model)
  model(eval_lib.model_inputs(dummy_batch(config)), training=False)
  path = checkpoint_path(workdir, checkpoint)
  status = model_checkpoint(model).restore(path).expect_partial()
  status.assert_existing_objects_matched()
  return model, config, path


def write_run(config, model, workdir: str) -> str:
  """Makes `workdir` a run folder holding `model` as its best checkpoint (config.json and
  best/ckpt-0), so sscs-eval and sscs-export read weights trained elsewhere."""
  os.makedirs(workdir, exist_ok=True)
  fileio.atomic_write_text(os.path.join(workdir, "config.json"),
                           config.to_json_best_effort(indent=2) + "\n")
  manager = tf.train.CheckpointManager(model_checkpoint(model), os.path.join(workdir, "best"),
                                       max_to_keep=1)
  return manager.save(checkpoint_number=0)
