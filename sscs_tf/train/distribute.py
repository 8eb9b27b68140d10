"""Choosing the `tf.distribute` strategy from the machine, and who writes files."""

import json
import os
from typing import Sequence

import tensorflow as tf
from absl import logging


def _workers_in_tf_config() -> int:
  tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
  cluster = tf_config.get("cluster", {})
  return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def make_strategy(kind: str = "auto", devices: Sequence[str] = ()) -> tf.distribute.Strategy:
  """The strategy to train with.

  Args:
    kind: "auto" picks MultiWorkerMirroredStrategy when TF_CONFIG names several workers,
      MirroredStrategy over all visible GPUs (or `devices`) otherwise, and the default
      strategy on a machine without GPUs; "mirrored", "multi_worker" and "default" force one.
    devices: explicit devices for MirroredStrategy (e.g. two logical CPUs in tests).
  """
  if kind == "auto":
    if _workers_in_tf_config() > 1:
      kind = "multi_worker"
    elif devices or tf.config.list_physical_devices("GPU"):
      kind = "mirrored"
    else:
      kind = "default"
  if kind == "multi_worker":
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
  elif kind == "mirrored":
    strategy = tf.distribute.MirroredStrategy(list(devices) or None)
  elif kind == "default":
    strategy = tf.distribute.get_strategy()
  else:
    raise ValueError(f"Unknown strategy {kind!r}; expected auto, mirrored, multi_worker or "
                     "default.")
  names = {"multi_worker": "MultiWorkerMirroredStrategy", "mirrored": "MirroredStrategy",
           "default": "the default strategy"}
  logging.info("Training with %s, %d replicas", names[kind], strategy.num_replicas_in_sync)
  return strategy


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """The worker that writes checkpoints, summaries and exports."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  return resolver.task_type == "chief" or (
      resolver.task_type == "worker" and resolver.task_id == 0
      and "chief" not in resolver.cluster_spec().as_dict())


def worker_dir(workdir: str, strategy: tf.distribute.Strategy) -> str:
  """Where this worker saves checkpoints: the workdir for the chief, a scratch folder for
  the others (every worker must take part in a save under MultiWorkerMirroredStrategy)."""
  if is_chief(strategy):
    return workdir
  resolver = strategy.cluster_resolver
  return os.path.join(workdir, "tmp", f"{resolver.task_type}_{resolver.task_id}")
