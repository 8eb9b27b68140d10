r"""Time of the full Rank n@m evaluation on random score maps of each dataset's size.

  python -m benchmarks.eval_speed
  python -m benchmarks.eval_speed --datasets=charades_sta --repeats=10 --batch_size=64

For each dataset it builds random probability maps (upper triangle, the lower one 0 as the
model outputs it), durations and ground truth of a test split's size, then times
`RankEvaluator.update` over batches of --batch_size plus `result()`: the work an
evaluation does after the model. Prints the best and the median of --repeats runs in ms.
"""

import time

from absl import app
from absl import flags
import numpy as np

from sscs_tf.scoring import metrics

# name: (N, test queries, NMS threshold of the conv model, IoU thresholds m)
DATASETS = {
    "charades_sta": (16, 3720, 0.5, (0.5, 0.7)),
    "activitynet_captions": (64, 17031, 0.5, (0.3, 0.5, 0.7)),
    "tacos": (128, 4001, 0.5, (0.1, 0.3, 0.5, 0.7)),
}

_DATASETS = flags.DEFINE_list("datasets", list(DATASETS), f"Any of {list(DATASETS)}.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Queries per update (data.eval_batch_size).")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed runs per dataset.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the random maps.")


def _random_split(rng, num_clips, num_queries):
  maps = rng.random((num_queries, num_clips, num_clips), dtype=np.float32)
  maps *= np.triu(np.ones((num_clips, num_clips), np.float32))
  durations = rng.uniform(10.0, 200.0, num_queries)
  starts = rng.uniform(0.0, 0.8, num_queries) * durations
  ends = np.minimum(starts + rng.uniform(0.02, 0.5, num_queries) * durations, durations)
  return maps, durations, np.stack([starts, ends], axis=1)


def _evaluate(maps, durations, gts, nms_thresh, thresholds, batch_size):
  evaluator = metrics.RankEvaluator(nms_thresh, thresholds)
  for i in range(0, len(maps), batch_size):
    evaluator.update(maps[i:i + batch_size], durations[i:i + batch_size], gts[i:i + batch_size])
  return evaluator.result()


def main(argv):
  del argv
  rng = np.random.default_rng(_SEED.value)
  for name in _DATASETS.value:
    if name not in DATASETS:
      raise app.UsageError(f"--datasets: unknown {name!r}; known: {list(DATASETS)}")
    num_clips, num_queries, nms_thresh, thresholds = DATASETS[name]
    maps, durations, gts = _random_split(rng, num_clips, num_queries)
    times_ms = []
    for _ in range(_REPEATS.value):
      start = time.perf_counter()
      table = _evaluate(maps, durations, gts, nms_thresh, thresholds, _BATCH_SIZE.value)
      times_ms.append((time.perf_counter() - start) * 1e3)
    print(f"{name}: {num_queries} queries, N={num_clips}, batch {_BATCH_SIZE.value}: "
          f"best {min(times_ms):.0f} ms, median {np.median(times_ms):.0f} ms "
          f"(Rank1@0.5 {table['Rank1@0.5']:.3f} on random maps)")


if __name__ == "__main__":
  app.run(main)
