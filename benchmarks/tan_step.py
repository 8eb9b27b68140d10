r"""2D-TAN training-step and forward time, and peak memory, at full width.

One training step = forward + the scaled-IoU BCE loss + backward + global-norm clip 10 + Adam,
compiled with tf.function, on random inputs of the Charades-STA config (N = 16, K5 L8, batch
32, sentences of 8 words). Each (feature dim, precision) setting runs in its own process, so
the process's peak RSS (resource.getrusage) belongs to that setting alone.

  python -m benchmarks.tan_step                                   # D 1024 and 4096, fp32 + bf16
  python -m benchmarks.tan_step --feature_dims=1024 --precisions=mixed_bfloat16 --steps=5
  python -m benchmarks.tan_step --config=configs/tan_tacos.py --feature_dims=4096

Prints one line per setting: mean and best seconds per training step and per forward pass,
peak RSS, the accelerator's peak memory where there is one, and the machine's load average
(other jobs on a shared machine slow every number down).
"""

import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

_CONFIG = flags.DEFINE_string("config", "configs/tan_charades.py", "Config file.")
_CONFIG_ARG = flags.DEFINE_string("config_arg", "variant=conv", "Argument to get_config.")
_FEATURE_DIMS = flags.DEFINE_list("feature_dims", ["1024", "4096"], "model.feature_dim values.")
_PRECISIONS = flags.DEFINE_list("precisions", ["float32", "mixed_bfloat16"],
                                "Keras dtype policies.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Queries per step.")
_NUM_WORDS = flags.DEFINE_integer("num_words", 8, "Words per sentence.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed training steps (after one warm-up step).")
_FORWARD_STEPS = flags.DEFINE_integer("forward_steps", 3, "Timed forward passes.")
_SINGLE = flags.DEFINE_string("single", "", "Internal: run one 'dim,precision' setting here.")

_VOCAB_SIZE = 1000


def _load_config(feature_dim, work_dir):
  spec = importlib.util.spec_from_file_location("bench_config", _CONFIG.value)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(_CONFIG_ARG.value)
  config.model.feature_dim = feature_dim
  config.model.vocab_size = _VOCAB_SIZE
  # A frozen table, as the reference's GloVe: it gets no gradient and no Adam update.
  config.model.embeddings_file = os.path.join(work_dir, "embeddings.npy")
  table = np.random.default_rng(1).normal(size=(_VOCAB_SIZE, config.model.embedding_dim))
  np.save(config.model.embeddings_file, table.astype(np.float32))
  return config


def _inputs(config, rng):
  b, n = _BATCH_SIZE.value, config.model.num_clips
  features = rng.normal(size=(b, config.model.num_sample_clips, config.model.feature_dim))
  return {"features": features.astype(np.float32),
          "feature_mask": np.ones((b, config.model.num_sample_clips), np.float32),
          "word_ids": rng.integers(3, _VOCAB_SIZE, size=(b, _NUM_WORDS.value)).astype(np.int32),
          "num_words": np.full((b,), _NUM_WORDS.value, np.int32)}, \
      rng.uniform(size=(b, n, n)).astype(np.float32)


def _time(fn, args, steps):
  fn(*args)  # trace and warm up
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    np.asarray(fn(*args))  # wait for the result
    times.append(time.perf_counter() - start)
  return float(np.mean(times)), float(np.min(times))


def _run_single(feature_dim, precision):
  import keras  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from sscs_tf.scoring import losses  # pylint: disable=import-outside-toplevel
  from sscs_tf.models import build_model  # pylint: disable=import-outside-toplevel

  keras.mixed_precision.set_global_policy(precision)
  with tempfile.TemporaryDirectory() as work_dir:
    config = _load_config(feature_dim, work_dir)
    model = build_model(config.model)
  optim = config.optim
  optimizer = keras.optimizers.Adam(optim.learning_rate, beta_1=optim.beta_1,
                                    beta_2=optim.beta_2, epsilon=optim.epsilon,
                                    global_clipnorm=optim.clip_norm)
  optimizer.build(model.trainable_variables)

  @tf.function
  def train_step(inputs, iou_map):
    with tf.GradientTape() as tape:
      outputs = model(inputs, training=True)
      loss = losses.tan_loss(outputs["scores"], iou_map, outputs["map_mask"],
                             config.loss.min_iou, config.loss.max_iou)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  @tf.function
  def forward(inputs):
    return model(inputs, training=False)["scores"]

  inputs, iou_map = _inputs(config, np.random.default_rng(0))
  load_before = os.getloadavg()[0]
  step_mean, step_best = _time(train_step, (inputs, iou_map), _STEPS.value)
  forward_mean, forward_best = _time(forward, (inputs,), _FORWARD_STEPS.value)
  peak_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
  device = ""
  if tf.config.list_physical_devices("GPU"):
    peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2 ** 30
    device = f", GPU peak {peak:.2f} GB"
  print(f"D={feature_dim} {precision}: train step {step_mean:.2f} s (best {step_best:.2f}), "
        f"forward {forward_mean:.2f} s (best {forward_best:.2f}), "
        f"peak RSS {peak_rss_gb:.2f} GB{device}; 1-min load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after", flush=True)


def main(argv):
  del argv
  if _SINGLE.value:
    dim, precision = _SINGLE.value.split(",")
    _run_single(int(dim), precision)
    return
  print(f"{_CONFIG.value}:{_CONFIG_ARG.value}, batch {_BATCH_SIZE.value}, "
        f"{_STEPS.value} timed steps, {os.cpu_count()} CPUs", flush=True)
  passed = [a for a in sys.argv[1:] if not a.startswith(("--feature_dims", "--precisions"))]
  for dim in _FEATURE_DIMS.value:
    for precision in _PRECISIONS.value:
      subprocess.run([sys.executable, "-m", "benchmarks.tan_step", *passed,
                      f"--single={dim},{precision}"], check=True)


if __name__ == "__main__":
  app.run(main)
