r"""Size and speed of the HTML report for an ActivityNet Captions-sized test split.

  python -m benchmarks.report_size                      # 17,031 queries, 3 page loads
  python -m benchmarks.report_size --queries=3720 --loads=5 --keep=/tmp/report.html

Writes a report of random predictions shaped like ActivityNet Captions' (videos of 10-240 s,
sentences of 8-25 words, 5 kept segments with scores and IoUs, Fig. 8 and a Fig. 7 of random
similarities), then opens it in headless Chromium (tests/browser.py) and prints: the time to
write it, its size, the time until the first page of rows is drawn (from navigation start,
the page's own clock), and the time to re-sort all queries worst first and to draw 500 rows.
"""

import os
import tempfile
import time

import numpy as np
from absl import app, flags

from configs import tan_activitynet
from sscs_tf.scoring import metrics
from sscs_tf.report import breakdown, figures, html
from tests import browser

_QUERIES = flags.DEFINE_integer("queries", 17031, "Queries in the report (ActivityNet "
                                "Captions' test split: 17,031).")
_LOADS = flags.DEFINE_integer("loads", 3, "Page loads timed (a fresh tab each).")
_KEEP = flags.DEFINE_string("keep", "", "Keep the report at this path.")

WORDS = ("a man woman person is are the and of on in with to playing holding standing "
         "walks runs jumps talks camera shows while then ball water dog people group "
         "continues speaks front").split()


def synthetic_predictions(count: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  durations = rng.uniform(10, 240, count)
  gt = np.sort(rng.uniform(0, 1, (count, 2)), axis=1) * durations[:, None]
  segments = np.sort(rng.uniform(0, 1, (count, 5, 2)), axis=2) * durations[:, None, None]
  scores = -np.sort(-rng.uniform(0, 1, (count, 5)), axis=1)
  ious = metrics.temporal_iou(segments, gt[:, None, :])
  return [dict(query_id=f"v_{i // 4:07d}_{i % 4}", video_id=f"v_{i // 4:07d}",
               sentence=" ".join(rng.choice(WORDS, rng.integers(8, 26))) + ".",
               duration=float(durations[i]), gt=gt[i].tolist(), segments=segments[i].tolist(),
               scores=scores[i].tolist(), ious=ious[i].tolist())
          for i in range(count)]


def _images(predictions):
  rng = np.random.default_rng(1)
  fig7 = figures.similarity_figure(rng.uniform(-1, 1, (16, 16)), rng.uniform(-1, 1, (16, 64)),
                                   rng.uniform(size=(16, 64)) > 0.7,
                                   [p["sentence"] for p in predictions[:16]],
                                   [p["video_id"] for p in predictions[:16]], "Fig. 7")
  fig8 = figures.interval_figure(*breakdown.interval_distribution(predictions), "Fig. 8")
  return {"fig7": (figures.png_bytes(fig7), "Fig. 7"), "fig8": (figures.png_bytes(fig8), "")}


def _time_page(driver, path):
  driver.get("file://" + path)
  browser.wait_for(driver, "document.body.dataset.ready === '1'", timeout=120)
  first_rows = float(driver.execute_script("return document.body.dataset.renderMs"))
  resort = driver.execute_script("""
      const sort = document.getElementById('sort'), t = performance.now();
      sort.value = 'iou-asc'; sort.dispatchEvent(new Event('change'));
      return performance.now() - t;""")
  rows_500 = driver.execute_script("""
      const size = document.getElementById('page-size'), t = performance.now();
      size.value = '500'; size.dispatchEvent(new Event('change'));
      return performance.now() - t;""")
  errors = browser.console_errors(driver)
  if errors:
    raise RuntimeError(f"console errors: {errors}")
  return first_rows, resort, rows_500


def main(argv):
  del argv
  if browser.missing():
    raise SystemExit(f"report_size: {browser.missing()}")
  predictions = synthetic_predictions(_QUERIES.value)
  table = metrics.rank_n_at_m([p["segments"] for p in predictions],
                              [p["gt"] for p in predictions], (1, 5), (0.3, 0.5, 0.7))
  table.update(num_queries=len(predictions))
  config = tan_activitynet.get_config("sscs=ss")
  path = _KEEP.value or os.path.join(tempfile.mkdtemp(), "report.html")
  started = time.perf_counter()
  html.write_report(path, predictions, table=table, config=config, images=_images(predictions),
                    title="2D-TAN on ActivityNet Captions (synthetic predictions)")
  written = time.perf_counter() - started
  size = os.path.getsize(path)
  print(f"{len(predictions):,} queries: written in {written:.2f} s (with the plots and "
        f"figures), {size / 2**20:.2f} MiB")
  with browser.chromium() as driver:
    for load in range(_LOADS.value):
      first_rows, resort, rows_500 = _time_page(driver, path)
      print(f"load {load + 1}: first 50 rows drawn {first_rows:.0f} ms after navigation "
            f"start; re-sort all worst first {resort:.0f} ms; 500 rows {rows_500:.0f} ms")
  if not _KEEP.value:
    os.remove(path)


if __name__ == "__main__":
  app.run(main)
