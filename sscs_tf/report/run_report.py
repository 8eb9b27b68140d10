"""The HTML report for an evaluated run (sscs-eval, sscs-demo) and for sentences grounded
with an exported model (sscs-ground)."""

import os

import numpy as np

from sscs_tf.report import analysis, html


def write_eval_report(path: str, model, config, split: str, table: dict, predictions,
                      checkpoint: str = "") -> str:
  """Metrics, break-downs, Figs. 7 and 8 and every query of `split`; returns `path`."""
  label = f"{split} split"
  images = analysis.analysis_figures(model, analysis.fixed_batch(config, split),
                                      predictions, label)
  title = f"{config.model.name} on {config.data.dataset}, {label}"
  subtitle = (f"{len(predictions):,} queries; checkpoint {checkpoint}" if checkpoint
              else f"{len(predictions):,} queries")
  return html.write_report(path, predictions, table=table, config=config, title=title,
                           subtitle=subtitle, images=images)


def grounding_predictions(queries, segments, scores, duration: float, video_id: str):
  """`grounding.ground`'s arrays as report rows; padding rows (score -1) are left out."""
  rows = []
  for i, (query, query_segments, query_scores) in enumerate(zip(queries, segments, scores)):
    kept = np.asarray(query_scores) >= 0
    rows.append(dict(query_id=f"query {i + 1}", video_id=video_id, sentence=query,
                     duration=float(duration), gt=None,
                     segments=np.asarray(query_segments)[kept].tolist(),
                     scores=np.asarray(query_scores)[kept].tolist()))
  return rows


def write_grounding_report(path: str, model_dir: str, queries, segments, scores,
                           duration: float, source: str, video: str = "") -> str:
  """The timelines of the user's queries in one video; with `video` (a file the page can
  play) the page embeds it and clicking a segment seeks to its start. `source` names the
  features (or video) file the segments come from."""
  rows = grounding_predictions(queries, segments, scores, duration, os.path.basename(source))
  return html.write_report(path, rows, title=f"Grounding in {os.path.basename(source)}",
                           subtitle=f"model {model_dir}; video duration {duration:.2f} s",
                           video=video)
