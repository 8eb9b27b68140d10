"""The paper's analysis figures and the report's plots, drawn with matplotlib (Agg, no
display): PNG for TensorBoard and the report, SVG for the report's line and bar plots.

  Fig. 7: video-text similarity matrix of a batch of pairs (the matching pairs, the ground
          truth, on the diagonal), beside each sentence's similarity to its own video's clips
          with the ground-truth clips outlined.
  Fig. 8: correct top-1 predictions (IoU > 0.5) by the ground truth's start position and
          relative length, as counts and as accuracy per bin.
"""

import io
import textwrap

import numpy as np
from matplotlib import patches, rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sscs_tf.report import breakdown

SIMILARITY_CMAP = "RdBu_r"  # diverging: negative cosine blue, 0 white, positive red
SEQUENTIAL_CMAP = "viridis"
GT_COLOUR = "#1a9641"


def new_figure(width: float, height: float) -> Figure:
  """A figure on the Agg canvas, outside pyplot (no global state, no display)."""
  figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
  FigureCanvasAgg(figure)
  return figure


def png_bytes(figure: Figure) -> bytes:
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png")
  return buffer.getvalue()


def svg_text(figure: Figure) -> str:
  """SVG with text kept as text (smaller, selectable), without the XML prolog."""
  buffer = io.StringIO()
  with rc_context({"svg.fonttype": "none", "svg.hashsalt": "sscs_tf"}):  # same input, same file
    figure.savefig(buffer, format="svg", metadata={"Date": None})
  text = buffer.getvalue()
  return text[text.index("<svg"):]


def _short(sentence: str, width: int = 48) -> str:
  return textwrap.shorten(sentence, width=width, placeholder="...")


def similarity_figure(similarity, clip_similarity, gt_clips, sentences, video_ids,
                      title: str) -> Figure:
  """Fig. 7.

  Args:
    similarity: `[B, B]` cosine of sentence i with video j's mean ground-truth clip feature.
    clip_similarity: `[B, T]` cosine of sentence i with each clip of its own video (NaN for
      padded clips).
    gt_clips: `[B, T]` 1 on the ground-truth clips of query i.
    sentences, video_ids: `[B]` strings.
  """
  similarity = np.asarray(similarity, np.float64)
  clip_similarity = np.asarray(clip_similarity, np.float64)
  count, num_clips = clip_similarity.shape
  figure = new_figure(15, 1.6 + 0.42 * count)
  matrix_axes, clip_axes = figure.subplots(1, 2, width_ratios=[1.0, 1.15])
  labels = [f"{i}: {_short(s)}" for i, s in enumerate(sentences)]
  # One symmetric scale for both panels, as wide as the values need: a model early in
  # training has cosines near 0 that a fixed [-1, 1] scale would wash out.
  extent = np.nanmax(np.abs(np.concatenate([similarity.ravel(), clip_similarity.ravel()])))
  limit = min(1.0, max(0.1, np.ceil(10 * extent) / 10))
  image = matrix_axes.imshow(similarity, cmap=SIMILARITY_CMAP, vmin=-limit, vmax=limit)
  for i in range(count):  # the matching pairs
    matrix_axes.add_patch(patches.Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False,
                                             edgecolor=GT_COLOUR, linewidth=2))
  matrix_axes.set_yticks(range(count), labels, fontsize=9)
  matrix_axes.set_xticks(range(count), [f"{i}: {v}" for i, v in enumerate(video_ids)],
                         rotation=60, ha="right", fontsize=8)
  matrix_axes.set_xlabel("video (mean feature of its ground-truth clips)")
  matrix_axes.set_ylabel("sentence")
  matrix_axes.set_title("(a) sentence vs. video; outlined: matching pairs")
  figure.colorbar(image, ax=matrix_axes, label="cosine similarity", shrink=0.8)

  image = clip_axes.imshow(np.ma.masked_invalid(clip_similarity), cmap=SIMILARITY_CMAP,
                           vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
  for i, row in enumerate(np.asarray(gt_clips) > 0):
    clips = np.nonzero(row)[0]
    if len(clips):
      clip_axes.add_patch(patches.Rectangle((clips[0] - 0.5, i - 0.45), clips[-1] - clips[0] + 1,
                                            0.9, fill=False, edgecolor=GT_COLOUR, linewidth=2))
  clip_axes.set_yticks(range(count), [str(i) for i in range(count)], fontsize=9)
  clip_axes.set_xticks(_clip_ticks(num_clips))
  clip_axes.set_xlabel(f"clip index (0 = start of the video, {num_clips - 1} = end)")
  clip_axes.set_ylabel("sentence")
  clip_axes.set_title("(b) sentence-clip cosine in its own video; outlined: ground truth")
  figure.colorbar(image, ax=clip_axes, label="cosine similarity", shrink=0.8)
  figure.suptitle(title, fontsize=13)
  return figure


def _clip_ticks(num_clips: int):
  step = max(1, int(np.ceil(num_clips / 16)))
  return list(range(0, num_clips, step))


def _bin_labels(edges) -> list:
  return [f"{a:.1f}-{b:.1f}" for a, b in zip(edges[:-1], edges[1:])]


def interval_figure(hits, accuracy, total, title: str) -> Figure:
  """Fig. 8 from `breakdown.interval_distribution` (rows: start bins, columns: length)."""
  edges = breakdown.RELATIVE_EDGES
  labels = _bin_labels(edges)
  figure = new_figure(14, 6.8)
  panels = figure.subplots(1, 2)
  # Transposed so that x is the start position and y the length, origin at the bottom.
  counts = np.where(total > 0, hits, np.nan)  # grey: bins without queries
  for axes, values, name, vmax in ((panels[0], counts, "correct predictions (count)",
                                    max(float(np.max(hits)), 1.0)),
                                   (panels[1], accuracy, "accuracy (correct / queries)", 1.0)):
    image = axes.imshow(np.ma.masked_invalid(np.asarray(values, np.float64).T),
                        cmap=SEQUENTIAL_CMAP, vmin=0, vmax=vmax, origin="lower")
    axes.set_facecolor("#dddddd")  # bins without queries
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=9)
    axes.set_yticks(range(len(labels)), labels, fontsize=9)
    axes.set_xlabel("ground-truth start / video duration")
    axes.set_ylabel("ground-truth length / video duration")
    figure.colorbar(image, ax=axes, label=name, shrink=0.85)
  _annotate(panels[0], counts, "{:.0f}")
  _annotate(panels[1], counts, "{:.0f}", total)
  panels[0].set_title("(a) correct top-1 predictions (IoU > 0.5)")
  panels[1].set_title("(b) accuracy per bin (cell: correct/queries)")
  figure.suptitle(title, fontsize=13)
  return figure


def _annotate(axes, values, fmt: str, total=None) -> None:
  values = np.asarray(values, np.float64)
  for start, length in zip(*np.nonzero(np.isfinite(values))):
    text = fmt.format(values[start, length])
    if total is not None:
      text += f"/{total[start, length]:.0f}"
    axes.text(start, length, text, ha="center", va="center", fontsize=8, color="black",
              bbox=dict(boxstyle="round,pad=0.15", facecolor="white", alpha=0.75, linewidth=0))


def rank_curve_figure(curves: dict, thresholds, marked=()) -> Figure:
  """Rank n@m against m, one line per n; `marked` thresholds (the table's) get a rule."""
  figure = new_figure(5.6, 3.6)
  axes = figure.subplots()
  for n, values in curves.items():
    axes.plot(thresholds, 100 * np.asarray(values), marker="o", markersize=3,
              label=f"Rank{n}@m")
  for m in marked:
    axes.axvline(m, color="#999999", linewidth=0.8, linestyle=":")
  axes.set_xlim(0, 1)
  axes.set_ylim(0, 100)
  axes.set_xlabel("IoU threshold m")
  axes.set_ylabel("queries with a hit (%)")
  axes.set_title("Rank n@m against the IoU threshold")
  axes.grid(alpha=0.3)
  axes.legend()
  return figure


def histogram_figure(counts, edges) -> Figure:
  figure = new_figure(5.6, 3.6)
  axes = figure.subplots()
  axes.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#4c72b0",
           edgecolor="white")
  axes.set_xlim(0, 1)
  axes.set_xlabel("IoU of the top-1 prediction with the ground truth")
  axes.set_ylabel("queries")
  axes.set_title("Top-1 IoU histogram")
  axes.grid(axis="y", alpha=0.3)
  return figure


def accuracy_figure(accuracy, counts, edges, xlabel: str, title: str) -> Figure:
  """Bars of accuracy per bin, the query count written on each bar."""
  figure = new_figure(5.6, 3.6)
  axes = figure.subplots()
  centres = (np.asarray(edges[:-1]) + np.asarray(edges[1:])) / 2
  heights = 100 * np.nan_to_num(np.asarray(accuracy, np.float64))
  axes.bar(centres, heights, width=np.diff(edges) * 0.9, color="#55a868")
  for x, height, count in zip(centres, heights, counts):
    axes.text(x, height + 1, f"n={count}", ha="center", va="bottom", fontsize=7)
  axes.set_xlim(edges[0], edges[-1])
  axes.set_ylim(0, 110)
  axes.set_xlabel(xlabel)
  axes.set_ylabel("top-1 IoU > 0.5 (%)")
  axes.set_title(title)
  axes.grid(axis="y", alpha=0.3)
  return figure
