"""Readers for the annotation formats of Charades-STA, TACoS and ActivityNet Captions.

Each reader returns the kept queries of one split and a `SkipLog` of every query it dropped,
with the reason and where it came from (file and line, or file, video key and index). The
rules are the reference 2D-TAN code's (see docs/data.md):
  * Charades-STA: end clipped to the video's duration; start >= end dropped.
  * TACoS: frames / fps; kept when start frame < end frame; times clipped to [0, duration].
  * ActivityNet Captions: seconds; kept when start < end; times clipped to [0, duration].
A start clipped up to 0 or an end clipped down to the duration is kept and counted in
`SplitAnnotations.adjusted`. A line or entry that cannot be parsed at all raises
`AnnotationError` naming the file and line/key, unless `skip_malformed` is set, in which
case it is dropped and logged like the others.
"""

import collections
import csv
import dataclasses
import json
import math
import os

import numpy as np


class AnnotationError(ValueError):
  """An annotation file holds something that cannot be read; names the file and place."""


@dataclasses.dataclass
class Query:
  video_id: str
  query_id: str    # where it came from: "charades_sta_test.txt:17", "val_1.json:v_x:2"
  sentence: str
  start: float     # seconds, within [0, duration]
  end: float


class SkipLog:
  """Every dropped query: (reason, location, detail)."""

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
  adjusted: dict[str, int] = dataclasses.field(default_factory=dict)
  # How the split was made when it is not a file of the release (meta.json records it).
  origin: dict = dataclasses.field(default_factory=dict)


class _Builder:
  """Applies the shared clipping / dropping rules and collects the split."""

  def __init__(self, name: str, skip_malformed: bool):
    self.split = SplitAnnotations(name, [], {}, SkipLog())
    self.skip_malformed = skip_malformed
    self._adjusted = collections.Counter()

  def malformed(self, location: str, detail: str) -> None:
    if not self.skip_malformed:
      raise AnnotationError(f"{location}: {detail} (pass --skip_malformed to skip and report "
                            "such entries instead)")
    self.split.skipped.add("malformed annotation", location, detail)

  def add(self, video_id, location, sentence, start, end, duration) -> None:
    """Clips [start, end] to [0, duration]; drops the query when nothing is left."""
    if not (math.isfinite(start) and math.isfinite(end)):
      self.malformed(location, f"non-finite time ({start}, {end})")
      return
    if start >= end:
      self.split.skipped.add("start >= end", location, f"{start} >= {end}")
      return
    if start >= duration:
      self.split.skipped.add("start at or past the video's end", location,
                             f"start {start} >= duration {duration}")
      return
    if start < 0:
      self._adjusted["start clipped to 0"] += 1
      start = 0.0
    if end > duration:
      self._adjusted["end clipped to the duration"] += 1
      end = duration
    self.split.durations[video_id] = duration
    self.split.queries.append(Query(video_id, location, sentence, start, end))

  def result(self) -> SplitAnnotations:
    self.split.adjusted = dict(self._adjusted)
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
                            SkipLog() if keep else split.skipped,
                            {} if keep else split.adjusted, origin)

  origin = dict(carved_from=split.name, fraction=fraction, seed=seed, videos=count)
  return part(split.name, False, {}), part(name, True, origin)
