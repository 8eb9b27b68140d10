"""Which annotated queries a baseline keeps, and with which times: its data protocol.

The reference codes read the same annotation files differently. Data prep therefore stores
every readable query with its times as annotated, plus flags saying what is unusual about
them, and the input pipeline applies the rule of `config.data.protocol` at read time:

  "tan": 2D-TAN's reference (its dataset readers): a query with start >= end, or starting at
         or after the video's end, is dropped; the others are clipped to [0, duration].
  "lgi": LGI's reference (src/dataset/charades.py, anet.py): every query as annotated,
         neither clipped nor dropped; targets start / duration and end / duration can
         exceed 1 or be reversed, and the test ground truth is the annotated one.
  "vslnet": VSLNet's reference (26hzhang/VSLNet, util/data_gen.py): every query kept, its
         times clipped to [0, duration] (a reversed one then trains on the best-overlapping
         step pair, and scores IoU 0).

A protocol is a rule for which queries are kept and a rule for their times; meta.json
counts the queries per keeping rule (`STORED`), which "vslnet" shares with "lgi".

See docs/data.md ("Data protocols") for the counts on the public annotation files.
"""

import collections
from typing import Iterable

import tensorflow as tf

PROTOCOLS = ("tan", "lgi", "vslnet")
# The protocols meta.json counts, and whose counts each protocol reads (its keeping rule).
STORED = ("tan", "lgi")
COUNTED_AS = {"tan": "tan", "lgi": "lgi", "vslnet": "lgi"}
_CLIPS_TIMES = ("tan", "vslnet")

# Bit flags stored per query (example.py "protocol_flags").
START_BEFORE_ZERO = 1
END_PAST_DURATION = 2
START_NOT_BEFORE_END = 4
START_AT_OR_PAST_DURATION = 8

# In the order 2D-TAN's rule checks them: the first one that applies names a drop.
FLAG_NAMES = {
    START_NOT_BEFORE_END: "start >= end",
    START_AT_OR_PAST_DURATION: "start at or past the video's end",
    START_BEFORE_ZERO: "start before 0",
    END_PAST_DURATION: "end past the duration",
}
_TAN_DROPS = START_NOT_BEFORE_END | START_AT_OR_PAST_DURATION
_TAN_CLIPS = {START_BEFORE_ZERO: "start clipped to 0",
              END_PAST_DURATION: "end clipped to the duration"}


def check_protocol(protocol: str) -> str:
  if protocol not in PROTOCOLS:
    raise ValueError(f"data.protocol must be one of {PROTOCOLS}, got {protocol!r}.")
  return protocol


def annotation_flags(start: float, end: float, duration: float) -> int:
  """The flags of one annotated query (seconds, finite)."""
  flags = 0
  if start < 0:
    flags |= START_BEFORE_ZERO
  if end > duration:
    flags |= END_PAST_DURATION
  if start >= end:
    flags |= START_NOT_BEFORE_END
  if start >= duration:
    flags |= START_AT_OR_PAST_DURATION
  return flags


def keeps(flags: int, protocol: str) -> bool:
  """Whether `protocol` keeps a query with these flags."""
  return COUNTED_AS[check_protocol(protocol)] == "lgi" or not flags & _TAN_DROPS


def drop_reason(flags: int, protocol: str) -> str:
  """Why `protocol` drops the query ("" when it keeps it)."""
  if keeps(flags, protocol):
    return ""
  return next(name for bit, name in FLAG_NAMES.items() if flags & bit & _TAN_DROPS)


def summary(flags_per_query: Iterable[int], video_ids: Iterable[str], protocol: str) -> dict:
  """meta.json's per-protocol counts: kept queries and videos; for "tan" the drops by reason
  and the clipped times, for "lgi" the unusual annotations it keeps as they are, for
  "vslnet" the clipped times and the reversed queries it keeps."""
  kept_videos, kept, notes = set(), 0, collections.Counter()
  for flags, video_id in zip(flags_per_query, video_ids):
    if not keeps(flags, protocol):
      notes[f"dropped: {drop_reason(flags, protocol)}"] += 1
      continue
    kept += 1
    kept_videos.add(video_id)
    if protocol in _CLIPS_TIMES:
      notes.update(name for bit, name in _TAN_CLIPS.items() if flags & bit)
    kept_as_is = FLAG_NAMES if protocol == "lgi" else (
        {} if protocol == "tan" else {b: n for b, n in FLAG_NAMES.items() if b & _TAN_DROPS})
    notes.update(f"kept: {name}" for bit, name in kept_as_is.items() if flags & bit)
  return {"queries": kept, "videos": len(kept_videos), "notes": dict(sorted(notes.items()))}


def apply(starts, ends, duration, flags, protocol: str):
  """The protocol's rule on one video's queries, in TensorFlow (graph-friendly).

  Args:
    starts, ends: `[Q]` float32, seconds as annotated.
    duration: scalar float32.
    flags: `[Q]` int64 (`annotation_flags`).

  Returns:
    (keep `[Q]` bool, starts `[Q]`, ends `[Q]`).
  """
  if COUNTED_AS[check_protocol(protocol)] == "lgi":
    keep = tf.ones_like(flags, tf.bool)
  else:
    keep = tf.equal(tf.bitwise.bitwise_and(flags, tf.constant(_TAN_DROPS, flags.dtype)), 0)
  if protocol not in _CLIPS_TIMES:
    return keep, starts, ends
  return keep, tf.maximum(starts, 0.0), tf.minimum(ends, duration)
