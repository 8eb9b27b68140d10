r"""Training-step cost of the Sscs branch over plain 2D-TAN, at full width.

The trainer's own compiled step (`train_lib.make_train_steps`: forward, L_vg, the Sscs
branch, backward, global-norm clip, Adam) on one random batch of the Charades-STA config
(I3D 1024, conv map, N = 16, batch 32, 8-word sentences, a 1,100-word vocabulary), with
Sscs off and with SS (V-SS + CA, both objectives). Each setting runs in its own process.

  python -m benchmarks.sscs_overhead                        # float32
  python -m benchmarks.sscs_overhead --precision=mixed_bfloat16 --steps=5

Prints the mean and best wall time and the mean CPU time (all threads) of a step for each
setting, and the overhead of Sscs. On a shared machine the CPU time is the steadier figure.
"""

import os
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

_CONFIG_ARG = flags.DEFINE_string("config_arg", "variant=conv,feature=i3d",
                                  "Argument of configs/tan_charades.py.")
_VARIANTS = flags.DEFINE_list("variants", ["off", "ss"], "Sscs variants to compare.")
_PRECISION = flags.DEFINE_string("precision", "float32", "train.precision.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps (after a warm-up step).")
_SINGLE = flags.DEFINE_string("single", "", "Internal: run one variant in this process.")

BATCH, WORDS, VOCAB = 32, 8, 1100


def _batch(config, rng):
  n, segments = config.model.num_clips, config.data.num_segments
  duration = rng.uniform(20, 40, size=BATCH).astype(np.float32)
  start = (rng.uniform(0, 0.5, size=BATCH) * duration).astype(np.float32)
  end = np.minimum(start + rng.uniform(0.1, 0.5, size=BATCH) * duration, duration)
  return {
      "features": rng.normal(size=(BATCH, segments, config.model.feature_dim)).astype(
          np.float32),
      "feature_mask": np.ones((BATCH, segments), np.float32),
      "word_ids": rng.integers(3, VOCAB, size=(BATCH, WORDS)).astype(np.int32),
      "num_words": np.full((BATCH,), WORDS, np.int32),
      "iou_map": rng.uniform(size=(BATCH, n, n)).astype(np.float32),
      "start": start, "end": end.astype(np.float32), "duration": duration,
  }


def _run_single(variant: str) -> None:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from configs import tan_charades  # pylint: disable=import-outside-toplevel
  from sscs_tf import models, train_lib  # pylint: disable=import-outside-toplevel
  from sscs_tf.train_state import TrainState  # pylint: disable=import-outside-toplevel

  config = tan_charades.get_config(f"{_CONFIG_ARG.value},sscs={variant}")
  with config.unlocked():
    config.model.vocab_size = VOCAB
    config.model.embeddings_file = ""
    config.train.precision = _PRECISION.value
    if variant != "off":
      config.sscs.vocab_size = VOCAB
      config.sscs.num_clips = models.num_clips(config.model)
  strategy = tf.distribute.get_strategy()
  state = TrainState(config, strategy, "/tmp/unused_sscs_overhead")
  steps = train_lib.make_train_steps(state, strategy, BATCH)
  batch = _batch(config, np.random.default_rng(0))
  iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
  steps(iterator, tf.constant(1)).numpy()  # trace and warm up
  times, cpu = [], []
  for _ in range(_STEPS.value):
    started, started_cpu = time.perf_counter(), time.process_time()
    steps(iterator, tf.constant(1)).numpy()
    times.append(time.perf_counter() - started)
    cpu.append(time.process_time() - started_cpu)
  print(f"RESULT {variant} {np.mean(times):.3f} {np.min(times):.3f} {np.mean(cpu):.3f} "
        f"{os.getloadavg()[0]:.1f}", flush=True)


def main(argv):
  del argv
  if _SINGLE.value:
    _run_single(_SINGLE.value)
    return
  results = {}
  for variant in _VARIANTS.value:
    out = subprocess.run([sys.executable, "-m", "benchmarks.sscs_overhead",
                          f"--single={variant}", f"--config_arg={_CONFIG_ARG.value}",
                          f"--precision={_PRECISION.value}", f"--steps={_STEPS.value}"],
                         check=True, capture_output=True, text=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("RESULT"))
    _, name, mean, best, cpu, load = line.split()
    results[name] = (float(mean), float(best), float(cpu))
    print(f"sscs={name}: {float(mean):.2f} s per step (best {float(best):.2f}), CPU time "
          f"{float(cpu):.2f} s per step; load average {load}", flush=True)
  base = results[_VARIANTS.value[0]]
  for name, (mean, best, cpu) in results.items():
    if name != _VARIANTS.value[0]:
      print(f"overhead of sscs={name}: {100 * (mean / base[0] - 1):+.1f}% (mean wall), "
            f"{100 * (best / base[1] - 1):+.1f}% (best wall), "
            f"{100 * (cpu / base[2] - 1):+.1f}% (CPU time)")


if __name__ == "__main__":
  app.run(main)
