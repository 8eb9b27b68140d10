r"""The Sscs study on the demo data: `sscs-study` with configs/tan_demo.py on both demo settings.

  python -m scripts.sscs_study --workdir /tmp/sscs_study [--settings additive,mutual_exclusion]
      [--variants off,gtc,ss] [--seeds 0,1,2] [--write_docs]

For each demo setting (docs/demo_data.md) it writes the demo dataset into
{workdir}/{setting}/data and runs `sscs_tf.train.study.run_study` in {workdir}/{setting} (the same
as `sscs-study --config configs/tan_demo.py --config.data.data_dir=...`): best checkpoint on
the validation split, reported on the test split with the query-dependence check. Started
again, it resumes. `--write_docs` puts the tables into docs/sscs.md between its markers.
"""

import os
import re

from absl import app, flags, logging

from configs import tan_demo
from data_prep import demo
from sscs_tf.core import fileio
from sscs_tf.train import study

_WORKDIR = flags.DEFINE_string("workdir", None, "Where the data and the runs go.",
                               required=True)
_SETTINGS = flags.DEFINE_list("settings", list(demo.SETTINGS), "Demo settings.")
_VARIANTS = flags.DEFINE_list("variants", ["off", "gtc", "ss"], "Sscs variants.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds.")
_EPOCHS = flags.DEFINE_integer("epochs", 12, "Training epochs per run.")
_WRITE_DOCS = flags.DEFINE_bool("write_docs", False, "Write the tables into docs/sscs.md.")

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                    "sscs.md")


def demo_study(workdir: str, setting: str, variants, seeds, epochs: int) -> dict:
  records = os.path.join(workdir, "data", "tfrecords")
  if not os.path.exists(os.path.join(records, "meta.json")):
    demo.build(os.path.join(workdir, "data"), setting=setting)
  config = tan_demo.get_config(f"epochs={epochs}")
  with config.unlocked():
    config.data.data_dir = records
  return study.run_study(config, variants, seeds, workdir)


def write_docs(setting: str, table: str, command: str) -> None:
  begin, end = f"<!-- study:{setting}:begin -->", f"<!-- study:{setting}:end -->"
  with open(DOCS, encoding="utf-8") as f:
    text = f.read()
  if begin not in text:
    raise ValueError(f"{DOCS} has no {begin} marker")
  block = f"{begin}\n`{command}`\n\n{table}\n{end}"
  text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
  fileio.atomic_write_text(DOCS, text)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  seeds = [int(seed) for seed in _SEEDS.value]
  command = (f"python -m scripts.sscs_study --workdir /tmp/sscs_study --seeds "
             f"{','.join(_SEEDS.value)} --variants {','.join(_VARIANTS.value)} --epochs "
             f"{_EPOCHS.value}")
  for setting in _SETTINGS.value:
    summary = demo_study(os.path.join(_WORKDIR.value, setting), setting, _VARIANTS.value,
                         seeds, _EPOCHS.value)
    table = study.markdown(summary)
    print(f"\n## {setting}\n\n{table}", flush=True)
    if _WRITE_DOCS.value:
      write_docs(setting, table, f"{command} --settings {setting} --write_docs")


if __name__ == "__main__":
  app.run(main)
