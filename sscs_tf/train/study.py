"""A comparison of Sscs variants over seeds on one dataset: `run_study(config, ...)`.

  DIR/runs/{variant}_seed{seed}/   one training run each (checkpoints, best/, tensorboard/)
  DIR/runs/.../result.json         its evaluation-split table, written once the run is done
  DIR/study.json, DIR/study.md     the table: mean ± sd over seeds, per-seed values, paired
                                   differences against `off`, the query-dependence check

Runs go one after the other. Started again, a study skips the runs that wrote result.json
and resumes an interrupted one from its last checkpoint. Each run keeps the checkpoint that
scored best on the validation split and reports it on the evaluation (test) split, with the
query-dependence diagnostics (sscs_tf/scoring/diagnostics.py); `tensorboard --logdir DIR/runs` shows
the runs side by side.
"""

import copy
import os

import numpy as np
from absl import logging

from configs import training
from sscs_tf.core import fileio
from sscs_tf.evaluate import eval_lib
from sscs_tf.run import run_dir
from sscs_tf.train import train_lib

RESULT = "result.json"
# The variant fields that `configs/training.py` sets; the rest of config.sscs (widths) stays.
VARIANT_FIELDS = ("mode", "lambda1", "lambda2", "support", "function")
# Diagnostics shown as columns: (label, path into the query_dependence dict).
DIAGNOSTIC_COLUMNS = (
    ("same top-1", ("same_top1",)),
    ("top-1 on other GT", ("top1_on_other_gt",)),
    ("top-1 own sentence", ("query_shuffled", "accuracy_own")),
    ("top-1 swapped sentence", ("query_shuffled", "accuracy_swapped")),
)


def variant_config(config, variant: str, seed: int):
  """A copy of `config` with the Sscs variant's objective fields and the seed set."""
  if variant not in training.SSCS_VARIANTS:
    raise ValueError(f"Unknown sscs variant {variant!r}; known: "
                     f"{sorted(training.SSCS_VARIANTS)}.")
  variant_sscs = training.sscs_config(config.data.dataset, variant)
  config = copy.deepcopy(config)
  with config.unlocked():
    config.seed = seed
    for field in VARIANT_FIELDS:
      config.sscs[field] = variant_sscs[field]
  return config


def run_one(config, workdir: str) -> dict:
  """Trains (or resumes) one run, then evaluates its best checkpoint on the evaluation
  split; returns and writes result.json. A run whose result.json exists is not touched."""
  path = os.path.join(workdir, RESULT)
  if os.path.exists(path):
    logging.info("%s: done before, skipped", workdir)
    return fileio.read_json(path)
  train_lib.train_and_evaluate(config, workdir)
  model, run_config, checkpoint = run_dir.load_model(workdir, "best")
  selection = run_dir.checkpoint_selection(workdir, "best", checkpoint, run_config)
  split = run_config.data.eval_split
  if selection["split"] == split:
    raise ValueError(f"{workdir}: the best checkpoint was chosen on {split!r}, the split the "
                     "study reports; set config.data.val_split to another split.")
  table, _ = eval_lib.evaluate(model, run_config, split, query_diagnostics=True)
  result = dict(table=table, split=split, selection=selection)
  fileio.atomic_write_json(path, result)
  return result


def run_study(config, variants, seeds, workdir: str) -> dict:
  """Every (variant, seed) in turn; returns the summary also written to study.json/.md."""
  if not variants or not seeds:
    raise ValueError("A study needs at least one variant and one seed.")
  for variant in variants:
    variant_config(config, variant, 0)  # an unknown name fails before any training
  results = {}
  for variant in variants:
    for seed in seeds:
      name = f"{variant}_seed{seed}"
      result = run_one(variant_config(config, variant, seed),
                       os.path.join(workdir, "runs", name))
      results.setdefault(variant, {})[seed] = result
      logging.info("%s: %s", name, eval_lib.format_table(result["table"]))
  summary = summarize(results, seeds)
  fileio.atomic_write_json(os.path.join(workdir, "study.json"), summary)
  fileio.atomic_write_text(os.path.join(workdir, "study.md"), markdown(summary) + "\n")
  return summary


def _columns(table: dict) -> list:
  """(label, getter) of every metric, then the diagnostics."""
  names = [k for k in table if k not in eval_lib.NOT_METRICS + ("loss",)]
  columns = [(name, lambda t, name=name: t[name]) for name in names]
  for label, keys in DIAGNOSTIC_COLUMNS:
    columns.append((label, lambda t, keys=keys: _dig(t["query_dependence"], keys)))
  return columns


def _dig(values: dict, keys) -> float:
  for key in keys:
    values = values[key]
  return values


def _mean_sd(values) -> dict:
  values = np.asarray(values, np.float64)
  return dict(mean=float(values.mean()),
              sd=float(values.std(ddof=1)) if len(values) > 1 else 0.0)


def summarize(results: dict, seeds) -> dict:
  """{variant: {column: {"mean", "sd", "per_seed"}}}, paired differences against `off`, the
  accuracy by number of moments, and where each run's checkpoint came from."""
  first = next(iter(next(iter(results.values())).values()))
  columns = _columns(first["table"])
  summary = dict(split=first["split"], seeds=list(seeds), columns=[c for c, _ in columns],
                 variant_order=list(results), variants={}, paired_vs_off={}, by_moments={},
                 selection={})
  for variant, runs in results.items():
    rows = {}
    for label, get in columns:
      per_seed = [get(runs[s]["table"]) for s in seeds]
      rows[label] = dict(_mean_sd(per_seed), per_seed=per_seed)
    summary["variants"][variant] = rows
    summary["by_moments"][variant] = {
        moments: _mean_sd([runs[s]["table"]["query_dependence"]["by_moments"][moments]
                           ["accuracy"] for s in seeds])
        for moments in first["table"]["query_dependence"]["by_moments"]}
    summary["selection"][variant] = [
        {k: runs[s]["selection"][k] for k in ("split", "metric", "step")} for s in seeds]
  if "off" in results:
    for variant in results:
      if variant == "off":
        continue
      summary["paired_vs_off"][variant] = {
          label: _mean_sd(np.subtract(summary["variants"][variant][label]["per_seed"],
                                      summary["variants"]["off"][label]["per_seed"]))
          for label, _ in columns}
  return summary


def _cell(stats: dict, signed: bool = False, spread: bool = True) -> str:
  mean = f"{100 * stats['mean']:{'+' if signed else ''}.2f}"
  return f"{mean} ± {100 * stats['sd']:.2f}" if spread else mean


def markdown(summary: dict) -> str:
  """The summary as markdown tables (percent; ± sd over seeds when there are several)."""
  columns = summary["columns"]
  spread = len(summary["seeds"]) > 1
  _cell_ = lambda stats, signed=False: _cell(stats, signed, spread)  # noqa: E731
  header = ["| Sscs | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
  seeds = ", ".join(map(str, summary["seeds"]))
  lines = [f"Split `{summary['split']}`; " + (f"mean ± sd over seeds {seeds}." if spread else
                                              f"one seed ({seeds}): no spread to show."),
           ""] + header
  order = summary["variant_order"]  # JSON files keep keys sorted
  for variant in order:
    rows = summary["variants"][variant]
    lines.append(f"| {variant} | " + " | ".join(_cell_(rows[c]) for c in columns) + " |")
  if summary["paired_vs_off"]:
    lines += ["", "Paired differences against `off` (same seed)" +
              (", mean ± sd:" if spread else ":"), ""] + header
    for variant in [v for v in order if v in summary["paired_vs_off"]]:
      rows = summary["paired_vs_off"][variant]
      lines.append(f"| {variant} - off | " + " | ".join(_cell_(rows[c], True) for c in columns)
                   + " |")
  moments = sorted({m for rows in summary["by_moments"].values() for m in rows}, key=int)
  lines += ["", f"Top-1 accuracy ({columns[0]}) by annotated moments per video:", "",
            "| Sscs | " + " | ".join(f"{m} moment(s)" for m in moments) + " |",
            "|---" * (len(moments) + 1) + "|"]
  for variant in order:
    rows = summary["by_moments"][variant]
    lines.append(f"| {variant} | " + " | ".join(_cell_(rows[m]) if m in rows else "-"
                                                for m in moments) + " |")
  lines += ["", "Per-seed values (" + ", ".join(columns) + "):", ""]
  for variant in order:
    rows = summary["variants"][variant]
    per_seed = zip(*(rows[c]["per_seed"] for c in columns))
    lines.append(f"- {variant}: " + "; ".join(" / ".join(f"{100 * v:.1f}" for v in values)
                                              for values in per_seed))
  chosen = {(c["metric"], c["split"]) for runs in summary["selection"].values() for c in runs}
  steps = "; ".join(
      variant + " " + ", ".join(str(c["step"]) for c in summary["selection"][variant])
      for variant in order)
  lines += ["", "Checkpoints: best " + ", ".join(f"{m} on `{s}`" for m, s in sorted(chosen))
            + f", at steps {steps}."]
  return "\n".join(lines)
