"""The input pipeline on tiny TFRecord datasets written here with `example.encode_video`."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from configs.default import get_data_config
from sscs_tf.data import example
from sscs_tf.data import pipeline
from sscs_tf.data import meta as data_meta
from sscs_tf.data import preprocess
from sscs_tf.data import protocol
from sscs_tf.models import lgi, tan

DIM = 8
# Per split: (videos, shard files). One test file makes the sharding fall back to records.
SPLITS = {"train": (7, 3), "test": (5, 1)}


def _write_dataset(root, dtype, seed, splits_spec=None, queries_per_video=(1, 4)):
  """Random videos (T from 3 to 40) in shards + meta.json; returns the truth per query."""
  rng = np.random.default_rng(seed)
  os.makedirs(root)
  truth, splits = {}, {}
  for split, (num_videos, num_files) in (splits_spec or SPLITS).items():
    records, num_queries = [], 0
    for v in range(num_videos):
      video_id = f"{split}_video{v}"
      duration = float(rng.uniform(10.0, 40.0))
      features = rng.normal(size=(int(rng.integers(3, 41)), DIM)).astype(np.float32)
      queries = []
      for q in range(int(rng.integers(queries_per_video[0], queries_per_video[1] + 1))):
        start = float(rng.uniform(0.0, duration - 2.0))
        words = rng.integers(3, 60, size=int(rng.integers(1, 9))).tolist()
        queries.append(example.QueryRecord(f"{video_id}:{q}", f"{video_id} sentence {q}",
                                           start, float(rng.uniform(start + 1.0, duration)),
                                           words))
        truth[f"{video_id}:{q}"] = dict(
            video_id=video_id, duration=duration, query=queries[-1],
            # What the reader gets back: the features rounded to the storage dtype.
            features=features.astype(dtype).astype(np.float32))
      records.append(example.encode_video(video_id, duration, features, queries, dtype))
      num_queries += len(queries)
    files = [f"{split}-{i:05d}-of-{num_files:05d}.tfrecord" for i in range(num_files)]
    for i, name in enumerate(files):
      with tf.io.TFRecordWriter(os.path.join(root, name)) as writer:
        for record in records[i::num_files]:
          writer.write(record)
    splits[split] = {"files": files, "videos": num_videos, "queries": num_queries,
                     "skipped": {}}
  meta = {"dataset": "tiny", "feature_dim": DIM, "feature_dtype": dtype, "vocab_size": 60,
          "vocab_file": "vocab.txt", "embeddings_file": None, "splits": splits}
  with open(os.path.join(root, "meta.json"), "w") as f:
    json.dump(meta, f)
  return truth


@pytest.fixture(scope="module", params=["float32", "float16"])
def dataset(request, tmp_path_factory):
  root = str(tmp_path_factory.mktemp("data") / request.param)
  return root, _write_dataset(root, request.param, seed=len(request.param))


@pytest.fixture(scope="module")
def dataset32(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("data") / "float32")
  return root, _write_dataset(root, "float32", seed=1)


def _config(data_dir, **overrides):
  config = get_data_config()
  config.data_dir = data_dir
  config.map_size = 4
  config.num_segments = 16
  config.batch_size = 4
  config.eval_batch_size = 3
  config.update(overrides)
  return config


def _targets(batch, config):
  """The targets of the configs' baselines: 2D-TAN's IoU map for a data config with a map
  size, LGI's attention target for one that picks segments."""
  out = {}
  if config.map_size > 0:
    out.update(tan.targets(batch, config))
  if config.sampling == "pick":
    out.update(lgi.targets(batch, config))
  return out


def _dataset(config, split, *args, **kwargs):
  return pipeline.make_dataset(config, split, *args, targets=_targets, **kwargs)


def _queries(ds):
  """Batches -> list of per-query dicts of numpy values."""
  out = []
  for batch in ds:
    batch = {k: v.numpy() for k, v in batch.items()}
    for i in range(len(batch["query_id"])):
      out.append({k: v[i] for k, v in batch.items()})
  return out


def _split_query_ids(truth, split):
  return sorted(k for k in truth if k.startswith(split + "_"))


def _check_pairing(query, truth):
  """The query's own fields, paired with its own video."""
  want = truth[query["query_id"].decode()]
  record = want["query"]
  assert query["video_id"].decode() == want["video_id"]
  assert query["sentence"].decode() == record.sentence
  np.testing.assert_allclose([query["start"], query["end"], query["duration"]],
                             [record.start, record.end, want["duration"]], rtol=1e-6)
  count = len(record.word_ids)
  assert query["num_words"] == count
  np.testing.assert_array_equal(query["word_ids"][:count], record.word_ids)
  assert not query["word_ids"][count:].any()


def test_eval_yields_every_query_once_with_its_own_video(dataset):
  root, truth = dataset
  config = _config(root)
  queries = _queries(_dataset(config, "test"))
  assert sorted(q["query_id"].decode() for q in queries) == _split_query_ids(truth, "test")
  for query in queries:
    _check_pairing(query, truth)
    want = truth[query["query_id"].decode()]
    normalized = preprocess.l2_normalize_rows(want["features"])
    np.testing.assert_allclose(query["features"],
                               preprocess.average_to_fixed_length(normalized, 16).numpy(),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(query["feature_mask"], np.ones(16))
    np.testing.assert_array_equal(
        query["iou_map"], preprocess.iou_map(want["duration"], want["query"].start,
                                             want["query"].end, 4).numpy())


def test_keys_shapes_and_dtypes(dataset32):
  root, truth = dataset32
  batches = list(_dataset(_config(root), "test"))
  num_queries = len(_split_query_ids(truth, "test"))
  # Evaluation keeps the remainder as a smaller last batch.
  assert [len(b["start"]) for b in batches] == (
      [3] * (num_queries // 3) + ([num_queries % 3] if num_queries % 3 else []))
  batch = batches[0]
  assert set(batch) == {"video_id", "query_id", "sentence", "duration", "start", "end",
                        "word_ids", "num_words", "features", "feature_mask", "iou_map"}
  dtypes = {k: v.dtype for k, v in batch.items()}
  assert dtypes["word_ids"] == dtypes["num_words"] == tf.int32
  for key in ("video_id", "query_id", "sentence"):
    assert dtypes[key] == tf.string
  for key in ("duration", "start", "end", "features", "feature_mask", "iou_map"):
    assert dtypes[key] == tf.float32
  assert batch["features"].shape == (3, 16, DIM)
  assert batch["feature_mask"].shape == (3, 16)
  assert batch["iou_map"].shape == (3, 4, 4)
  # Padded to the longest sentence of this batch, not of a video or of the dataset.
  assert batch["word_ids"].shape == (3, max(batch["num_words"].numpy()))
  no_map = next(iter(_dataset(_config(root, map_size=0), "test")))
  assert "iou_map" not in no_map


def test_training_batches_are_full_shuffled_and_seeded(dataset32):
  root, truth = dataset32
  config = _config(root)

  def epoch(seed):
    return [b["query_id"].numpy().tolist() for b in _dataset(config, "train",
                                                                          seed=seed)]

  first, again, other = epoch(3), epoch(3), epoch(4)
  num_queries = len(_split_query_ids(truth, "train"))
  assert len(first) == num_queries // 4 and all(len(b) == 4 for b in first)
  assert first == again
  assert first != other
  flat = [q.decode() for batch in first for q in batch]
  assert len(set(flat)) == len(flat)
  assert flat != sorted(flat)
  for query in _queries(_dataset(config, "train", seed=3)):
    _check_pairing(query, truth)


def test_training_batches_hold_distinct_videos_and_permute_queries(tmp_path):
  truth = _write_dataset(str(tmp_path / "d"), "float32", seed=2,
                         splits_spec={"train": (20, 2)}, queries_per_video=(3, 3))
  ds = _dataset(_config(str(tmp_path / "d")), "train", seed=0)
  batches = [[truth[q.decode()]["video_id"] for q in b["query_id"].numpy()] for b in ds]
  assert len(batches) == 15
  # Queries of one video are 4 (the batch size) apart in the stream, until the last videos
  # drain the round-robin: at most 4 videos x 3 queries = 3 batches at the end.
  for videos in batches[:-3]:
    assert len(set(videos)) == 4, videos
  # Each video's queries come out in a random order, not the stored one.
  order = {}
  for query_id in (q.decode() for b in _dataset(
      _config(str(tmp_path / "d")), "train", seed=0) for q in b["query_id"].numpy()):
    video, index = query_id.rsplit(":", 1)
    order.setdefault(video, []).append(int(index))
  assert any(indices != sorted(indices) for indices in order.values())


def test_training_repeat_crosses_epochs(dataset32):
  root, truth = dataset32
  num_queries = len(_split_query_ids(truth, "train"))
  ds = _dataset(_config(root), "train", seed=0, repeat=True)
  batches = [b["query_id"].numpy() for b in ds.take(2 * num_queries // 4 + 1)]
  assert len(batches) == 2 * num_queries // 4 + 1


@pytest.mark.parametrize("split", ["train", "test"])  # by file (3 files), by record (1 file)
def test_sharding_covers_every_query_once(dataset32, split):
  root, truth = dataset32
  seen = []
  for pipeline_id in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id,
                                         num_replicas_in_sync=2)
    ds = _dataset(_config(root, eval_batch_size=4), split, context,
                               training=False)
    batches = list(ds)
    assert max(len(b["start"]) for b in batches) == 2  # the per-replica share of 4
    seen.append([q.decode() for b in batches for q in b["query_id"].numpy()])
  assert seen[0] and seen[1]
  assert sorted(seen[0] + seen[1]) == _split_query_ids(truth, split)


def test_max_query_length_truncates(dataset32):
  root, truth = dataset32
  for query in _queries(_dataset(_config(root, max_query_length=3), "test")):
    words = truth[query["query_id"].decode()]["query"].word_ids
    assert query["num_words"] == min(3, len(words))
    assert query["word_ids"].shape[0] <= 3
    np.testing.assert_array_equal(query["word_ids"][:query["num_words"]], words[:3])


def _gt_mask_python(start, end, duration, num_valid, size):
  first = min(round(start / duration * num_valid), num_valid - 1)
  last = max(round(end / duration * num_valid), first + 1)
  mask = np.zeros(size, np.float32)
  mask[first:last + 1] = 1.0
  return mask


def test_pick_eval_takes_offset_zero(dataset32):
  root, truth = dataset32
  queries = _queries(_dataset(_config(root, sampling="pick", map_size=0), "test"))
  assert len(queries) == len(_split_query_ids(truth, "test"))
  for query in queries:
    _check_pairing(query, truth)
    want = truth[query["query_id"].decode()]
    normalized = preprocess.l2_normalize_rows(want["features"])
    picked, mask = preprocess.pick_segments(normalized, 16, 0)
    np.testing.assert_array_equal(query["features"], picked.numpy())
    np.testing.assert_array_equal(query["feature_mask"], mask.numpy())
    num_rows = len(want["features"])
    assert query["feature_mask"].sum() == min(num_rows, 16)
    record = want["query"]
    np.testing.assert_array_equal(
        query["gt_segment_mask"],
        _gt_mask_python(np.float32(record.start), np.float32(record.end),
                        np.float32(want["duration"]), min(num_rows, 16), 16))


def test_pick_training_draws_an_offset_per_query(dataset32):
  root, truth = dataset32
  config = _config(root, sampling="pick", batch_size=2)
  queries = _queries(_dataset(config, "train", seed=5))
  first_rows = []
  for query in queries:
    want = truth[query["query_id"].decode()]
    rows = preprocess.l2_normalize_rows(want["features"]).numpy()
    num_rows, count = len(rows), int(query["feature_mask"].sum())
    assert not query["features"][count:].any()
    picked = [int(np.flatnonzero(np.abs(rows - r).max(1) < 1e-7)[0])
              for r in query["features"][:count]]
    if num_rows <= 16:
      assert picked == list(range(num_rows))
      continue
    # The reference's offsets: whole rows below stride - 0.5, always 16 rows picked.
    offset = picked[0]
    assert count == 16 and offset < int(preprocess.num_pick_offsets(num_rows, 16))
    np.testing.assert_array_equal(picked, preprocess.pick_segments(
        np.arange(num_rows, dtype=np.float32)[:, None], 16, offset)[0].numpy()[:, 0])
    first_rows.append(offset)
  # Some long videos start past row 0: the offset is drawn, not fixed at 0.
  assert len(first_rows) >= 3 and max(first_rows) > 0
  again = _queries(_dataset(config, "train", seed=5))
  np.testing.assert_array_equal([q["features"] for q in queries],
                                [q["features"] for q in again])


def test_helpers_and_clear_errors(dataset32, tmp_path):
  root, truth = dataset32
  meta = data_meta.load_meta(root)
  train_queries = len(_split_query_ids(truth, "train"))
  assert data_meta.steps_per_epoch(meta, "train", 4) == train_queries // 4
  assert data_meta.steps_per_epoch(meta, "train", 4, drop_remainder=False) == -(
      -train_queries // 4)
  with pytest.raises(FileNotFoundError, match="meta.json"):
    _dataset(_config(str(tmp_path)), "train")
  with pytest.raises(ValueError, match=r"'val'.*\['test', 'train'\]"):
    _dataset(_config(root), "val")
  with pytest.raises(ValueError, match="sampling"):
    _dataset(_config(root, sampling="nearest"), "train")
  for field, value in (("batch_size", 0), ("shuffle_buffer", 0), ("map_size", -1)):
    with pytest.raises(ValueError, match=rf"data\.{field} must be"):
      _dataset(_config(root, **{field: value}), "train")
  with pytest.raises(ValueError, match="data.num_parallel_calls must be positive, or -1"):
    _dataset(_config(root, num_parallel_calls=0), "train")
  broken = dict(meta)
  broken["splits"] = {"train": dict(meta["splits"]["train"], files=["absent.tfrecord"])}
  (tmp_path / "meta.json").write_text(json.dumps(broken))
  with pytest.raises(FileNotFoundError, match="absent.tfrecord"):
    _dataset(_config(str(tmp_path)), "train")
  del broken["splits"]["train"]["queries"]
  (tmp_path / "meta.json").write_text(json.dumps(broken))
  with pytest.raises(ValueError, match="'train' has no field 'queries'"):
    data_meta.load_meta(str(tmp_path))


def _write_protocol_dataset(root, format_version=2):
  """One video of 20 s with the annotation quirks the protocols treat differently."""
  os.makedirs(root)
  annotated = [(2.0, 5.0), (15.0, 24.0), (8.0, 7.0), (21.0, 23.0), (-1.0, 3.0)]
  queries = [example.QueryRecord(f"q{i}", f"sentence {i}", s, e, [3, 4],
                                 protocol.annotation_flags(s, e, 20.0))
             for i, (s, e) in enumerate(annotated)]
  features = np.arange(30 * DIM, dtype=np.float32).reshape(30, DIM)
  with tf.io.TFRecordWriter(os.path.join(root, "test-00000-of-00001.tfrecord")) as writer:
    writer.write(example.encode_video("v", 20.0, features, queries))
  split = {"files": ["test-00000-of-00001.tfrecord"], "videos": 1, "queries": 5, "skipped": {},
           "protocols": {"tan": {"queries": 3, "videos": 1, "notes": {}},
                         "lgi": {"queries": 5, "videos": 1, "notes": {}}}}
  meta = {"format_version": format_version, "dataset": "tiny", "feature_dim": DIM,
          "feature_dtype": "float32", "vocab_size": 60, "splits": {"test": split}}
  with open(os.path.join(root, "meta.json"), "w") as f:
    json.dump(meta, f)
  return annotated


@pytest.mark.parametrize("protocol_name", ["tan", "lgi"])
def test_each_protocol_reads_its_own_ground_truth(tmp_path, protocol_name):
  annotated = _write_protocol_dataset(str(tmp_path / "d"))
  config = _config(str(tmp_path / "d"), protocol=protocol_name, sampling="pick", map_size=0)
  queries = _queries(_dataset(config, "test"))
  got = [(q["query_id"].decode(), float(q["start"]), float(q["end"])) for q in queries]
  if protocol_name == "tan":  # drop start >= end and start >= duration; clip to [0, 20]
    expected = [("q0", 2.0, 5.0), ("q1", 15.0, 20.0), ("q4", 0.0, 3.0)]
  else:  # as annotated
    expected = [(f"q{i}", s, e) for i, (s, e) in enumerate(annotated)]
  assert got == expected
  meta = data_meta.load_meta(str(tmp_path / "d"))
  assert data_meta.steps_per_epoch(meta, "test", 2, protocol_name=protocol_name) == len(got) // 2
  # The attention target follows the protocol's times: n = min(30, 16) = 16 valid steps (for
  # q4 under "lgi" the reference's g[-1:3] is empty).
  for query, (_, start, end) in zip(queries, expected):
    np.testing.assert_array_equal(query["gt_segment_mask"],
                                  _gt_mask_python(start, end, 20.0, 16, 16))


def test_protocol_needs_a_format_that_holds_it(tmp_path):
  _write_protocol_dataset(str(tmp_path / "v1"), format_version=1)
  lgi = _config(str(tmp_path / "v1"), protocol="lgi")
  with pytest.raises(ValueError, match=r"format_version 1\) stores 2D-TAN's clipped"):
    _dataset(lgi, "test")
  _write_protocol_dataset(str(tmp_path / "v3"), format_version=3)
  with pytest.raises(ValueError, match="format_version 3; this version reads"):
    data_meta.load_meta(str(tmp_path / "v3"))
  meta = json.load(open(tmp_path / "v3" / "meta.json"))
  meta["format_version"] = 2
  del meta["splits"]["test"]["protocols"]["lgi"]
  (tmp_path / "v3" / "meta.json").write_text(json.dumps(meta))
  with pytest.raises(ValueError, match="'test' needs counts for the protocols"):
    data_meta.load_meta(str(tmp_path / "v3"))
  with pytest.raises(ValueError, match="data.protocol must be one of"):
    _dataset(_config(str(tmp_path / "v1"), protocol="clip"), "test")


def test_targets_that_would_replace_a_batch_field_are_refused(dataset):
  root, _ = dataset

  def clashing(batch, config):
    del config
    return {"start": batch["start"] * 0, "iou_map": tf.zeros([1])}

  with pytest.raises(ValueError, match=r"targets \['start'\] have the names of batch fields"):
    pipeline.make_dataset(_config(root), "test", targets=clashing)
  # Targets of their own names are added as they are.
  batch = next(iter(pipeline.make_dataset(_config(root), "test", targets=lambda b, c: {
      "twice_start": 2 * b["start"]})))
  np.testing.assert_array_equal(batch["twice_start"], 2 * batch["start"].numpy())
  assert "iou_map" not in batch
