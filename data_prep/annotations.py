"""Readers for the annotation formats of Charades-STA, TACoS and ActivityNet Captions.

Each reader returns every readable query of one split with its times as annotated (seconds),
and a `SkipLog` of the entries it could not read (file and line, or file, video key and
index). Which queries a baseline keeps, and whether their times are clipped, is its data
protocol (`sscs_tf.data.protocol`), applied when the data is read: each query carries the
flags that protocol needs (start before 0, end past the duration, start >= end, start at or
past the duration). 2D-TAN's rule (see docs/data.md):
  * Charades-STA: end clipped to the video's duration; start >= end dropped.
  * TACoS: frames / fps; kept when start frame < end frame; times clipped to [0, duration].
  * ActivityNet Captions: seconds; kept when start < end; times clipped to [0, duration].
LGI's: every query as annotated. A line or entry that cannot be parsed or holds impossible
values (text that is not UTF-8, a duration that is not a positive finite number, a video
given two durations or listed twice, an interval ending at or before the video's start, a
sentence that is not text) raises `AnnotationError` naming the file and line/key, unless
`skip_malformed` is set, in which case it is dropped and logged like the others.
"""

import collections
import csv
import dataclasses
import io
import json
import math
import os

import numpy as np

from sscs_tf.data import protocol


class AnnotationError(ValueError):
  """An annotation file holds something that cannot be read; names the file and place."""


@dataclasses.dataclass
class Query:
  video_id: str
  query_id: str    # where it came from: "charades_sta_test.txt:17", "val_1.json:v_x:2"
  sentence: str
  start: float     # seconds, as annotated
  end: float
  flags: int = 0   # protocol.annotation_flags


class SkipLog:
  """Every query no protocol keeps: (reason, location, detail)."""

  def __init__(self):
    self.entries: list[tuple[str, str, str]] = []

  def add(self, reason: str, location: str, detail: str = "") -> None:
    self.entries.append((reason, location, detail))

  def counts(self) -> dict[str, int]:
    return dict(collections.Counter(reason for reason, _, _ in self.entries))

  def __len__(self) -> int:
    return len(self.entries)


@dataclasses.dataclass
class SplitAnnotations:
  name: str
  queries: list[Query]
  durations: dict[str, float]
  skipped: SkipLog
  # How the split was made when it is not a file of the release (meta.json records it).
  origin: dict = dataclasses.field(default_factory=dict)

  def protocol_summary(self, name: str) -> dict:
    """Queries and videos the protocol `name` keeps, with its drops and clips by reason."""
    return protocol.summary([q.flags for q in self.queries],
                            [q.video_id for q in self.queries], name)


class _Builder:
  """Keeps every readable query with its annotated times and protocol flags."""

  def __init__(self, name: str, skip_malformed: bool):
    self.split = SplitAnnotations(name, [], {}, SkipLog())
    self.skip_malformed = skip_malformed

  def malformed(self, location: str, detail: str) -> None:
    if not self.skip_malformed:
      raise AnnotationError(f"{location}: {detail} (pass --skip_malformed to skip and report "
                            "such entries instead)")
    self.split.skipped.add("malformed annotation", location, detail)

  def add(self, video_id, location, sentence, start, end, duration) -> None:
    if not (math.isfinite(start) and math.isfinite(end)):
      self.malformed(location, f"non-finite time ({start}, {end})")
      return
    if end <= 0:
      # No protocol can use it: nothing of the interval lies inside the video.
      self.malformed(location, f"interval ({start}, {end}) ends before the video starts")
      return
    self.split.durations[video_id] = duration
    self.split.queries.append(Query(video_id, location, sentence, start, end,
                                    protocol.annotation_flags(start, end, duration)))

  def result(self) -> SplitAnnotations:
    return self.split


def read_charades_durations(csv_paths, invalid: dict | None = None) -> dict[str, float]:
  """Video id -> duration (column `length`) from Charades_v1_{train,test}.csv files.

  A length that is not a positive finite number, or a video given two different lengths,
  raises AnnotationError naming the file and line; with `invalid` (a dict) such a video is
  left out and `invalid[video_id]` says why, for the queries that name it.
  """
  durations, where = {}, {}
  for path in csv_paths:
    if not os.path.isfile(path):
      raise AnnotationError(f"{path} does not exist; Charades-STA durations are read from "
                            "the Charades_v1_{train,test}.csv metadata files")
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    for field in ("id", "length"):
      if field not in (reader.fieldnames or ()):
        raise AnnotationError(f"{path}: no column {field!r} (columns: {reader.fieldnames})")
    name = os.path.basename(path)
    for row in reader:
      video_id, location = row["id"], f"{name}:{reader.line_num}"
      problem = _duration_problem(row["length"])
      if problem is None and video_id in durations and durations[video_id] != float(
          row["length"]):
        problem = (f"length {float(row['length'])} but {where[video_id]} gave "
                   f"{durations[video_id]}")
      if problem is None:
        durations[video_id], where[video_id] = float(row["length"]), location
        continue
      if invalid is None:
        raise AnnotationError(f"{path}:{reader.line_num}: "
                              f"video {video_id!r} has {problem}")
      invalid[video_id] = f"{location}: {problem}"
      durations.pop(video_id, None)
  return durations


def read_charades_json_durations(json_path: str, invalid: dict | None = None) -> dict[str, float]:
  """Video id -> duration from a `charades.json` (`{"VID": {"duration": seconds, ...}}`),
  the layout of VSLNet's Charades-STA annotation variant (26hzhang/VSLNet,
  data/dataset/charades). A duration that is not a positive finite number raises
  AnnotationError naming the video; with `invalid` (a dict) the video is left out instead."""
  try:
    entries = json.loads(read_text(json_path))
  except json.JSONDecodeError as e:
    raise AnnotationError(f"{json_path}:{e.lineno}: not JSON ({e.msg})") from None
  if not isinstance(entries, dict):
    raise AnnotationError(f"{json_path}: expected an object of videos, got "
                          f"{type(entries).__name__}")
  durations = {}
  for video_id, entry in entries.items():
    value = entry.get("duration") if isinstance(entry, dict) else None
    problem = _duration_problem(value)
    if problem is None:
      durations[video_id] = float(value)
    elif invalid is None:
      raise AnnotationError(f"{json_path}: video {video_id!r} has duration {value!r}, not a "
                            "positive finite number")
    else:
      invalid[video_id] = f"{os.path.basename(json_path)}:{video_id}: {problem}"
  return durations


def _duration_problem(value) -> str | None:
  """None when `value` is a positive finite number of seconds, else what is wrong."""
  try:
    seconds = float(value)
  except (TypeError, ValueError):
    seconds = math.nan
  if math.isfinite(seconds) and seconds > 0:
    return None
  return f"length {value!r}, not a positive finite number"


def read_text(path: str) -> str:
  """The file's text; bytes that are not UTF-8 raise AnnotationError naming the line."""
  with open(path, "rb") as f:
    data = f.read()
  try:
    return data.decode("utf-8")
  except UnicodeDecodeError as e:
    line = data.count(b"\n", 0, e.start) + 1
    raise AnnotationError(f"{path}:{line}: not UTF-8 text (byte {data[e.start]:#04x}); "
                          "annotation files are read as UTF-8") from None


def _undecodable(line: str) -> str | None:
  """The first byte that was not UTF-8 in a line read with errors="surrogateescape"."""
  for char in line:
    if "\udc80" <= char <= "\udcff":
      return f"{ord(char) - 0xDC00:#04x}"
  return None


def read_charades_sta(txt_path: str, durations: dict[str, float], split: str,
                      skip_malformed: bool = False,
                      invalid_durations: dict | None = None) -> SplitAnnotations:
  """Lines `VID start end##sentence` of charades_sta_{train,test}.txt; `invalid_durations`
  is `read_charades_durations`'s account of the videos it left out."""
  builder = _Builder(split, skip_malformed)
  name = os.path.basename(txt_path)
  invalid_durations = invalid_durations or {}
  with open(txt_path, encoding="utf-8", errors="surrogateescape") as f:
    for line_number, line in enumerate(f, start=1):
      location = f"{name}:{line_number}"
      line = line.rstrip("\r\n")
      bad_byte = _undecodable(line)
      if bad_byte:
        builder.malformed(location, f"not UTF-8 text (byte {bad_byte})")
        continue
      if not line.strip():
        continue  # blank lines (a trailing newline) hold no query
      head, sep, sentence = line.partition("##")
      fields = head.split()
      if not sep or len(fields) != 3:
        builder.malformed(location, f"expected 'VID start end##sentence', got {line!r}")
        continue
      video_id, start, end = fields
      try:
        start, end = float(start), float(end)
      except ValueError:
        builder.malformed(location, f"times {fields[1]!r} {fields[2]!r} are not numbers")
        continue
      if video_id in invalid_durations:
        builder.malformed(location, f"video {video_id!r} has no usable duration "
                                    f"({invalid_durations[video_id]})")
        continue
      if video_id not in durations:
        builder.malformed(location, f"video {video_id!r} has no duration in the "
                                    "Charades_v1_*.csv files")
        continue
      builder.add(video_id, location, sentence.strip(), start, end, durations[video_id])
  return builder.result()


class _Entries(dict):
  """A JSON object whose keys were not unique: `duplicates` counts the repeated ones."""

  def __init__(self, pairs):
    super().__init__(pairs)
    counts = collections.Counter(key for key, _ in pairs)
    self.duplicates = {key: n for key, n in counts.items() if n > 1}


def _load_json(path: str) -> dict:
  try:
    data = json.loads(read_text(path), object_pairs_hook=_Entries)
  except json.JSONDecodeError as e:
    raise AnnotationError(f"{path}: not valid JSON ({e})") from None
  if not isinstance(data, dict):
    raise AnnotationError(f"{path}: expected an object keyed by video id")
  return data


def _video_entry(entry, duration_of, time_scale_of):
  """(duration, time scale, timestamps, sentences) of one video, or a string saying why
  the entry cannot be used."""
  if not isinstance(entry, dict):
    return f"video entry is {type(entry).__name__}, not an object"
  if getattr(entry, "duplicates", None):
    return f"keys given twice: {sorted(entry.duplicates)}"
  try:
    scale = float(time_scale_of(entry))
    if not (math.isfinite(scale) and scale > 0):
      return f"time scale (fps) {scale} is not a positive finite number"
    duration = float(duration_of(entry))
    timestamps, sentences = entry["timestamps"], entry["sentences"]
  except (KeyError, TypeError, ValueError, OverflowError) as e:
    return f"video entry unreadable ({type(e).__name__}: {e})"
  if not (math.isfinite(duration) and duration > 0):
    return f"duration {duration} s is not a positive finite number"
  if not (isinstance(timestamps, list) and isinstance(sentences, list)):
    return "timestamps and sentences must be lists"
  if len(timestamps) != len(sentences):
    return f"{len(timestamps)} timestamps but {len(sentences)} sentences"
  return duration, scale, timestamps, sentences


def _as_float(value) -> float:
  """A JSON number (or numeric string) as float; true/false are not numbers here."""
  if isinstance(value, bool):
    raise TypeError(f"{value!r} is not a number")
  return float(value)


def _read_json_split(json_path, split, skip_malformed, duration_of, time_scale_of):
  """Shared walk over {video: {timestamps, sentences, ...}} files (TACoS, ActivityNet)."""
  builder = _Builder(split, skip_malformed)
  name = os.path.basename(json_path)
  videos = _load_json(json_path)
  for video_id, entry in videos.items():
    where = f"{name}:{video_id}"
    if video_id in videos.duplicates:
      builder.malformed(where, f"listed {videos.duplicates[video_id]} times")
      continue
    fields = _video_entry(entry, duration_of, time_scale_of)
    if isinstance(fields, str):
      builder.malformed(where, fields)
      continue
    duration, scale, timestamps, sentences = fields
    for index, (stamp, sentence) in enumerate(zip(timestamps, sentences)):
      location = f"{where}:{index}"
      try:
        if not (isinstance(stamp, list) and len(stamp) == 2):
          raise TypeError
        start, end = (_as_float(t) for t in stamp)
      except (TypeError, ValueError, OverflowError):
        builder.malformed(location, f"timestamp {stamp!r} is not a [start, end] pair")
        continue
      if not isinstance(sentence, str):
        builder.malformed(location, f"sentence {sentence!r} is not text")
        continue
      builder.add(video_id, location, sentence.strip(), start / scale, end / scale,
                  duration)
  return builder.result()


def read_tacos(json_path: str, split: str, skip_malformed: bool = False) -> SplitAnnotations:
  """2D-TAN's TACoS json: timestamps in frames, duration = num_frames / fps."""
  return _read_json_split(json_path, split, skip_malformed,
                          duration_of=lambda e: _as_float(e["num_frames"]) / _as_float(e["fps"]),
                          time_scale_of=lambda e: _as_float(e["fps"]))


def read_activitynet(json_path: str, split: str,
                     skip_malformed: bool = False) -> SplitAnnotations:
  """ActivityNet Captions json: timestamps and duration in seconds."""
  return _read_json_split(json_path, split, skip_malformed,
                          duration_of=lambda e: _as_float(e["duration"]),
                          time_scale_of=lambda e: 1.0)


def carve_validation(split: SplitAnnotations, fraction: float, seed: int,
                     name: str = "val") -> tuple[SplitAnnotations, SplitAnnotations]:
  """Splits `split` by video into (rest, validation): round(fraction * videos) videos, drawn
  with `seed`, go to the validation split with all their queries, so no video is in both.

  The draw depends only on the sorted video ids and the seed. Queries the source file
  dropped stay in the rest's skip log (they were never in either split).
  """
  if not 0.0 < fraction < 1.0:
    raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
  videos = sorted({q.video_id for q in split.queries})
  count = max(1, int(round(fraction * len(videos))))
  if count >= len(videos):
    raise ValueError(f"{split.name}: {len(videos)} videos cannot give a validation split of "
                     f"fraction {fraction} with videos on both sides")
  held = set(np.random.default_rng(seed).permutation(videos)[:count].tolist())
  durations = split.durations

  def part(split_name, keep, origin):
    queries = [q for q in split.queries if (q.video_id in held) == keep]
    return SplitAnnotations(split_name, queries,
                            {v: durations[v] for v in {q.video_id for q in queries}},
                            SkipLog() if keep else split.skipped, origin=origin)

  origin = dict(carved_from=split.name, fraction=fraction, seed=seed, videos=count)
  return part(split.name, False, {}), part(name, True, origin)
