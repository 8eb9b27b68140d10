r"""Training-step cost of the Sscs branch over plain 2D-TAN, at full width.

The trainer's own compiled step (`train_lib.make_train_steps`: forward, L_vg, the Sscs
branch, backward, global-norm clip, Adam) on one random batch of the Charades-STA config
(I3D 1024, conv map, N = 16, batch 32, 8-word sentences, a 1,100-word vocabulary), with
Sscs off and with SS (V-SS + CA, both objectives). Each setting runs in its own process.

  python -m benchmarks.sscs_overhead                        # float32
  python -m benchmarks.sscs_overhead --precision=mixed_bfloat16 --steps=5
  python -m benchmarks.sscs_overhead --jit_compile        # the step compiled by XLA

Prints the median and best wall time and the median CPU time (all threads) of a step for each
setting, the overhead of Sscs, and the time of the branch alone (forward and backward on
the model's outputs), which is the part of the step that Sscs adds.
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
_JIT_COMPILE = flags.DEFINE_bool("jit_compile", False, "train.jit_compile (XLA).")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps (after a warm-up step).")
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Processes per variant, alternating variants "
                               "(one process's speed can differ from the next by 10-15%).")
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
  from sscs_tf import models  # pylint: disable=import-outside-toplevel
  from sscs_tf.train import train_lib
  from sscs_tf.train.train_state import TrainState  # pylint: disable=import-outside-toplevel

  config = tan_charades.get_config(f"{_CONFIG_ARG.value},sscs={variant}")
  with config.unlocked():
    config.model.vocab_size = VOCAB
    config.model.embeddings_file = ""
    config.train.precision = _PRECISION.value
    config.train.jit_compile = _JIT_COMPILE.value
    if variant != "off":
      config.sscs.vocab_size = VOCAB
      config.sscs.num_clips = models.clip_count(config.model)
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
  print(f"RESULT {variant} {np.median(times):.3f} {np.min(times):.3f} {np.median(cpu):.3f} "
        f"{os.getloadavg()[0]:.1f}", flush=True)
  if state.branch is not None:
    print(f"BRANCH {_time_branch(state, batch):.4f}", flush=True)


def _time_branch(state, batch, repeats: int = 20) -> float:
  """Seconds for the branch alone (forward and backward) on the model's outputs."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from sscs_tf.models import contract  # pylint: disable=import-outside-toplevel
  outputs = state.model(contract.model_inputs(batch), training=False)
  inputs = {k: tf.constant(v) for k, v in contract.branch_inputs(outputs, batch).items()}
  sources = [inputs["clip_features"], inputs["sentence_feature"]]

  @tf.function
  def branch_step():
    with tf.GradientTape() as tape:
      tape.watch(sources)
      total = state.branch.losses_for_replica(state.branch(inputs), BATCH)["total"]
    grads = tape.gradient(total, sources + state.branch.trainable_variables)
    return [tf.convert_to_tensor(g) for g in grads]

  branch_step()
  started = time.perf_counter()
  for _ in range(repeats):
    [g.numpy() for g in branch_step()]
  return (time.perf_counter() - started) / repeats


def main(argv):
  del argv
  if _SINGLE.value:
    _run_single(_SINGLE.value)
    return
  runs = {v: [] for v in _VARIANTS.value}
  for _ in range(_ROUNDS.value):
    for variant in _VARIANTS.value:
      out = subprocess.run([sys.executable, "-m", "benchmarks.sscs_overhead",
                            f"--single={variant}", f"--config_arg={_CONFIG_ARG.value}",
                            f"--precision={_PRECISION.value}", f"--steps={_STEPS.value}",
                            f"--jit_compile={_JIT_COMPILE.value}"],
                           check=True, capture_output=True, text=True).stdout
      _, _, median, best, cpu, load = next(
          l for l in out.splitlines() if l.startswith("RESULT")).split()
      branch = [float(l.split()[1]) for l in out.splitlines() if l.startswith("BRANCH")]
      runs[variant].append((float(median), float(best), float(cpu), branch))
      print(f"sscs={variant}: {float(median):.2f} s per step median (best {float(best):.2f}), "
            f"CPU time {float(cpu):.2f} s; load average {load}"
            + (f"; the branch alone, forward and backward: {1000 * branch[0]:.1f} ms"
               if branch else ""), flush=True)
  summary = {v: np.median(np.array([r[:3] for r in rs]), axis=0) for v, rs in runs.items()}
  base = summary[_VARIANTS.value[0]]
  for name, (median, best, cpu) in summary.items():
    if name == _VARIANTS.value[0]:
      continue
    branch = np.median([r[3][0] for r in runs[name] if r[3]])
    print(f"sscs={name} over sscs={_VARIANTS.value[0]}, medians of {_ROUNDS.value} processes "
          f"each: {100 * (median / base[0] - 1):+.1f}% wall, {100 * (cpu / base[2] - 1):+.1f}% "
          f"CPU time; the branch itself is {1000 * branch:.1f} ms, "
          f"{100 * branch / median:.2f}% of a step")

if __name__ == "__main__":
  app.run(main)
