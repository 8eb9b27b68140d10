r"""The whole project on the embedded demo data, from nothing, in a few minutes on a CPU.

  sscs-demo --workdir demo_run

writes the demo dataset (Charades-STA formats) and converts it, trains a small 2D-TAN (or,
with --baseline lgi or vslnet, LGI or VSLNet) with Sscs (SS: V-SS + CA, both objectives), evaluates it and writes
the HTML report of every test query, exports a SavedModel, and grounds a test sentence
through that SavedModel. Run again, it resumes (or reuses) what is there.
"""

import importlib
import os
import time

import h5py
from absl import app, flags, logging

from sscs_tf import cli  # first: quiets TensorFlow's start-up  # isort: skip
from sscs_tf import models
from data_prep import annotations
from data_prep import demo as demo_data
from sscs_tf.evaluate import eval_lib
from sscs_tf.run import run_dir
from sscs_tf.serve import export_lib, grounding
from sscs_tf.train import train_lib
from sscs_tf.report import run_report

_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for everything the demo writes.",
                               required=True)
# The baselines with a demo config (models.BASELINES, `demo_config`).
DEMO_CONFIGS = {name: b.demo_config for name, b in models.BASELINES.items() if b.demo_config}
_BASELINE = flags.DEFINE_enum("baseline", "tan", sorted(DEMO_CONFIGS), "Grounding model: " + (
    ", ".join(f"{name} ({module.replace('.', '/')}.py)"
              for name, module in sorted(DEMO_CONFIGS.items()))) + ".")
_CONFIG_ARG = flags.DEFINE_string("config_arg", "sscs=ss", "Argument of the demo config "
                                  "(e.g. sscs=off, sscs=gtc, seed=1, epochs=4).")


def _sample_query(raw_dir: str):
  """The first test sentence of the demo data with its video's features and duration."""
  with open(os.path.join(raw_dir, "charades_sta_test.txt"), encoding="utf-8") as f:
    head, sentence = f.readline().rstrip("\n").split("##")
  video_id, start, end = head.split()
  durations = annotations.read_charades_durations(
      [os.path.join(raw_dir, "Charades_v1_test.csv")])
  duration = durations[video_id]
  with h5py.File(os.path.join(raw_dir, "features.hdf5"), "r") as f:
    features = f[video_id][()]
  return video_id, sentence, float(start), float(end), duration, features


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  started = time.time()
  workdir = os.path.abspath(_WORKDIR.value)
  data_dir = os.path.join(workdir, "data")
  records = os.path.join(data_dir, "tfrecords")
  if not os.path.exists(os.path.join(records, "meta.json")):
    demo_data.build(data_dir)
  config = importlib.import_module(DEMO_CONFIGS[_BASELINE.value]).get_config(_CONFIG_ARG.value)
  with config.unlocked():
    config.data.data_dir = records
  run = os.path.join(workdir, f"run_{_BASELINE.value}")
  train_lib.train_and_evaluate(config, run)
  model, run_config, best = run_dir.load_model(run, "best")
  table, predictions = eval_lib.evaluate(model, run_config, "test", with_predictions=True)
  report = run_report.write_eval_report(os.path.join(workdir, f"report_{_BASELINE.value}.html"),
                                        model, run_config, "test", table, predictions, best)
  export = os.path.join(workdir, f"export_{_BASELINE.value}")
  export_lib.export_run(run, export)
  video_id, sentence, start, end, duration, features = _sample_query(
      os.path.join(data_dir, "raw"))
  segments, scores = grounding.ground(export, features, duration, [sentence])
  print("\n=== sscs_tf demo ===")
  print(f"Demo data (Charades-STA formats): {os.path.join(data_dir, 'raw')}")
  print(f"TFRecords: {records}")
  print(f"Training run (checkpoints, config.json): {run}")
  print(f"Test-set evaluation of the best checkpoint on the validation split ({best}):\n"
        f"{eval_lib.paper_table(table, 'test')}")
  print(f"Report of every test query (open it in a browser): {report}")
  print(f"SavedModel: {export}  (saved_model_cli show --dir {export} --all)")
  print(f"Grounding '{sentence}' in test video {video_id} (ground truth {start:.1f} s - "
        f"{end:.1f} s of {duration:.1f} s) through the SavedModel:")
  for rank, ((s, e), score) in enumerate(zip(segments[0], scores[0]), 1):
    print(f"  {rank}. {s:6.2f} s - {e:6.2f} s   score {score:.3f}")
  print(f"TensorBoard: tensorboard --logdir {os.path.join(run, 'tensorboard')}")
  print(f"Done in {time.time() - started:.0f} s.")


def run():
  cli.run("sscs-demo", main)


if __name__ == "__main__":
  run()
