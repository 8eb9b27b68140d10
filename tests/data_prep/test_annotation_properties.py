"""Property: over random (mostly malformed) annotation lines and entries, every outcome of
the readers is a kept query, a counted skip, or an AnnotationError naming the file and the
line or video; never an exception of another kind, never a line unaccounted for.
(case_property_charades_lines, case_property_json_entries in docs/reliability.md)"""

import json
import math
import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_prep import annotations, charades_sta, tacos, activitynet
from sscs_tf.data import protocol
from tests.data_prep import fixtures

DURATIONS = {"AAAAA": 30.0, "BBBBB": 20.0}
SETTINGS = settings(max_examples=80, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-100, 100).map(str), st.sampled_from(["nan", "-inf", "1e400", "", "x", "0"]))
_ids = st.sampled_from(["AAAAA", "BBBBB", "ZZZZZ", "../AAAAA", "", "A A"])
_text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"),
                max_size=30)
_raw_bytes = st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))


@st.composite
def charades_lines(draw):
  """A line as bytes: a well-formed skeleton with random parts, or random bytes."""
  kind = draw(st.integers(0, 2))
  if kind == 0:
    return draw(_raw_bytes)
  parts = [draw(_ids), draw(_numbers), draw(_numbers)]
  if draw(st.booleans()):
    parts = parts[:draw(st.integers(0, 3))] + [draw(_numbers)] * draw(st.integers(0, 1))
  line = " ".join(parts) + draw(st.sampled_from(["##", "#", "", "## ##"])) + draw(_text)
  return line.encode("utf-8")


def _location_line(location):
  return int(location.rsplit(":", 1)[1])


@SETTINGS
@given(st.lists(charades_lines(), min_size=1, max_size=6), st.booleans())
def test_charades_lines_are_kept_skipped_or_named(lines, skip_malformed):
  with tempfile.TemporaryDirectory() as directory:
    fixtures.write_charades(directory, [], ["AAAAA 1.0 2.0##x."], DURATIONS)
    with open(os.path.join(directory, "charades_sta_train.txt"), "wb") as f:
      f.write(b"".join(line + b"\n" for line in lines))
    try:
      train, _ = charades_sta.read_splits(directory, skip_malformed)
    except annotations.AnnotationError as error:
      assert not skip_malformed, error
      assert str(error).startswith("charades_sta_train.txt:"), error
      assert 1 <= int(str(error).split(":")[1]) <= len(lines)
      return
  non_blank = {i for i, line in enumerate(lines, 1)
               if line.decode("utf-8", "surrogateescape").strip()}
  kept = {_location_line(q.query_id) for q in train.queries}
  skipped = [_location_line(loc) for _, loc, _ in train.skipped.entries]
  assert not kept & set(skipped) and len(skipped) == len(set(skipped))
  assert kept | set(skipped) == non_blank
  for query in train.queries:
    duration = train.durations[query.video_id]
    # Times are kept as annotated; what is unusual about them is in the protocol flags
    # (the input pipeline drops or clips by them, docs/data.md).
    assert math.isfinite(duration) and duration > 0
    assert math.isfinite(query.start) and math.isfinite(query.end)
    assert query.flags == protocol.annotation_flags(query.start, query.end, duration)


_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                          st.floats(allow_nan=False, allow_infinity=False), _text,
                          st.sampled_from(["12.5", "nan", "inf"]))
_json_values = st.recursive(_json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_text, inner, max_size=2)), max_leaves=6)
_stamps = st.one_of(_json_values, st.lists(st.one_of(
    st.lists(st.one_of(st.integers(-50, 2000), st.floats(-10, 2000), _json_scalars),
             min_size=0, max_size=3), _json_values), max_size=4))


_times = st.one_of(st.integers(-50, 2000), st.floats(-10, 2000), st.floats(),
                   _json_scalars)


@st.composite
def video_entries(draw):
  """Mostly the right structure with random values; sometimes anything at all."""
  if draw(st.integers(0, 9)) == 0:
    return draw(_json_values)
  count = draw(st.integers(0, 4))
  pairs = st.one_of(st.lists(_times, min_size=2, max_size=2), _stamps)
  entry = {"timestamps": draw(st.lists(pairs, min_size=count, max_size=count)),
           "sentences": draw(st.lists(st.one_of(_text, _text, _json_values), min_size=count,
                                      max_size=count)),
           "fps": draw(st.one_of(st.floats(-1, 60), st.floats(), _json_scalars)),
           "num_frames": draw(st.one_of(st.integers(-10, 5000), st.floats(), _json_scalars)),
           "duration": draw(st.one_of(st.floats(-1, 200), st.floats(), _json_scalars))}
  for key in list(entry):
    if draw(st.integers(0, 19)) == 0:
      del entry[key]
  if draw(st.integers(0, 9)) == 0:
    entry["timestamps"] = draw(_stamps)
  return entry


@SETTINGS
@given(st.dictionaries(st.sampled_from(["v1", "v2", "v 3"]), video_entries(), max_size=3),
       st.booleans(), st.sampled_from(["tacos", "activitynet"]))
def test_json_entries_are_kept_skipped_or_named(videos, skip_malformed, dataset):
  module = {"tacos": tacos, "activitynet": activitynet}[dataset]
  files = ([f"{s}.json" for s in tacos.SPLITS] if dataset == "tacos"
           else [f for _, f in activitynet.SPLITS])
  with tempfile.TemporaryDirectory() as directory:
    for index, name in enumerate(files):
      with open(os.path.join(directory, name), "w") as f:
        json.dump(videos if index == 0 else {}, f)
    try:
      split = module.read_splits(directory, skip_malformed)[0]
    except annotations.AnnotationError as error:
      assert not skip_malformed, error
      assert any(str(error).startswith(f"{files[0]}:{video}") for video in videos), error
      return
  for query in split.queries:
    duration = split.durations[query.video_id]
    # Times are kept as annotated; what is unusual about them is in the protocol flags
    # (the input pipeline drops or clips by them, docs/data.md).
    assert math.isfinite(duration) and duration > 0
    assert math.isfinite(query.start) and math.isfinite(query.end)
    assert query.flags == protocol.annotation_flags(query.start, query.end, duration)
    index = int(query.query_id.rsplit(":", 1)[1])
    original = videos[query.video_id]["sentences"][index]
    assert isinstance(original, str) and query.sentence == original.strip()
  located = [q.query_id for q in split.queries] + [loc for _, loc, _ in split.skipped.entries]
  for video, entry in videos.items():
    prefix = f"{files[0]}:{video}"
    mine = [loc for loc in located if loc == prefix or loc.startswith(prefix + ":")]
    if prefix in mine:  # the whole video was skipped
      assert mine == [prefix]
    else:  # every (timestamp, sentence) pair accounted once
      assert len(mine) == len(set(mine)) == len(entry["timestamps"])
