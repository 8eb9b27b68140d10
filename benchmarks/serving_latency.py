r"""Serving latency of exported SavedModels trained with and without Sscs.

Trains the demo 2D-TAN config a few steps with `sscs=off` and with `sscs=ss` on the demo
data, exports both, and times the `serving_default` signature of each in a fresh process at
batch 1 and 32 (raw sentences, features [batch, 75, D]: the tokenizer, resampling, model and
NMS all run in the graph). Also prints each export's variable count and op count (its graph
and every function in its library): the branch is training-only, so both must be equal.

  python -m benchmarks.serving_latency [--workdir /tmp/serving_latency] [--repeats 20]
"""

import json
import os
import subprocess
import sys

from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", "/tmp/serving_latency", "Scratch folder.")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Timed calls per batch size.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 20, "Training steps per model.")

TIMER = r"""
import json, sys, time
import numpy as np
import tensorflow as tf
import tensorflow_text  # registers the tokenizer ops
model = tf.saved_model.load(sys.argv[1])
serve = model.signatures["serving_default"]
dim = int(sys.argv[3])  # the signature takes [batch, T, D] with D unknown
graph = serve.graph.as_graph_def()
ops = len(graph.node) + sum(len(f.node_def) for f in graph.library.function)
result = {"variables": len(serve.variables), "ops": ops}
rng = np.random.default_rng(0)
for batch in (1, 32):
  args = dict(sentences=tf.constant(["a person opens the door."] * batch),
              features=tf.constant(rng.normal(size=(batch, 75, dim)).astype(np.float32)),
              lengths=tf.fill([batch], 75), durations=tf.fill([batch], 30.0))
  serve(**args)  # warm up
  times = []
  for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    serve(**args)["segments"].numpy()
    times.append(time.perf_counter() - start)
  result[f"batch{batch}_ms"] = 1000 * float(np.median(times))
print("RESULT " + json.dumps(result))
"""


def _train_and_export(records: str, variant: str, workdir: str) -> str:
  from configs import tan_demo  # pylint: disable=import-outside-toplevel
  from sscs_tf.serve import export_lib  # pylint: disable=import-outside-toplevel
  from sscs_tf.train import train_lib
  config = tan_demo.get_config(f"sscs={variant}")
  with config.unlocked():
    config.data.data_dir = records
    config.train.num_train_steps = _TRAIN_STEPS.value
  run = os.path.join(workdir, f"run_{variant}")
  train_lib.train_and_evaluate(config, run)
  export = os.path.join(workdir, f"export_{variant}")
  export_lib.export_run(run, export)
  return export, config.model.feature_dim


def main(argv):
  del argv
  from data_prep import demo  # pylint: disable=import-outside-toplevel
  records = os.path.join(_WORKDIR.value, "data", "tfrecords")
  if not os.path.exists(os.path.join(records, "meta.json")):
    demo.build(os.path.join(_WORKDIR.value, "data"))
  rows = {}
  for variant in ("off", "ss"):
    export, feature_dim = _train_and_export(records, variant, _WORKDIR.value)
    out = subprocess.run([sys.executable, "-c", TIMER, export, str(_REPEATS.value),
                          str(feature_dim)],
                         check=True, capture_output=True, text=True).stdout
    rows[variant] = json.loads(next(l for l in out.splitlines()
                                    if l.startswith("RESULT"))[len("RESULT "):])
  print(f"| trained with | variables | graph ops | batch 1 (ms) | batch 32 (ms) |\n"
        f"|---|---|---|---|---|")
  for variant, row in rows.items():
    print(f"| sscs={variant} | {row['variables']} | {row['ops']} | {row['batch1_ms']:.1f} | "
          f"{row['batch32_ms']:.1f} |")
  print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
  app.run(main)
