"""The input pipeline: a data_prep output directory -> batches of queries (`tf.data`).

A record holds one video and all its queries (`example.py`). Work that depends only on the
video runs once per record: parsing, L2 normalisation, resampling. Each record then expands
into one element per query; the queries of a video share its feature tensor (no copy) until
batching. The targets (IoU map, LGI attention mask) are computed per batch, where their few
dozen small ops cost least.

Training order. The serialized videos (compact: T rows in the storage dtype) are shuffled
in a buffer of about `shuffle_buffer` queries' worth of videos, and each video's queries are
permuted. The queries are then interleaved round-robin from `batch_size` videos at a time:
two queries of one video are `batch_size` elements apart, so a batch never holds two queries
of the same video (which the Sscs objectives would count as each other's negatives), and
only `batch_size` resampled videos (256 x D floats each) are in memory, where a
query-level shuffle buffer would hold thousands. With the same seed two runs give the same
batches; `seed=None` trades that for speed.

Sharding (`input_context`): by file when there are at least as many files as input
pipelines, so each pipeline reads only its own files; otherwise by record, every pipeline
reading all files and keeping every n-th video. Either way each video (and so each query)
goes to exactly one pipeline. `batch_size` and `eval_batch_size` are global batch sizes;
a pipeline yields `input_context.get_per_replica_batch_size(...)` queries per batch.
"""

import contextlib
import math

import tensorflow as tf

from sscs_tf.data import example, preprocess, protocol
from sscs_tf.data.meta import load_meta, split_counts, split_files

AUTOTUNE = tf.data.AUTOTUNE
SAMPLINGS = preprocess.SAMPLINGS


_BAD_TIMES = "not positive finite seconds"


class DataError(ValueError):
  """A record holds values no run can use; names the data folder and the video."""


@contextlib.contextmanager
def reading_records(data_dir: str):
  """Turns a record check failing inside tf.data (an InvalidArgumentError deep in a
  step) into a DataError naming the video."""
  try:
    yield
  except tf.errors.InvalidArgumentError as error:
    if _BAD_TIMES not in error.message:
      raise
    detail = next(line for line in error.message.splitlines() if _BAD_TIMES in line)
    detail = detail.split("assertion failed:", 1)[-1].strip()
    raise DataError(f"{data_dir}: {detail}; convert the data again with data_prep (which "
                    "refuses such annotations).") from None


def checked_batches(dataset, data_dir: str):
  """Iterates `dataset` under `reading_records(data_dir)`."""
  with reading_records(data_dir):
    yield from dataset


def _checked_times(video):
  """The video's duration, once it and the query times are checked finite (and the
  duration positive): a NaN here would only surface later as a NaN loss."""
  finite = (tf.math.is_finite(video["duration"]) & (video["duration"] > 0)
            & tf.reduce_all(tf.math.is_finite(video["starts"]))
            & tf.reduce_all(tf.math.is_finite(video["ends"])))
  check = tf.debugging.Assert(finite, ["video", video["video_id"], "has duration",
                                       video["duration"], "or query times", _BAD_TIMES])
  with tf.control_dependencies([check]):
    return tf.identity(video["duration"])


def _read_records(files, training, input_context, seed, deterministic):
  """Serialized videos of this input pipeline's shard, files interleaved."""
  num_pipelines = input_context.num_input_pipelines if input_context else 1
  pipeline_id = input_context.input_pipeline_id if input_context else 0
  by_file = len(files) >= num_pipelines
  if by_file:
    files = files[pipeline_id::num_pipelines]
  ds = tf.data.Dataset.from_tensor_slices(files)
  # Record sharding needs every pipeline to read the files in the same order: no shuffle.
  if training and by_file:
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
  ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                     num_parallel_calls=AUTOTUNE, deterministic=deterministic)
  if not by_file:
    ds = ds.shard(num_pipelines, pipeline_id)
  return ds


def _video_fn(config, meta, resample: bool):
  """Parses a record into `(per-query dict [Q, ...], per-video dict)`.

  With `random_bits` (training), the queries come out in a random order.
  """

  def fn(serialized, random_bits=None):
    video = example.parse_video(serialized, meta["feature_dim"], meta["feature_dtype"])
    keep, starts, ends = protocol.apply(video["starts"], video["ends"], video["duration"],
                                        video["protocol_flags"], config.protocol)
    features = video["features"]
    if config.normalize_rows:
      features = preprocess.l2_normalize_rows(features)
    word_ids = video["word_ids"]
    if config.max_query_length > 0:
      word_ids = word_ids[:, :config.max_query_length]
    queries = {
        "query_id": video["query_ids"], "sentence": video["sentences"],
        "start": starts, "end": ends,
        # [Q, 1, (words)]: each query's ids stay a ragged row through tf.data's per-query
        # stages, so plain `batch` applies (`padded_batch` is single-threaded and slower).
        "word_ids": tf.expand_dims(word_ids, 1),
        "num_words": tf.cast(word_ids.row_lengths(), tf.int32),
    }
    # The protocol's queries only (a video may be left with none).
    queries = {k: tf.ragged.boolean_mask(v, keep) if isinstance(v, tf.RaggedTensor)
               else tf.boolean_mask(v, keep) for k, v in queries.items()}
    if random_bits is not None:
      order = tf.argsort(tf.random.stateless_uniform(
          tf.shape(queries["start"]), seed=tf.stack([random_bits, 0])))
      queries = {k: tf.gather(v, order) for k, v in queries.items()}
    shared = {"video_id": video["video_id"], "duration": _checked_times(video),
              "num_rows": tf.shape(features)[0]}
    if resample:  # else LGI's training picks, per query (_pick_fn)
      features, shared["feature_mask"] = preprocess.resample(features, config.sampling,
                                                             config.num_segments)
    shared["features"] = features
    return queries, shared

  return fn


def _expand(queries, shared):
  """One element per query; `shared` is repeated by reference, not copied."""
  return tf.data.Dataset.zip(tf.data.Dataset.from_tensor_slices(queries),
                             tf.data.Dataset.from_tensors(shared).repeat())


def _pick_fn(num_segments):
  """Training-time LGI sampling: a fresh offset for every query."""

  def fn(random_bits, element):
    queries, shared = element
    # A whole number of rows, uniform over the reference's choices.
    offset = preprocess.draw_pick_offset(random_bits, shared["num_rows"], num_segments)
    shared = dict(shared)
    shared["features"], shared["feature_mask"] = preprocess.pick_segments(
        shared["features"], num_segments, offset)
    return queries, shared

  return fn


def _batch_fn(config, targets):
  """Merges a batch's two parts and adds the model's targets, computed for the whole batch."""

  def fn(queries, shared):
    batch = {**queries, **shared}
    batch["word_ids"] = queries["word_ids"].values.to_tensor(default_value=0)  # [B, L]
    del batch["num_rows"]  # the video's rows before resampling, for the LGI offsets only
    if targets is not None:
      added = targets(batch, config)
      replaced = sorted(set(added) & set(batch))
      if replaced:  # found while tracing, so make_dataset fails rather than mislabels
        raise ValueError(f"The model's targets {replaced} have the names of batch fields; "
                         "give them names of their own.")
      batch.update(added)
    return batch

  return fn


def _plain(fn):
  """`fn` traced as written: the pipeline's functions use tf.cond / tf.where, not Python
  control flow on tensors, and AutoGraph's conversion of them costs seconds at each start."""
  return tf.autograph.experimental.do_not_convert(fn)


def _random(seed):
  """int64 random numbers; new ones on each pass when the trainer repeats the dataset."""
  return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)


def _training_queries(records, video_fn, buffer_videos, batch_size, repeat, seeds, parallel,
                      deterministic):
  """Shuffled videos -> their queries in a random order, `batch_size` videos round-robin."""
  ds = records.shuffle(buffer_videos, seed=seeds[0])
  if repeat:
    ds = ds.repeat()
  ds = tf.data.Dataset.zip(ds, _random(seeds[1]))
  ds = ds.map(video_fn, num_parallel_calls=parallel, deterministic=deterministic)
  return ds.interleave(_plain(_expand), cycle_length=batch_size, block_length=1)


def _eval_queries(records, video_fn, repeat, parallel):
  """Videos in file order -> their queries in stored order."""
  ds = records.repeat() if repeat else records
  ds = ds.map(video_fn, num_parallel_calls=parallel, deterministic=True)
  return ds.flat_map(_plain(_expand))


def _validate(config):
  if config.sampling not in SAMPLINGS:
    raise ValueError(f"data.sampling must be one of {SAMPLINGS}, got {config.sampling!r}.")
  for field in ("num_segments", "batch_size", "eval_batch_size", "shuffle_buffer"):
    if config[field] <= 0:
      raise ValueError(f"data.{field} must be positive, got {config[field]}.")
  if config.num_parallel_calls == 0:
    raise ValueError("data.num_parallel_calls must be positive, or -1 to let tf.data tune "
                     "it; got 0.")
  for field in ("map_size", "max_query_length"):
    if config[field] < 0:
      raise ValueError(f"data.{field} must be >= 0, got {config[field]}.")
  if not config.data_dir:
    raise ValueError("data.data_dir is empty: set it to a data_prep output directory.")
  protocol.check_protocol(config.protocol)


def make_dataset(data_config, split: str, input_context=None, *, targets=None, training=None,
                 seed=None, repeat: bool = False) -> tf.data.Dataset:
  """Batched queries of one split.

  Args:
    data_config: `configs.default.get_data_config()`-like ConfigDict.
    split: a split of meta.json.
    input_context: `tf.distribute.InputContext` (from `distribute_datasets_from_function`).
    targets: `(batch, data_config) -> dict` of the tensors a model's loss needs beside the
      batch (its baseline's `targets`: 2D-TAN's `iou_map`, LGI's `gt_segment_mask`), added
      per batch; None adds nothing. `models.contract.make_dataset` passes the config's.
    training: shuffle, random LGI offsets, drop the last partial batch; defaults to
      `split == data_config.train_split`. Evaluation keeps every query, in file order; its
      last batch is smaller (not padded).
    seed: makes the shuffles and offsets reproducible (same seed, same batches).
    repeat: repeat forever, reshuffling each epoch; batches then span epoch boundaries.

  Returns:
    dict of batched tensors, B queries: `video_id, query_id, sentence` string `[B]`;
    `duration, start, end` float32 `[B]` (seconds, the ground truth of data.protocol:
    clipped for "tan", as annotated for "lgi"); `word_ids` int32 `[B, L]` (0-padded to
    the longest in the batch); `num_words` int32 `[B]`; `features` float32 `[B, S, D]`;
    `feature_mask` float32 `[B, S]`; and what `targets` adds. S = num_segments.
  """
  _validate(data_config)
  training = split == data_config.train_split if training is None else training
  meta = load_meta(data_config.data_dir)
  files = split_files(data_config.data_dir, meta, split)
  deterministic = seed is not None or not training
  parallel = AUTOTUNE if data_config.num_parallel_calls < 0 else data_config.num_parallel_calls
  batch_size = data_config.batch_size if training else data_config.eval_batch_size
  if input_context is not None:
    batch_size = input_context.get_per_replica_batch_size(batch_size)
  seeds = [None] * 4 if seed is None else [seed + i for i in range(4)]

  ds = _read_records(files, training, input_context, seeds[0], deterministic)
  pick_per_query = training and data_config.sampling == "pick"
  video_fn = _plain(_video_fn(data_config, meta, resample=not pick_per_query))
  queries, videos = split_counts(meta, split, data_config.protocol)
  if training:
    per_video = max(1.0, queries / max(1, videos))
    ds = _training_queries(ds, video_fn, math.ceil(data_config.shuffle_buffer / per_video),
                           batch_size, repeat, seeds[1:3], parallel, deterministic)
  else:
    ds = _eval_queries(ds, video_fn, repeat, parallel)
  if pick_per_query:
    ds = tf.data.Dataset.zip(_random(seeds[3]), ds).map(
        _plain(_pick_fn(data_config.num_segments)), num_parallel_calls=parallel,
        deterministic=deterministic)
  ds = ds.batch(batch_size, drop_remainder=training)
  ds = ds.map(_plain(_batch_fn(data_config, targets)), num_parallel_calls=parallel,
              deterministic=deterministic).prefetch(AUTOTUNE)
  options = tf.data.Options()
  options.deterministic = deterministic
  if input_context is not None:
    # Already sharded here; a strategy must not shard it again.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
  return ds.with_options(options)
