r"""Throughput of the input pipeline, in queries per second.

Without --data_dir it writes a Charades-STA-sized dataset of random features (6,672 videos:
5,336 train / 1,336 test, T uniform in 50..100 rows, D = 1024, 1-4 queries per video, about
2.4 on average) to a temporary directory, or to --work_dir to keep it for later runs. With
--data_dir it reads that data_prep output directory (a demo or real dataset) instead.

  python -m benchmarks.input_pipeline --feature_dtype=float32
  python -m benchmarks.input_pipeline --data_dir=/path/to/prepared --split=train

It times --batches batches after --warmup batches (which fill the shuffle buffers) and prints
queries/s, the CPU time the process used (per second and per query) and its peak memory.
"""

import json
import os
import resource
import shutil
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from configs.default import get_data_config
from sscs_tf import models
from sscs_tf.data import example
from sscs_tf.data import pipeline
from sscs_tf.data import meta as data_meta

_DATA_DIR = flags.DEFINE_string("data_dir", "", "A data_prep output directory to read; "
                                "empty writes Charades-sized random data.")
_WORK_DIR = flags.DEFINE_string("work_dir", "", "Where to write (and reuse) the random data; "
                                "empty uses a temporary directory, removed at the end.")
_SPLIT = flags.DEFINE_string("split", "train", "Split to iterate.")
_TRAINING = flags.DEFINE_bool("training", True, "Training mode (shuffle, drop remainder).")
_FEATURE_DTYPE = flags.DEFINE_enum("feature_dtype", "float32", example.FEATURE_DTYPES,
                                   "Storage dtype of the random data.")
_NUM_VIDEOS = flags.DEFINE_integer("num_videos", 6672, "Videos of the random data (80% train).")
_FEATURE_DIM = flags.DEFINE_integer("feature_dim", 1024, "D of the random data.")
_NUM_SHARDS = flags.DEFINE_integer("num_shards", 8, "TFRecord files per random split.")
_SAMPLING = flags.DEFINE_enum("sampling", "average", pipeline.SAMPLINGS, "data.sampling")
_NUM_SEGMENTS = flags.DEFINE_integer("num_segments", 256, "data.num_segments")
_MAP_SIZE = flags.DEFINE_integer("map_size", 16, "data.map_size")
_MODEL = flags.DEFINE_string("model", "", "The baseline whose targets the batches carry "
                             "(models.BASELINES); default: tan with a map size, else lgi.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "data.batch_size (and eval_batch_size)")
_SHUFFLE_BUFFER = flags.DEFINE_integer("shuffle_buffer", 8192, "data.shuffle_buffer")
_WARMUP = flags.DEFINE_integer("warmup", 50, "Batches before timing starts.")
_BATCHES = flags.DEFINE_integer("batches", 300, "Batches timed.")
_SEED = flags.DEFINE_integer("seed", 0, "Pipeline seed; -1 for none (non-deterministic).")


def _random_split(rng, split, num_videos, dim, dtype):
  """Serialized random videos and their query count."""
  records, num_queries = [], 0
  for v in range(num_videos):
    num_clips = int(rng.integers(50, 101))
    duration = float(rng.uniform(12.0, 40.0))
    queries = []
    for q in range(int(rng.choice([1, 2, 3, 4], p=[0.2, 0.35, 0.3, 0.15]))):
      start = float(rng.uniform(0.0, duration * 0.8))
      end = float(rng.uniform(start + 0.5, duration))
      words = rng.integers(3, 1100, size=int(rng.integers(3, 15))).tolist()
      queries.append(example.QueryRecord(f"{split}:{v}:{q}", "a person does something",
                                         start, end, words))
    features = rng.standard_normal((num_clips, dim), dtype=np.float32)
    records.append(example.encode_video(f"{split}_{v:05d}", duration, features, queries, dtype))
    num_queries += len(queries)
  return records, num_queries


def write_random_dataset(out_dir, num_videos, dim, dtype, num_shards, seed=0):
  """Charades-sized random data in the data_prep layout: shards + meta.json."""
  rng = np.random.default_rng(seed)
  num_train = int(round(num_videos * 0.8))
  splits = {}
  for split, count in (("train", num_train), ("test", num_videos - num_train)):
    records, num_queries = _random_split(rng, split, count, dim, dtype)
    files = [f"{split}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
    for i, name in enumerate(files):
      with tf.io.TFRecordWriter(os.path.join(out_dir, name)) as writer:
        for record in records[i::num_shards]:
          writer.write(record)
    splits[split] = {"files": files, "videos": count, "queries": num_queries, "skipped": {}}
  meta = {"dataset": "random_charades_sized", "feature_dim": dim, "feature_dtype": dtype,
          "vocab_size": 1100, "vocab_file": "vocab.txt", "embeddings_file": None,
          "splits": splits}
  with open(os.path.join(out_dir, "meta.json"), "w") as f:
    json.dump(meta, f, indent=2)


def _data_config(data_dir):
  config = get_data_config()
  config.data_dir = data_dir
  config.sampling = _SAMPLING.value
  config.num_segments = _NUM_SEGMENTS.value
  config.map_size = _MAP_SIZE.value
  config.batch_size = config.eval_batch_size = _BATCH_SIZE.value
  config.shuffle_buffer = _SHUFFLE_BUFFER.value
  return config


def measure(config, split, training, seed, warmup, batches):
  """(queries/s, CPU seconds per second) over `batches` batches after `warmup`.

  The CPU time (all threads of this process) per query is the figure that other processes
  on a shared machine do not change: 2 cores can at best deliver 2 / (CPU s per query).
  """
  targets = models.get(_MODEL.value or ("tan" if config.map_size > 0 else "lgi")).targets
  ds = pipeline.make_dataset(config, split, training=training, seed=seed, repeat=True,
                             targets=targets)
  iterator = iter(ds)
  for _ in range(warmup):
    next(iterator)
  queries = 0
  cpu0, wall0 = time.process_time(), time.perf_counter()
  for _ in range(batches):
    queries += int(next(iterator)["start"].shape[0])
  wall = time.perf_counter() - wall0
  return queries / wall, (time.process_time() - cpu0) / wall


def _prepared_dir():
  """(directory to read, directory to remove afterwards or None)."""
  if _DATA_DIR.value:
    return _DATA_DIR.value, None
  out_dir = _WORK_DIR.value or tempfile.mkdtemp(prefix="sscs_bench_")
  os.makedirs(out_dir, exist_ok=True)
  meta_path = os.path.join(out_dir, "meta.json")
  reuse = False
  if os.path.exists(meta_path):
    with open(meta_path) as f:
      meta = json.load(f)
    reuse = (meta["feature_dtype"] == _FEATURE_DTYPE.value
             and meta["feature_dim"] == _FEATURE_DIM.value
             and sum(s["videos"] for s in meta["splits"].values()) == _NUM_VIDEOS.value)
  if not reuse:
    start = time.perf_counter()
    write_random_dataset(out_dir, _NUM_VIDEOS.value, _FEATURE_DIM.value, _FEATURE_DTYPE.value,
                         _NUM_SHARDS.value)
    print(f"wrote {out_dir} in {time.perf_counter() - start:.0f} s")
  return out_dir, None if _WORK_DIR.value else out_dir


def main(argv):
  del argv
  data_dir, cleanup = _prepared_dir()
  try:
    meta = data_meta.load_meta(data_dir)
    config = _data_config(data_dir)
    stats = meta["splits"][_SPLIT.value]
    print(f"data {data_dir}: {meta['dataset']}, D={meta['feature_dim']} "
          f"{meta['feature_dtype']}, split {_SPLIT.value}: {stats['videos']} videos, "
          f"{stats['queries']} queries; sampling {config.sampling} to {config.num_segments}, "
          f"map_size {config.map_size}, batch {config.batch_size}, "
          f"training={_TRAINING.value}; {os.cpu_count()} CPUs")
    seed = None if _SEED.value < 0 else _SEED.value
    rate, cores = measure(config, _SPLIT.value, _TRAINING.value, seed, _WARMUP.value,
                          _BATCHES.value)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{rate:.0f} queries/s ({rate / config.batch_size:.1f} batches/s), using "
          f"{cores:.2f} CPU s per s = {cores / rate * 1e6:.0f} CPU us per query; "
          f"peak RSS {peak_gib:.1f} GiB")
  finally:
    if cleanup:
      shutil.rmtree(cleanup)


if __name__ == "__main__":
  app.run(main)
