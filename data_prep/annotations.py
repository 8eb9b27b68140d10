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
LGI's: every query as annotated. A line or entry that cannot be parsed at all raises
`AnnotationError` naming the file and line/key, unless `skip_malformed` is set, in which
case it is dropped and logged.
"""

import collections
import csv
import dataclasses
import json
import math
import os

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
    self.split.durations[video_id] = duration
    self.split.queries.append(Query(video_id, location, sentence, start, end,
                                    protocol.annotation_flags(start, end, duration)))

  def result(self) -> SplitAnnotations:
    return self.split


def read_charades_durations(csv_paths) -> dict[str, float]:
  """Video id -> duration (column `length`) from Charades_v1_{train,test}.csv files."""
  durations = {}
  for path in csv_paths:
    if not os.path.isfile(path):
      raise AnnotationError(f"{path} does not exist; Charades-STA durations are read from "
                            "the Charades_v1_{train,test}.csv metadata files")
    with open(path, newline="", encoding="utf-8") as f:
      reader = csv.DictReader(f)
      for field in ("id", "length"):
        if field not in (reader.fieldnames or ()):
          raise AnnotationError(f"{path}: no column {field!r} (columns: {reader.fieldnames})")
      for row in reader:
        try:
          durations[row["id"]] = float(row["length"])
        except (TypeError, ValueError):
          raise AnnotationError(f"{path}:{reader.line_num}: video {row['id']!r} has length "
                                f"{row['length']!r}, not a number") from None
  return durations


def read_charades_sta(txt_path: str, durations: dict[str, float], split: str,
                      skip_malformed: bool = False) -> SplitAnnotations:
  """Lines `VID start end##sentence` of charades_sta_{train,test}.txt."""
  builder = _Builder(split, skip_malformed)
  name = os.path.basename(txt_path)
  with open(txt_path, encoding="utf-8") as f:
    for line_number, line in enumerate(f, start=1):
      location = f"{name}:{line_number}"
      line = line.rstrip("\r\n")
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
      if video_id not in durations:
        builder.malformed(location, f"video {video_id!r} has no duration in the "
                                    "Charades_v1_*.csv files")
        continue
      builder.add(video_id, location, sentence.strip(), start, end, durations[video_id])
  return builder.result()


def _load_json(path: str) -> dict:
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
  except json.JSONDecodeError as e:
    raise AnnotationError(f"{path}: not valid JSON ({e})") from None
  if not isinstance(data, dict):
    raise AnnotationError(f"{path}: expected an object keyed by video id")
  return data


def _read_json_split(json_path, split, skip_malformed, duration_of, time_scale_of):
  """Shared walk over {video: {timestamps, sentences, ...}} files (TACoS, ActivityNet)."""
  builder = _Builder(split, skip_malformed)
  name = os.path.basename(json_path)
  for video_id, entry in _load_json(json_path).items():
    where = f"{name}:{video_id}"
    try:
      duration = float(duration_of(entry))
      scale = float(time_scale_of(entry))
      timestamps, sentences = entry["timestamps"], entry["sentences"]
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
      builder.malformed(where, f"video entry unreadable ({type(e).__name__}: {e})")
      continue
    if len(timestamps) != len(sentences):
      builder.malformed(where, f"{len(timestamps)} timestamps but {len(sentences)} sentences")
      continue
    for index, (stamp, sentence) in enumerate(zip(timestamps, sentences)):
      location = f"{where}:{index}"
      try:
        start, end = (float(t) for t in stamp)
      except (TypeError, ValueError):
        builder.malformed(location, f"timestamp {stamp!r} is not a [start, end] pair")
        continue
      builder.add(video_id, location, str(sentence).strip(), start / scale, end / scale,
                  duration)
  return builder.result()


def read_tacos(json_path: str, split: str, skip_malformed: bool = False) -> SplitAnnotations:
  """2D-TAN's TACoS json: timestamps in frames, duration = num_frames / fps."""
  return _read_json_split(json_path, split, skip_malformed,
                          duration_of=lambda e: float(e["num_frames"]) / float(e["fps"]),
                          time_scale_of=lambda e: e["fps"])


def read_activitynet(json_path: str, split: str,
                     skip_malformed: bool = False) -> SplitAnnotations:
  """ActivityNet Captions json: timestamps and duration in seconds."""
  return _read_json_split(json_path, split, skip_malformed,
                          duration_of=lambda e: e["duration"], time_scale_of=lambda e: 1.0)
