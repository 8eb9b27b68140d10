r"""Sscs on the demo data: 2D-TAN with Sscs off, GTC and SS (both objectives), several seeds.

  python -m scripts.sscs_study --workdir /tmp/sscs_study [--seeds 0,1,2] [--write_docs]

Trains `configs/tan_demo.py` for each mode and seed on one demo dataset and prints the
test-set Rank1@{0.5,0.7} and Rank5@{0.5,0.7} of the last epoch (no checkpoint selection:
the demo data has no validation split), as mean and standard deviation over the seeds.
`--write_docs` puts the table into docs/sscs.md between its study markers.
"""

import os
import re
import sys

import numpy as np
from absl import app, flags, logging

from configs import tan_demo
from data_prep import demo
from sscs_tf import fileio, train_lib

_WORKDIR = flags.DEFINE_string("workdir", None, "Where the data and the runs go.",
                               required=True)
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds.")
_MODES = flags.DEFINE_list("modes", ["off", "gtc", "ss"], "Sscs variants (configs/training.py).")
_WRITE_DOCS = flags.DEFINE_bool("write_docs", False, "Write the table into docs/sscs.md.")

METRICS = ("Rank1@0.5", "Rank1@0.7", "Rank5@0.5", "Rank5@0.7")
DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                    "sscs.md")
BEGIN, END = "<!-- study:begin -->", "<!-- study:end -->"


def run_one(records: str, mode: str, seed: int, workdir: str) -> dict:
  result_path = os.path.join(workdir, "result.json")
  if os.path.exists(result_path):
    return fileio.read_json(result_path)
  config = tan_demo.get_config(f"sscs={mode},seed={seed}")
  with config.unlocked():
    config.data.data_dir = records
  table = train_lib.train_and_evaluate(config, workdir)
  fileio.atomic_write_json(result_path, table)
  return table


def format_table(results: dict, seeds) -> str:
  lines = ["| Sscs | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
  for mode, tables in results.items():
    cells = []
    for metric in METRICS:
      values = 100 * np.array([t[metric] for t in tables])
      cells.append(f"{values.mean():.2f} ± {values.std(ddof=1) if len(values) > 1 else 0:.2f}")
    lines.append(f"| {mode} | " + " | ".join(cells) + " |")
  lines.append("")
  lines.append(f"Mean ± standard deviation over seeds {', '.join(seeds)}; per-seed values:")
  lines.append("")
  for mode, tables in results.items():
    per_seed = "; ".join(" / ".join(f"{100 * t[m]:.1f}" for m in METRICS) for t in tables)
    lines.append(f"- {mode}: {per_seed}")
  return "\n".join(lines)


def write_docs(table: str) -> None:
  with open(DOCS, encoding="utf-8") as f:
    text = f.read()
  command = "python -m scripts.sscs_study --workdir /tmp/sscs_study --write_docs"
  block = f"{BEGIN}\n`{command}`\n\n{table}\n{END}"
  text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
  fileio.atomic_write_text(DOCS, text)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  records = os.path.join(_WORKDIR.value, "data", "tfrecords")
  if not os.path.exists(os.path.join(records, "meta.json")):
    demo.build(os.path.join(_WORKDIR.value, "data"))
  results = {}
  for mode in _MODES.value:
    for seed in _SEEDS.value:
      run_dir = os.path.join(_WORKDIR.value, f"{mode}_seed{seed}")
      table = run_one(records, mode, int(seed), run_dir)
      print(f"{mode} seed {seed}: " + ", ".join(f"{m} {100 * table[m]:.2f}" for m in METRICS),
            flush=True)
      results.setdefault(mode, []).append(table)
  table = format_table(results, _SEEDS.value)
  print(table)
  if _WRITE_DOCS.value:
    write_docs(table)


if __name__ == "__main__":
  app.run(main)
