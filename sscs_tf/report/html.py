"""One self-contained HTML file for a person to browse grounding predictions.

  write_report("report.html", predictions, table=table, config=config, figures=figures)

The page needs no network: CSS, JavaScript (static/report.css, static/report.js), plots
(inline SVG) and figures (PNG data URIs) are inside it, and a Content-Security-Policy forbids
any other request (a video given by path is the one exception). The queries are embedded
as JSON and drawn one page at a time in the browser, so a test split of 17,031 queries
(ActivityNet Captions) stays quick; they can be filtered by words, video and top-1 IoU and
sorted, worst first included.

`predictions` are the dicts of `eval_lib.evaluate(..., with_predictions=True)` (the JSON
lines of `sscs-eval --predictions`): query_id, video_id, sentence, duration, gt, and the kept
segments best first with their scores and ious. Without a ground truth (`sscs-ground`) gt,
ious and the plots are left out.
"""

import base64
import html
import json
import os
import string
import urllib.parse
from importlib import resources

import numpy as np

from sscs_tf.core import fileio
from sscs_tf.report import breakdown, figures
from sscs_tf.scoring import diagnostics

# What config.sscs.support / function mean, as the paper names them (Sec. 3.4).
SUPPORT_NAMES = {"video": "V-SS", "gt": "GT-SS", "non_gt": "Non-GT-SS"}
# A page never reaches the network; a video given by path is loaded from the page's folder.
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; "
                           "script-src 'unsafe-inline'; img-src data:; media-src *")


def _static(name: str) -> str:
  return resources.files("sscs_tf.report").joinpath("static", name).read_text("utf-8")


def query_rows(predictions) -> list:
  """Compact rows for the page: [query_id, video_id, sentence, duration, gt or None,
  [[start, end, score or None, iou or None], ...]] (seconds to 0.01 s)."""
  rows = []
  for p in predictions:
    segments = p.get("segments") or []
    scores = p.get("scores") or [None] * len(segments)
    ious = p.get("ious") or [None] * len(segments)
    kept = [[round(float(s), 2), round(float(e), 2), _round(score), _round(iou)]
            for (s, e), score, iou in zip(segments, scores, ious)]
    gt = p.get("gt")
    rows.append([str(p.get("query_id", len(rows))), str(p.get("video_id", "")),
                 str(p.get("sentence", "")), round(float(p["duration"]), 2),
                 [round(float(gt[0]), 2), round(float(gt[1]), 2)] if gt is not None else None,
                 kept])
  return rows


def _round(value):
  return None if value is None or not np.isfinite(value) else round(float(value), 4)


def _as_dict(config) -> dict:
  """A ConfigDict, a dict (config.json) or None as a plain dict."""
  if config is None:
    return {}
  return config.to_dict() if hasattr(config, "to_dict") else dict(config)


def run_summary(config) -> list:
  """(label, value) pairs of what the run was: model, data, Sscs variant and lambdas."""
  config = _as_dict(config)
  if not config:
    return []
  model, data = config.get("model", {}), config.get("data", {})
  sscs, evaluation = config.get("sscs", {}), config.get("eval", {})
  items = [("model", model.get("name", "?")), ("dataset", data.get("dataset", "?")),
           ("feature width", model.get("feature_dim", "?"))]
  if not sscs or sscs.get("mode", "off") == "off":
    items.append(("Sscs", "off (the baseline alone)"))
  else:
    items += [("Sscs", f"{sscs['mode'].upper()} (support set "
                       f"{SUPPORT_NAMES.get(sscs.get('support'), sscs.get('support'))}, "
                       f"function {str(sscs.get('function', '')).upper()})"),
              ("lambda1 (contrast), lambda2 (caption)",
               f"{sscs.get('lambda1')}, {sscs.get('lambda2')}"),
              ("tau", sscs.get("tau"))]
  if "nms_thresh" in evaluation:
    items.append(("NMS threshold", evaluation["nms_thresh"]))
  return items


def _table_html(items, table_id: str) -> str:
  cells = "".join(f'<tr><th scope="row">{html.escape(str(k))}</th>'
                  f'<td data-key="{html.escape(str(k))}">{html.escape(str(v))}</td></tr>'
                  for k, v in items)
  return f'<table id="{table_id}" class="keyvalue">{cells}</table>'


def metric_items(table) -> list:
  """The metric table as (name, text): metrics in percent as the paper prints them."""
  items = []
  for name, value in (table or {}).items():
    if name in ("seconds", "checkpoint", "split"):
      continue
    if name == "num_queries":
      items.append(("queries", f"{int(value):,}"))
    elif name == "loss":
      items.append((name, f"{value:.4f}"))
    elif isinstance(value, (int, float)):
      items.append((name, f"{100 * value:.2f}"))
  return items


def _query_check_html(result) -> str:
  """The query-dependence check of an evaluation (docs/sscs.md) with its warning when the
  model looks query-blind; "" when the evaluation did not run it."""
  if not result:
    return ""
  warning = diagnostics.query_blind_warning(result)
  note = (f'<p class="warning" id="query-blind">Warning: {html.escape(warning)}</p>' if warning
          else '<p class="hint" id="query-reads">No sign of a query-blind model.</p>')
  return ("<section><h2>Does the model read the sentence?</h2>" +
          _table_html(diagnostics.summary_rows(result), "query-check") + note +
          '<p class="hint">In percent. A query-blind model: coinciding top-1 segments near '
          "100, the same accuracy with another query's sentence, accuracy falling about as "
          "1 / moments.</p></section>")


def _plots(predictions, ranks, marked) -> list:
  """SVG strings of the report's plots (predictions with a ground truth only)."""
  ranks = [n for n in ranks if n <= max(len(p.get("segments") or []) for p in predictions)]
  correct = breakdown.top1_correct(predictions)
  start, length = breakdown.relative_gt(predictions)
  edges = breakdown.RELATIVE_EDGES
  made = [figures.rank_curve_figure(breakdown.rank_curve(predictions, ranks or [1]),
                                    breakdown.IOU_GRID, marked),
          figures.histogram_figure(*breakdown.top1_histogram(predictions)),
          figures.accuracy_figure(*breakdown.accuracy_by(length, correct), edges,
                                  "ground-truth length / video duration",
                                  "Accuracy by ground-truth length"),
          figures.accuracy_figure(*breakdown.accuracy_by(start, correct), edges,
                                  "ground-truth start / video duration",
                                  "Accuracy by position in the video")]
  return [figures.svg_text(figure) for figure in made]


def _figures_html(images) -> str:
  parts = []
  for name, (png, description) in (images or {}).items():
    source = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    parts.append(f'<figure class="analysis" id="{html.escape(name)}"><img alt="'
                 f'{html.escape(name)}" src="{source}"><figcaption>'
                 f"{html.escape(description)}</figcaption></figure>")
  return "".join(parts)


def video_source(video: str, report_path: str) -> str:
  """The video's URL relative to the report's folder (the two move together)."""
  relative = os.path.relpath(os.path.abspath(video),
                             os.path.dirname(os.path.abspath(report_path)))
  return urllib.parse.quote(relative.replace(os.sep, "/"))


def render(predictions, *, table=None, config=None, title: str = "Grounding predictions",
           subtitle: str = "", images=None, video_url: str = "") -> str:
  """The page as a string (see `write_report`)."""
  predictions = list(predictions)
  has_gt = bool(predictions) and all(p.get("gt") is not None for p in predictions)
  evaluation = _as_dict(config).get("eval", {})
  plots = _plots(predictions, evaluation.get("ranks", (1, 5)),
                 evaluation.get("iou_thresholds", ())) if has_gt else []
  data = dict(has_gt=has_gt, queries=query_rows(predictions))
  sections = []
  if config is not None:
    sections.append("<h2>Run</h2>" + _table_html(run_summary(config), "run"))
  if metric_items(table):
    metrics = ("<h2>Metrics</h2>" + _table_html(metric_items(table), "metrics") +
               '<p class="hint">Rank n@m, R@1 and mIoU in percent.</p>')
    query_check = _query_check_html(table.get("query_dependence"))
    sections.append(f'<div class="beside"><section>{metrics}</section>{query_check}</div>'
                    if query_check else metrics)
  if plots:
    sections.append('<h2>Break-downs</h2><div class="plots">' + "".join(
        f'<div class="plot">{svg}</div>' for svg in plots) + "</div>")
  if video_url:
    sections.append(f'<h2>Video</h2><video id="video" controls preload="metadata" '
                    f'src="{html.escape(video_url)}"></video>'
                    '<p class="hint">Click a segment to play the video from its start.</p>')
  page = string.Template(_static("report.html"))
  return page.substitute(
      title=html.escape(title), subtitle=html.escape(subtitle), csp=CONTENT_SECURITY_POLICY,
      css=_static("report.css"), js=_static("report.js"), sections="\n".join(sections),
      figures=("<h2>Analysis figures</h2>" + _figures_html(images)) if images else "",
      data=_script_json(data))


def _script_json(data) -> str:
  """JSON that cannot end its <script> element early (`</script>` in a sentence)."""
  return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def write_report(path: str, predictions, *, table=None, config=None,
                 title: str = "Grounding predictions", subtitle: str = "", images=None,
                 video: str = "") -> str:
  """Writes the report atomically and returns its path.

  Args:
    path: the HTML file to write.
    predictions: per-query dicts (see the module docstring).
    table: the metric table of `eval_lib.evaluate` (optional); its "query_dependence", when
      the evaluation ran the check, is shown beside the metrics.
    config: the run's config (ConfigDict or dict): model, data and Sscs settings (optional).
    title, subtitle: the page's heading.
    images: {name: (PNG bytes, description)}, e.g. `report.analysis.analysis_figures`.
    video: a video file shown above the queries; clicking a segment seeks to it. Linked by
      its path relative to the report, so keep the two together.
  """
  page = render(predictions, table=table, config=config, title=title, subtitle=subtitle,
                images=images, video_url=video_source(video, path) if video else "")
  fileio.atomic_write_text(path, page)
  return path
