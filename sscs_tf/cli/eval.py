r"""Evaluates a trained run and prints the paper's table.

  sscs-eval --workdir runs/tan_ss [--split test] [--checkpoint best|latest|PATH]
      [--predictions runs/tan_ss/predictions_test.jsonl] [--html runs/tan_ss/report.html]

Writes the table as JSON (default {workdir}/eval_{split}.json); `--predictions` writes one
JSON line per query (its sentence, ground truth, kept segments, their scores and IoUs);
`--html` writes a self-contained page to browse them with the metrics, break-downs and the
paper's Figs. 7 and 8. It says which checkpoint it evaluates and how it was chosen; a
checkpoint chosen on the split being evaluated is refused unless --allow_selected_on_split,
and then labelled so in the table and the JSON ("selection": {"selected_on_reported_split":
true}).
"""

import json
import os

from absl import app, flags, logging

from sscs_tf import cli
from sscs_tf.core import fileio
from sscs_tf.evaluate import eval_lib
from sscs_tf.run import run_dir
from sscs_tf.report import run_report

_WORKDIR = flags.DEFINE_string("workdir", None, "Folder written by sscs-train.", required=True)
_SPLIT = flags.DEFINE_string("split", "", "Split to evaluate (default: the config's eval "
                             "split).")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best", "best, latest or a checkpoint path.")
_OUTPUT = flags.DEFINE_string("output", "", "JSON file for the table (default "
                              "{workdir}/eval_{split}.json).")
_ALLOW_SELECTED = flags.DEFINE_bool(
    "allow_selected_on_split", False, "Evaluate a checkpoint chosen on the split being "
    "evaluated (its numbers are then optimistic, and labelled so).")
_PREDICTIONS = flags.DEFINE_string("predictions", "", "Optional JSON-lines file of per-query "
                                   "predictions.")
_HTML = flags.DEFINE_string("html", "", "Optional HTML report of the predictions (one "
                            "self-contained file).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.INFO)
  model, config, path = run_dir.load_model(_WORKDIR.value, _CHECKPOINT.value)
  split = _SPLIT.value or config.data.eval_split
  selection = run_dir.checkpoint_selection(_WORKDIR.value, _CHECKPOINT.value, path, config)
  selection["selected_on_reported_split"] = selection["split"] == split
  if selection["selected_on_reported_split"] and not _ALLOW_SELECTED.value:
    raise ValueError(
        f"the checkpoint {path} was chosen as the {selection['how']}: its {split!r} numbers "
        f"would be selected on {split!r} itself. Evaluate another split, --checkpoint latest, "
        "or pass --allow_selected_on_split to report them labelled as such.")
  table, predictions = eval_lib.evaluate(model, config, split,
                                         with_predictions=bool(_PREDICTIONS.value or _HTML.value))
  output = _OUTPUT.value or os.path.join(_WORKDIR.value, f"eval_{split}.json")
  fileio.atomic_write_json(output, dict(table, split=split, checkpoint=path,
                                        selection=selection))
  if _PREDICTIONS.value:
    fileio.atomic_write_text(_PREDICTIONS.value,
                             "".join(json.dumps(p) + "\n" for p in predictions))
  print(f"{config.model.name} on {config.data.dataset} {split} ({table['num_queries']} "
        f"queries), checkpoint {path}: {selection['how']}")
  label = f"{split} (selected on {split})" if selection["selected_on_reported_split"] else split
  print(eval_lib.paper_table(table, label))
  if "query_dependence" in table:
    print(eval_lib.query_dependence_table(table["query_dependence"]))
  print(f"Table written to {output}")
  if _HTML.value:
    run_report.write_eval_report(_HTML.value, model, config, split, table, predictions, path)
    print(f"Report written to {_HTML.value}")


def run():
  cli.run("sscs-eval", main)


if __name__ == "__main__":
  run()
