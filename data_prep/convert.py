"""Annotations + features -> sharded TFRecords, vocabulary, embeddings and meta.json.

Shared by the per-dataset scripts (`charades_sta`, `tacos`, `activitynet`), which only read
their annotation files into `SplitAnnotations` and call `convert`.

Output directory:
  {split}-{i:05d}-of-{n:05d}.tfrecord   one record per video with all its queries
  vocab.txt                             one token per line; line number = word id
  embeddings.npy                        [vocab_size, dim] float32, when --glove is given
  skipped.tsv                           every query left out, by every protocol ("all") or by
                                        one: split, protocol, reason, location, detail
  meta.json                             written last: the dataset exists once it is there

Re-running over an existing directory is safe: everything is written to a temporary folder
first, the old meta.json is removed before the new files are renamed into place (so a run
killed half-way leaves no meta.json rather than a mixed dataset), and files of the old run
that the new one does not list are deleted at the end (their list is kept in .replacing.json
meanwhile, so a run killed before that deletes them next time). Only names this module gives
(shards, vocab.txt, embeddings.npy, skipped.tsv, directly inside the output directory) are
ever deleted: an old meta.json listing anything else is refused before anything is written. The
temporary folders (`.tmp-*`) a killed run leaves behind are removed by the next run.
"""

import collections
import dataclasses
import os
import re
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import logging

from data_prep import glove as glove_lib
from data_prep.annotations import SplitAnnotations
from data_prep.features import FeatureError, FeatureSource
from sscs_tf.core import fileio
from sscs_tf.data import example, protocol, text
from sscs_tf.data import meta as data_meta
from sscs_tf.core.faults import fault_point

META_FILE = "meta.json"
TMP_PREFIX = ".tmp-"
# The only names a conversion writes, hence the only ones a re-run may delete.
_OWN_FILE = re.compile(r"[A-Za-z0-9_]+-\d{5}-of-\d{5}\.tfrecord|vocab\.txt|embeddings\.npy|"
                       r"skipped\.tsv")
_STALE = re.compile(re.escape(TMP_PREFIX) + r"[A-Za-z0-9_]+|"
                    r"\.(meta|replacing)\.json\.[A-Za-z0-9_]+\.tmp")
# While a re-run swaps its files in, the old run's list lives here: a kill then costs no
# stray file, the next run deletes what this list names.
REPLACING_FILE = ".replacing.json"
FLOAT16_MAX = float(np.finfo(np.float16).max)


class ConversionError(ValueError):
  """The output directory holds something a conversion must not touch; names it."""


@dataclasses.dataclass
class Options:
  num_shards: int = 8
  feature_dtype: str = "float32"
  feature_key: str = ""
  glove: str = ""
  glove_dim: int = 0
  min_word_count: int = 1
  allow_missing_features: bool = False


class Progress:
  """Logs `done/total`, rate and ETA at most every `every_s` seconds."""

  def __init__(self, total: int, what: str, every_s: float = 10.0):
    self.total, self.what, self.every_s = total, what, every_s
    self.start = self.last = time.time()
    self.done = 0

  def step(self, n: int = 1) -> None:
    self.done += n
    now = time.time()
    if now - self.last >= self.every_s or self.done == self.total:
      rate = self.done / max(now - self.start, 1e-9)
      eta = (self.total - self.done) / max(rate, 1e-9)
      logging.info("%s: %d/%d (%.1f%%), %.0f/s, ETA %.0f s", self.what, self.done, self.total,
                   100.0 * self.done / max(self.total, 1), rate, eta)
      self.last = now


def drop_empty_sentences(split: SplitAnnotations) -> list[list[str]]:
  """Tokenizes the split's sentences; queries with no token are dropped and logged."""
  tokens = text.tokenize_py([q.sentence for q in split.queries])
  kept_queries, kept_tokens = [], []
  for query, words in zip(split.queries, tokens):
    if words:
      kept_queries.append(query)
      kept_tokens.append(words)
    else:
      split.skipped.add("empty sentence", query.query_id, repr(query.sentence))
  split.queries = kept_queries
  return kept_tokens


def drop_missing_features(split: SplitAnnotations, tokens, missing: set[str]):
  kept = [(q, t) for q, t in zip(split.queries, tokens) if q.video_id not in missing]
  for query in split.queries:
    if query.video_id in missing:
      split.skipped.add("no features", query.query_id, query.video_id)
  split.queries = [q for q, _ in kept]
  return [t for _, t in kept]


def build_vocabulary(tokens_by_split: dict[str, list], options: Options):
  """Training words; plus, with GloVe, other splits' words that have a vector (frozen
  GloVe vectors carry meaning without training, as in the reference's lookup)."""
  # Training words; without training queries (e.g. only some videos have features), the
  # words of the first split that has queries.
  train_tokens = tokens_by_split.get("train") or next(
      (t for t in tokens_by_split.values() if t), [])
  if not options.glove:
    return text.Vocabulary.build(train_tokens, options.min_word_count), None, {}
  wanted = {t for lists in tokens_by_split.values() for words in lists for t in words}
  logging.info("Reading GloVe vectors for %d words from %s", len(wanted), options.glove)
  vectors, dim = glove_lib.read_glove(options.glove, wanted, options.glove_dim)
  vocab = text.Vocabulary.build(train_tokens, options.min_word_count, extra_tokens=vectors)
  matrix = glove_lib.embedding_matrix(vocab.tokens, vectors, dim)
  counts = collections.Counter(t for words in train_tokens for t in words)
  covered = sum(n for t, n in counts.items() if t in vectors)
  words = [t for t in vocab.tokens if t not in text.RESERVED_TOKENS]
  coverage = {
      "dim": dim,
      "vocabulary_words_with_vector": sum(t in vectors for t in words),
      "vocabulary_words": len(words),
      "train_token_coverage": covered / max(sum(counts.values()), 1),
  }
  logging.info("GloVe covers %d of %d vocabulary words (%.1f%%) and %.1f%% of training "
               "tokens", coverage["vocabulary_words_with_vector"], len(words),
               100.0 * coverage["vocabulary_words_with_vector"] / max(len(words), 1),
               100.0 * coverage["train_token_coverage"])
  return vocab, matrix, coverage


def _write_split(split, tokens, vocab, source, options, tmp_dir):
  """Writes the split's shards into tmp_dir; returns (file names, number of videos)."""
  by_video = collections.defaultdict(list)
  for query, words in zip(split.queries, tokens):
    by_video[query.video_id].append(example.QueryRecord(
        query.query_id, query.sentence, query.start, query.end, vocab.encode(words),
        query.flags))
  video_ids = sorted(by_video)
  num_shards = max(1, min(options.num_shards, len(video_ids)))
  names = [f"{split.name}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
  writers = [tf.io.TFRecordWriter(os.path.join(tmp_dir, n)) for n in names]
  progress = Progress(len(video_ids), f"{split.name}: videos written")
  try:
    for i, video_id in enumerate(video_ids):
      features = _storable(source.load(video_id), options.feature_dtype,
                           f"{source.path}: video {video_id}")
      record = example.encode_video(video_id, split.durations[video_id], features,
                                    by_video[video_id], options.feature_dtype)
      writers[i % num_shards].write(record)
      progress.step()
      fault_point("video written")
  finally:
    for writer in writers:
      writer.close()
  return names, len(video_ids)


def _storable(features: np.ndarray, feature_dtype: str, where: str) -> np.ndarray:
  """`features` when the storage type holds them; float16 overflows to Inf past 65504."""
  if feature_dtype == "float16":
    peak = float(np.abs(features).max())
    if peak > FLOAT16_MAX:
      raise FeatureError(f"{where}: values up to {peak:g} exceed float16's range "
                         f"({FLOAT16_MAX:g}) and would be stored as Inf; use "
                         "--feature_dtype float32")
  return features


def convert(dataset: str, splits: list[SplitAnnotations], features: str, output_dir: str,
            options: Options) -> dict:
  """Writes the dataset; returns the meta.json contents."""
  if options.feature_dtype not in example.FEATURE_DTYPES:
    raise ValueError(f"feature_dtype must be one of {example.FEATURE_DTYPES}")
  old_files = _old_files(output_dir)
  tokens = {s.name: drop_empty_sentences(s) for s in splits}
  with FeatureSource(features, options.feature_key) as source:
    missing = set(source.missing(q.video_id for s in splits for q in s.queries))
    if missing and not options.allow_missing_features:
      listed = sorted(missing)
      raise FeatureError(
          f"{features}: no features for {len(listed)} videos: {', '.join(listed[:5])}"
          f"{' ...' if len(listed) > 5 else ''} (pass --allow_missing_features to skip their "
          "queries and report them)")
    for s in splits:
      tokens[s.name] = drop_missing_features(s, tokens[s.name], missing)
    # Words of the queries 2D-TAN's protocol reads, so its ids are those it always had (on
    # the public files the queries only LGI's protocol reads add no word).
    vocab_tokens = {s.name: [t for q, t in zip(s.queries, tokens[s.name])
                             if protocol.keeps(q.flags, "tan")] for s in splits}
    vocab, matrix, coverage = build_vocabulary(vocab_tokens, options)
    os.makedirs(output_dir, exist_ok=True)
    _remove_stale(output_dir)
    tmp_dir = tempfile.mkdtemp(dir=output_dir, prefix=TMP_PREFIX)
    try:
      meta = _write_all(dataset, splits, tokens, vocab, matrix, coverage, source, features,
                        options, tmp_dir)
      # What the pipeline reads back is checked by the same code before it is committed.
      data_meta.check_meta(meta, os.path.join(output_dir, META_FILE))
      _commit(output_dir, tmp_dir, meta, old_files)
    finally:
      shutil.rmtree(tmp_dir, ignore_errors=True)
  _log_summary(meta)
  return meta


def _write_all(dataset, splits, tokens, vocab, matrix, coverage, source, features, options,
               tmp_dir):
  meta_splits = {}
  for split in splits:
    files, videos = _write_split(split, tokens[split.name], vocab, source, options, tmp_dir)
    # "queries"/"videos": what the records hold; "protocols": what each baseline reads.
    meta_splits[split.name] = {
        "files": files, "videos": videos, "queries": len(split.queries),
        "skipped": split.skipped.counts(),
        "protocols": {name: split.protocol_summary(name) for name in protocol.STORED},
    }
    if split.origin:
      meta_splits[split.name]["origin"] = split.origin
  vocab.save(os.path.join(tmp_dir, "vocab.txt"))
  if matrix is not None:
    fileio.atomic_save_npy(os.path.join(tmp_dir, "embeddings.npy"), matrix)
  fileio.atomic_write_text(os.path.join(tmp_dir, "skipped.tsv"), "".join(_skipped_rows(splits)))
  return {
      "format_version": data_meta.FORMAT_VERSION,
      "dataset": dataset,
      "feature_dim": source.feature_dim,
      "feature_dtype": options.feature_dtype,
      "features": os.path.abspath(features),
      # Which extractor made the features (sscs-extract's attributes), None when unknown:
      # a model is only valid on features of the same kind (docs/video.md).
      "extractor": source.extractor,
      "vocab_size": len(vocab),
      "vocab_file": "vocab.txt",
      "embeddings_file": "embeddings.npy" if matrix is not None else None,
      "glove": dict(coverage, path=os.path.abspath(options.glove)) if coverage else None,
      "splits": meta_splits,
  }


def _skipped_rows(splits) -> list[str]:
  rows = ["split\tprotocol\treason\tlocation\tdetail\n"]
  for s in splits:
    rows += [f"{s.name}\tall\t{reason}\t{location}\t{detail}\n"
             for reason, location, detail in s.skipped.entries]
    for name in protocol.STORED:
      rows += [f"{s.name}\t{name}\t{protocol.drop_reason(q.flags, name)}\t{q.query_id}\t"
               f"{q.start} {q.end} of {s.durations[q.video_id]}\n"
               for q in s.queries if not protocol.keeps(q.flags, name)]
  return rows


def _old_files(output_dir: str) -> set[str]:
  """The files earlier conversions into `output_dir` wrote (the lists of its meta.json and
  of an interrupted swap); a list naming anything else (another folder, a name this module
  never gives) is not ours to act on."""
  names = set()
  for listing in (META_FILE, REPLACING_FILE):
    path = os.path.join(output_dir, listing)
    if not os.path.exists(path):
      continue
    try:
      content = fileio.read_json(path)
      listed = _listed_files(content) if listing == META_FILE else list(content)
    except (ValueError, AttributeError, TypeError) as e:
      raise ConversionError(f"{path} is not a file this converter wrote ({e}); move it away "
                            "or pick another --output_dir") from None
    for name in listed:
      if not (isinstance(name, str) and _OWN_FILE.fullmatch(name)
              and fileio.contained_path(output_dir, name)):
        raise ConversionError(f"{path} lists {name!r}, which is not a file this converter "
                              "writes inside the output directory; refusing to replace or "
                              "delete it (move it away or pick another --output_dir)")
    names.update(listed)
  return names


def _remove_stale(output_dir: str) -> None:
  """Removes the temporary files and folders of a conversion that was killed."""
  for name in os.listdir(output_dir):
    if _STALE.fullmatch(name):
      path = os.path.join(output_dir, name)
      logging.info("Removing %s, left by an interrupted conversion", path)
      if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
      else:
        os.remove(path)


def _commit(output_dir: str, tmp_dir: str, meta: dict, old_files: set[str]) -> None:
  """Moves the new files into place; meta.json goes last and marks the dataset complete."""
  meta_path = os.path.join(output_dir, META_FILE)
  replacing = os.path.join(output_dir, REPLACING_FILE)
  fileio.atomic_write_json(replacing, sorted(old_files))
  if os.path.exists(meta_path):
    os.remove(meta_path)
  new_files = _listed_files(meta)
  for name in new_files:
    fault_point("file moved into place")
    os.replace(os.path.join(tmp_dir, name), os.path.join(output_dir, name))
  fileio.atomic_write_json(meta_path, meta)
  for name in sorted(old_files - set(new_files)):
    fault_point("old file removed")
    path = os.path.join(output_dir, name)
    if os.path.exists(path):
      os.remove(path)
  os.remove(replacing)


def _listed_files(meta: dict) -> list[str]:
  names = [f for split in meta.get("splits", {}).values() for f in split.get("files", [])]
  names += [meta.get("vocab_file"), meta.get("embeddings_file"), "skipped.tsv"]
  return [n for n in names if n]


def _log_summary(meta: dict) -> None:
  for name, split in meta["splits"].items():
    skipped = ", ".join(f"{r}: {n}" for r, n in sorted(split["skipped"].items())) or "none"
    logging.info("%s: %d queries over %d videos written; skipped: %s", name, split["queries"],
                 split["videos"], skipped)
    for protocol_name, counts in split["protocols"].items():
      notes = ", ".join(f"{r}: {n}" for r, n in counts["notes"].items()) or "nothing unusual"
      logging.info("%s, %s protocol: %d queries over %d videos; %s", name, protocol_name,
                   counts["queries"], counts["videos"], notes)
