r"""2D-TAN training step and forward pass, ours beside the authors' code, and peak memory.

One training step = forward + the scaled-IoU BCE loss + backward + global-norm clip 10 + Adam
(lr 1e-4), on random inputs of a published conv config at full width (H 512, 3 x 512 LSTM over
frozen 300-d word vectors). With `--reference_dir` pointing at a checkout of microsoft/2D-TAN
and PyTorch installed (`pip install -e ".[torch]"`), the authors' model (`lib/models`, built
from their `experiments/*/...-conv.yaml` with the same feature width), their
`bce_rescale_loss`, `torch.optim.Adam` and `clip_grad_norm_(10)` are timed on the same inputs,
in the same run: every setting runs in its own process (so its peak RSS is its own), ours and
theirs alternate, and the ratio of the medians is printed. The checkout is only read: its
`.cuda()` calls become no-ops in the benchmark's process. bfloat16 is Keras' mixed_bfloat16
for ours and `torch.autocast("cpu", torch.bfloat16)` around the authors' forward pass (the loss
in float32, as ours).

  python -m benchmarks.tan_step                                     # ours only, Charades-STA
  python -m benchmarks.tan_step --reference_dir=/path/to/2D-TAN     # + the authors' code
  python -m benchmarks.tan_step --reference_dir=DIR --datasets=charades,activitynet,tacos \
      --precisions=float32,bfloat16 --rounds=2
  python -m benchmarks.tan_step --map_conv_impl=dense --jit_compile   # our other settings

Prints one line per process (median and best seconds, peak RSS, the 1-minute load average
before and after) and a table of the medians with the reference's time over ours.
"""

import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

# dataset -> (our config file, the authors' experiment file, feature width, default batch).
# Charades-STA with I3D 1024 (the Sscs paper's features); the others with their published
# features. TACoS at batch 4: the authors' code takes over a minute a step at batch 2 on a
# 2-core CPU.
DATASETS = {
    "charades": ("configs/tan_charades.py", "experiments/charades/2D-TAN-16x16-K5L8-conv.yaml",
                 1024, 32),
    "activitynet": ("configs/tan_activitynet.py",
                    "experiments/activitynet/2D-TAN-64x64-K9L4-conv.yaml", 500, 8),
    "tacos": ("configs/tan_tacos.py", "experiments/tacos/2D-TAN-128x128-K5L8-conv.yaml",
              4096, 4),
}

_DATASETS = flags.DEFINE_list("datasets", ["charades"], f"Of {sorted(DATASETS)}.")
_PRECISIONS = flags.DEFINE_list("precisions", ["float32", "bfloat16"], "float32 and/or bfloat16.")
_REFERENCE_DIR = flags.DEFINE_string("reference_dir", "", "A checkout of microsoft/2D-TAN.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", [], "dataset=batch overrides, e.g. tacos=2.")
_NUM_WORDS = flags.DEFINE_integer("num_words", 8, "Words per sentence.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed training steps (after one warm-up step).")
_FORWARD_STEPS = flags.DEFINE_integer("forward_steps", 3, "Timed forward passes.")
_ROUNDS = flags.DEFINE_integer("rounds", 1, "Times each process runs, alternating sides.")
_MAP_CONV_IMPL = flags.DEFINE_string("map_conv_impl", "sparse", "Our model.map_conv_impl.")
_JIT_COMPILE = flags.DEFINE_bool("jit_compile", False, "Compile our steps with XLA.")
_SINGLE = flags.DEFINE_string("single", "", "Internal: 'side,dataset,precision,batch'.")

_VOCAB_SIZE = 1000


def _inputs(num_sample_clips, feature_dim, num_clips, batch):
  """Random features, word ids, word vectors and IoU maps, the same for both sides."""
  rng = np.random.default_rng(0)
  return dict(
      features=rng.normal(size=(batch, num_sample_clips, feature_dim)).astype(np.float32),
      word_ids=rng.integers(3, _VOCAB_SIZE, size=(batch, _NUM_WORDS.value)).astype(np.int32),
      table=rng.normal(size=(_VOCAB_SIZE, 300)).astype(np.float32),
      iou_map=rng.uniform(size=(batch, num_clips, num_clips)).astype(np.float32))


def _time(fn, steps):
  """Median and best seconds of `steps` calls after one warm-up call."""
  fn()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times), min(times)


def _ours(dataset, precision, batch):
  import keras  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from sscs_tf.models import build_model  # pylint: disable=import-outside-toplevel
  from sscs_tf.scoring import losses  # pylint: disable=import-outside-toplevel
  from sscs_tf.train import optimizers  # pylint: disable=import-outside-toplevel

  config_file, _, feature_dim, _ = DATASETS[dataset]
  keras.mixed_precision.set_global_policy(
      "mixed_bfloat16" if precision == "bfloat16" else "float32")
  spec = importlib.util.spec_from_file_location("bench_config", config_file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("variant=conv")
  model_config = config.model
  data = _inputs(model_config.num_sample_clips, feature_dim, model_config.num_clips, batch)
  with tempfile.TemporaryDirectory() as work_dir:
    model_config.feature_dim, model_config.vocab_size = feature_dim, _VOCAB_SIZE
    model_config.embeddings_file = os.path.join(work_dir, "embeddings.npy")
    model_config.map_conv_impl = _MAP_CONV_IMPL.value
    np.save(model_config.embeddings_file, data["table"])
    model = build_model(model_config)
  # The trainer's Adam ("adam" in config.optim): Keras' update in TensorFlow's fused kernel.
  optimizer = optimizers.FusedAdam(1e-4, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                                   global_clipnorm=10.0)
  optimizer.build(model.trainable_variables)
  inputs = {"features": tf.constant(data["features"]),
            "feature_mask": tf.ones(data["features"].shape[:2]),
            "word_ids": tf.constant(data["word_ids"]),
            "num_words": tf.fill([batch], _NUM_WORDS.value)}
  iou_map = tf.constant(data["iou_map"])

  @tf.function(jit_compile=_JIT_COMPILE.value)
  def train_step():
    with tf.GradientTape() as tape:
      outputs = model(inputs, training=True)
      loss = losses.tan_loss(outputs["scores"], iou_map, outputs["map_mask"],
                             config.loss.min_iou, config.loss.max_iou)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  @tf.function(jit_compile=_JIT_COMPILE.value)
  def forward():
    return model(inputs, training=False)["scores"]

  return (lambda: float(train_step())), (lambda: forward().numpy())


def _reference(dataset, precision, batch):
  import torch  # pylint: disable=import-outside-toplevel

  root = _REFERENCE_DIR.value
  # The authors' code moves its constants to the GPU; on a CPU they stay where they are.
  torch.Tensor.cuda = lambda self, *args, **kwargs: self
  sys.path.insert(0, os.path.join(root, "lib"))
  # pylint: disable-next=import-outside-toplevel,import-error
  from core import config as reference_config
  reference_config.update_config(os.path.join(root, DATASETS[dataset][1]))
  cfg = reference_config.config
  feature_dim = DATASETS[dataset][2]
  cfg.TAN.FRAME_MODULE.PARAMS.INPUT_SIZE = feature_dim
  import models  # pylint: disable=import-outside-toplevel,import-error
  from models import loss as reference_loss  # pylint: disable=import-outside-toplevel,import-error

  num_clips = cfg.DATASET.NUM_SAMPLE_CLIPS // cfg.DATASET.TARGET_STRIDE
  data = _inputs(cfg.DATASET.NUM_SAMPLE_CLIPS, feature_dim, num_clips, batch)
  model = models.TAN()
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=0)
  # The reference reads word vectors and a word mask; ours looks the same vectors up.
  textual_input = torch.from_numpy(data["table"][data["word_ids"]])
  textual_mask = torch.ones(batch, _NUM_WORDS.value, 1)
  visual_input = torch.from_numpy(data["features"])
  targets = torch.from_numpy(data["iou_map"])[:, None]
  autocast = precision == "bfloat16"

  def predict():
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
      prediction, map_mask = model(textual_input, textual_mask, visual_input)
    return prediction.float(), map_mask.float()

  def train_step():
    model.train()
    prediction, map_mask = predict()
    loss, _ = getattr(reference_loss, cfg.LOSS.NAME)(prediction, map_mask, targets,
                                                     cfg.LOSS.PARAMS)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 10)
    optimizer.step()
    return float(loss.detach())

  def forward():
    model.eval()
    with torch.no_grad():
      return predict()[0].numpy()

  return train_step, forward


def _run_single(side, dataset, precision, batch):
  load_before = os.getloadavg()[0]
  train_step, forward = (_ours if side == "ours" else _reference)(dataset, precision, batch)
  step_median, step_best = _time(train_step, _STEPS.value)
  forward_median, forward_best = _time(forward, _FORWARD_STEPS.value)
  result = dict(side=side, dataset=dataset, precision=precision, batch=batch,
                step=step_median, step_best=step_best, forward=forward_median,
                forward_best=forward_best,
                peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20,
                load_before=load_before, load_after=os.getloadavg()[0])
  print("RESULT " + json.dumps(result), flush=True)


def _batch_sizes():
  sizes = {name: spec[3] for name, spec in DATASETS.items()}
  for item in _BATCH_SIZES.value:
    name, _, value = item.partition("=")
    if name not in DATASETS or not value.isdigit():
      raise app.UsageError(f"--batch_sizes takes dataset=batch with a dataset of "
                           f"{sorted(DATASETS)}, got {item!r}")
    sizes[name] = int(value)
  return sizes


def _check_flags():
  unknown = sorted(set(_DATASETS.value) - set(DATASETS))
  if unknown:
    raise app.UsageError(f"--datasets: unknown {unknown}; known {sorted(DATASETS)}")
  if set(_PRECISIONS.value) - {"float32", "bfloat16"}:
    raise app.UsageError(f"--precisions takes float32 and bfloat16, got {_PRECISIONS.value}")
  root = _REFERENCE_DIR.value
  if root and not os.path.exists(os.path.join(root, "lib", "models", "tan.py")):
    raise app.UsageError(f"--reference_dir {root!r} is not a checkout of microsoft/2D-TAN "
                         "(no lib/models/tan.py)")


def _cell(side, key, form="{:.2f}"):
  return form.format(side[key]) if side else "-"


def _table(results):
  print("\nmedians over processes (seconds); ratio = reference / ours")
  print("| dataset | batch | precision | ours step | ref step | step ratio | ours fwd | ref fwd "
        "| fwd ratio | ours RSS | ref RSS |")
  keys = sorted({(r["dataset"], r["batch"], r["precision"]) for r in results})
  for key in keys:
    row = {}
    for side in ("ours", "reference"):
      runs = [r for r in results if (r["dataset"], r["batch"], r["precision"]) == key
              and r["side"] == side]
      if runs:
        row[side] = {k: statistics.median(r[k] for r in runs)
                     for k in ("step", "forward", "peak_rss_gib")}
    ours, ref = row.get("ours"), row.get("reference")
    ratio = {k: f"{ref[k] / ours[k]:.2f}x" if ours and ref else "-" for k in ("step", "forward")}
    print(f"| {key[0]} | {key[1]} | {key[2]} | {_cell(ours, 'step')} | {_cell(ref, 'step')} | "
          f"{ratio['step']} | {_cell(ours, 'forward')} | {_cell(ref, 'forward')} | "
          f"{ratio['forward']} | {_cell(ours, 'peak_rss_gib', '{:.2f} GiB')} | "
          f"{_cell(ref, 'peak_rss_gib', '{:.2f} GiB')} |", flush=True)


def main(argv):
  del argv
  if _SINGLE.value:
    side, dataset, precision, batch = _SINGLE.value.split(",")
    _run_single(side, dataset, precision, int(batch))
    return
  _check_flags()
  sizes = _batch_sizes()
  sides = ["ours", "reference"] if _REFERENCE_DIR.value else ["ours"]
  print(f"{os.cpu_count()} CPUs; {_STEPS.value} timed steps, {_FORWARD_STEPS.value} forward "
        f"passes per process; ours: map_conv_impl={_MAP_CONV_IMPL.value}, "
        f"jit_compile={_JIT_COMPILE.value}", flush=True)
  passed = [a for a in sys.argv[1:] if not a.startswith(("--datasets", "--precisions",
                                                         "--rounds", "--batch_sizes"))]
  results = []
  for round_index in range(_ROUNDS.value):
    for dataset in _DATASETS.value:
      for precision in _PRECISIONS.value:
        # Alternate which side goes first from one round to the next.
        for side in (sides if round_index % 2 == 0 else sides[::-1]):
          setting = f"{side},{dataset},{precision},{sizes[dataset]}"
          out = subprocess.run([sys.executable, "-m", "benchmarks.tan_step", *passed,
                                f"--single={setting}"], check=True, stdout=subprocess.PIPE,
                               text=True).stdout
          for line in out.splitlines():
            if line.startswith("RESULT "):
              results.append(json.loads(line[len("RESULT "):]))
              print(line[len("RESULT "):], flush=True)
  _table(results)


if __name__ == "__main__":
  app.run(main)
