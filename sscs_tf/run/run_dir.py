"""Reading a training run's folder back: its config, its vocabulary, a trained model."""

import os

import ml_collections
import tensorflow as tf

from sscs_tf import models
from sscs_tf.core import fileio
from sscs_tf.data import text
from sscs_tf.models import contract

CHOICES = ("best", "latest")


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The final config that `train_and_evaluate` wrote into `workdir`."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: --workdir must be a folder written by "
                            "sscs-train.")
  config = fileio.read_json(path)
  # Runs written before data protocols existed read clipped times (2D-TAN's rule) for both
  # baselines; evaluating them again keeps that ground truth.
  if isinstance(config.get("data"), dict):
    config["data"].setdefault("protocol", "tan")
  return ml_collections.ConfigDict(config)


def checkpoint_path(workdir: str, checkpoint: str = "best") -> str:
  """"best" (best evaluation), "latest" (last saved) or an explicit checkpoint prefix."""
  if checkpoint not in CHOICES:
    if not tf.io.gfile.exists(checkpoint + ".index"):
      raise FileNotFoundError(f"Checkpoint {checkpoint} not found (no {checkpoint}.index).")
    return checkpoint
  folder = os.path.join(workdir, "best" if checkpoint == "best" else "checkpoints")
  path = tf.train.latest_checkpoint(folder)
  if path is None and checkpoint == "best":
    raise FileNotFoundError(f"No best checkpoint in {folder}: the run has not finished an "
                            "evaluation yet; pass --checkpoint latest for its last checkpoint.")
  if path is None:
    raise FileNotFoundError(f"No checkpoint in {folder}: has the run saved one yet?")
  return path


def checkpoint_selection(workdir: str, choice: str, path: str, config) -> dict:
  """How the checkpoint at `path` was chosen: {"checkpoint", "how", "split", "metric",
  "step"}; "split" is the split that picked it (None when no evaluation did)."""
  best_json = os.path.join(workdir, "best", "best.json")
  if choice == "best" and os.path.exists(best_json) and os.path.dirname(path) == os.path.join(
      workdir, "best"):
    best = fileio.read_json(best_json)
    # Runs trained before best.json named its split chose on the evaluation split.
    split = best.get("split", config.data.eval_split)
    return dict(checkpoint=path, how=f"best {best['metric']} on {split!r} (step {best['step']})",
                split=split, metric=best["metric"], step=best["step"])
  if choice == "best" and os.path.dirname(path) == os.path.join(workdir, "best"):
    return dict(checkpoint=path, how="the run's best/ without best.json (selection unknown, "
                "e.g. imported weights)", split=None, metric=None, step=None)
  if choice in CHOICES:
    how = ("last saved checkpoint (no best: the run has no validation split)"
           if choice == "best" else "last saved checkpoint")
    return dict(checkpoint=path, how=how, split=None, metric=None, step=None)
  return dict(checkpoint=path, how="given by path (selection unknown)", split=None,
              metric=None, step=None)


def load_vocabulary(config) -> text.Vocabulary:
  """The run's vocabulary; its size must be the model's (a re-prepared data folder can
  hold another, whose ids would index past the word table)."""
  path = os.path.join(config.data.data_dir, "vocab.txt")
  vocabulary = text.Vocabulary.load(path)
  if len(vocabulary) != config.model.vocab_size:
    raise ValueError(f"{path} has {len(vocabulary)} words but the model was trained with "
                     f"{config.model.vocab_size}: config.data.data_dir must be the data it "
                     "was trained on.")
  return vocabulary


def load_model(workdir: str, checkpoint: str = "best"):
  """(model with the checkpoint's weights, config, checkpoint path). Only the model's
  weights are read; the Sscs branch and the optimizer state stay in the checkpoint."""
  config = load_config(workdir)
  path = checkpoint_path(workdir, checkpoint)
  model = models.build_model(config.model)
  model(contract.model_inputs(contract.dummy_batch(config)), training=False)
  status = contract.model_checkpoint(model).restore(path).expect_partial()
  status.assert_existing_objects_matched()
  return model, config, path


def write_run(config, model, workdir: str) -> str:
  """Makes `workdir` a run folder holding `model` as its best checkpoint (config.json and
  best/ckpt-0), so sscs-eval and sscs-export read weights trained elsewhere."""
  os.makedirs(workdir, exist_ok=True)
  fileio.atomic_write_text(os.path.join(workdir, "config.json"),
                           config.to_json_best_effort(indent=2) + "\n")
  manager = tf.train.CheckpointManager(contract.model_checkpoint(model),
                                       os.path.join(workdir, "best"), max_to_keep=1)
  return manager.save(checkpoint_number=0)
