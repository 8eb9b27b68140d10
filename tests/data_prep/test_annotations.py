import pytest

from data_prep import annotations, activitynet, charades_sta, tacos
from sscs_tf.data import protocol
from tests.data_prep import fixtures

DURATIONS = {"AAAAA": 30.0, "BBBBB": 20.5, "CCCCC": 10.0, "DDDDD": 12.0}


def _charades(tmp_path, train_lines, test_lines=("CCCCC 1.0 2.0##x.",)):
  fixtures.write_charades(tmp_path, list(train_lines), list(test_lines), DURATIONS)
  return charades_sta.read_splits(str(tmp_path))


def read_as(split, name):
  """(video, start, end) of the queries a protocol keeps, 2D-TAN's clipped."""
  rows = []
  for q in split.queries:
    if protocol.keeps(q.flags, name):
      duration = split.durations[q.video_id]
      clip = name == "tan"
      rows.append((q.video_id, max(q.start, 0.0) if clip else q.start,
                   min(q.end, duration) if clip else q.end))
  return rows


def test_charades_rules(tmp_path):
  train, test = _charades(tmp_path, [
      "AAAAA 0.0 6.9##a person is putting a book on a shelf.",
      "AAAAA 8.0 7.0##reversed interval.",          # start > end: dropped
      "BBBBB 3.0 3.0##zero length.",                # start == end: dropped
      "BBBBB 18.0 25.0##ends after the video.",      # end clipped to 20.5
      "BBBBB 21.0 25.0##starts after the video.",    # nothing left: dropped
      "",                                            # blank line: no query
  ])
  # Every query is kept with its annotated times; each protocol reads its own rule.
  assert [(q.video_id, q.start, q.end) for q in train.queries] == [
      ("AAAAA", 0.0, 6.9), ("AAAAA", 8.0, 7.0), ("BBBBB", 3.0, 3.0), ("BBBBB", 18.0, 25.0),
      ("BBBBB", 21.0, 25.0)]
  assert read_as(train, "tan") == [("AAAAA", 0.0, 6.9), ("BBBBB", 18.0, 20.5)]
  assert read_as(train, "lgi") == [(q.video_id, q.start, q.end) for q in train.queries]
  assert train.queries[0].sentence == "a person is putting a book on a shelf."
  assert train.queries[3].query_id == "charades_sta_train.txt:4"
  assert [q.flags for q in train.queries] == [
      0, protocol.START_NOT_BEFORE_END, protocol.START_NOT_BEFORE_END,
      protocol.END_PAST_DURATION, protocol.END_PAST_DURATION | protocol.START_AT_OR_PAST_DURATION]
  assert train.protocol_summary("tan") == {"queries": 2, "videos": 2, "notes": {
      "dropped: start >= end": 2, "dropped: start at or past the video's end": 1,
      "end clipped to the duration": 1}}
  assert train.protocol_summary("lgi") == {"queries": 5, "videos": 2, "notes": {
      "kept: end past the duration": 2, "kept: start >= end": 2,
      "kept: start at or past the video's end": 1}}
  assert len(train.skipped) == 0
  assert train.durations == {"AAAAA": 30.0, "BBBBB": 20.5}
  assert len(test.queries) == 1 and test.name == "test"


@pytest.mark.parametrize("line, message", [
    ("AAAAA 1.0##no end time.", "expected 'VID start end##sentence'"),
    ("AAAAA 1.0 2.0 no separator", "expected 'VID start end##sentence'"),
    ("AAAAA one 2.0##words as times.", "are not numbers"),
    ("ZZZZZ 1.0 2.0##unknown video.", "has no duration"),
])
def test_charades_malformed_line_names_file_and_line(tmp_path, line, message):
  with pytest.raises(annotations.AnnotationError, match=message) as info:
    _charades(tmp_path, ["AAAAA 0.0 1.0##fine.", line])
  assert "charades_sta_train.txt:2" in str(info.value)


def test_charades_skip_malformed_reports_them(tmp_path):
  fixtures.write_charades(tmp_path, ["AAAAA 1.0##broken.", "AAAAA 0.0 1.0##fine."],
                          ["CCCCC 1.0 2.0##x."], DURATIONS)
  train, _ = charades_sta.read_splits(str(tmp_path), skip_malformed=True)
  assert len(train.queries) == 1
  assert train.skipped.entries[0][:2] == ("malformed annotation", "charades_sta_train.txt:1")


def test_charades_missing_or_bad_csv(tmp_path):
  fixtures.write_charades(tmp_path, ["AAAAA 0.0 1.0##x."], [], DURATIONS)
  (tmp_path / "Charades_v1_test.csv").write_text(fixtures.CSV_HEADER + "QQQQQ,,,,,,,,,,long\n")
  with pytest.raises(annotations.AnnotationError, match=r"Charades_v1_test.csv:2.*QQQQQ"):
    charades_sta.read_splits(str(tmp_path))
  (tmp_path / "Charades_v1_test.csv").unlink()
  with pytest.raises(annotations.AnnotationError, match="Charades_v1_test.csv does not exist"):
    charades_sta.read_splits(str(tmp_path))


def _tacos_entry(fps=25.0, num_frames=500, stamps=((0, 100), (250, 600), (300, 300)),
                 sentences=("He took out a pan.", "He washed it.", "Zero length.")):
  return {"timestamps": [list(s) for s in stamps], "sentences": list(sentences),
          "fps": fps, "num_frames": num_frames}


def test_tacos_frames_to_seconds(tmp_path):
  for split in tacos.SPLITS:
    fixtures.write_json(tmp_path / f"{split}.json", {"s13-d21.avi": _tacos_entry()})
  train = tacos.read_splits(str(tmp_path))[0]
  # duration 500 / 25 = 20 s; 250..600 frames -> 10 s .. 24 s clipped to 20 s.
  assert [(q.start, q.end) for q in train.queries] == [(0.0, 4.0), (10.0, 24.0), (12.0, 12.0)]
  assert [r[1:] for r in read_as(train, "tan")] == [(0.0, 4.0), (10.0, 20.0)]
  assert train.durations == {"s13-d21.avi": 20.0}
  assert train.protocol_summary("tan")["notes"] == {"dropped: start >= end": 1,
                                                    "end clipped to the duration": 1}
  assert train.queries[1].query_id == "train.json:s13-d21.avi:1"


def test_tacos_malformed_entries(tmp_path):
  bad = _tacos_entry(sentences=("only one",))
  fixtures.write_json(tmp_path / "train.json", {"s1.avi": bad})
  with pytest.raises(annotations.AnnotationError, match=r"train.json:s1.avi: 3 timestamps"):
    annotations.read_tacos(str(tmp_path / "train.json"), "train")
  no_fps = _tacos_entry()
  del no_fps["fps"]
  fixtures.write_json(tmp_path / "train.json", {"s1.avi": no_fps})
  with pytest.raises(annotations.AnnotationError, match=r"s1.avi: video entry unreadable"):
    annotations.read_tacos(str(tmp_path / "train.json"), "train")
  (tmp_path / "train.json").write_text("{not json")
  with pytest.raises(annotations.AnnotationError, match="train.json: not valid JSON"):
    annotations.read_tacos(str(tmp_path / "train.json"), "train")


def test_activitynet_seconds_and_clipping(tmp_path):
  entry = {"duration": 82.73, "timestamps": [[0.83, 19.86], [-1.0, 5.0], [60.0, 90.0],
                                             [34.77, 34.77], ["x", 2]],
           "sentences": ["A woman dances.", " Negative start.", "Past the end.", "Empty.",
                         "Bad."]}
  for _, name in activitynet.SPLITS:
    fixtures.write_json(tmp_path / name, {"v_abc": entry})
  with pytest.raises(annotations.AnnotationError, match=r"train.json:v_abc:4: timestamp"):
    activitynet.read_splits(str(tmp_path))
  train, val, test = activitynet.read_splits(str(tmp_path), skip_malformed=True)
  assert [r[1:] for r in read_as(train, "tan")] == [(0.83, 19.86), (0.0, 5.0), (60.0, 82.73)]
  assert [r[1:] for r in read_as(train, "lgi")] == [(0.83, 19.86), (-1.0, 5.0), (60.0, 90.0),
                                                    (34.77, 34.77)]
  assert train.queries[1].sentence == "Negative start."
  assert train.protocol_summary("tan")["notes"] == {
      "start clipped to 0": 1, "end clipped to the duration": 1, "dropped: start >= end": 1}
  assert train.skipped.counts() == {"malformed annotation": 1}
  assert (val.name, test.name) == ("val", "test")
  assert val.queries[0].query_id == "val_1.json:v_abc:0"


def test_charades_json_durations_as_vslnet_ships_them(tmp_path):
  (tmp_path / "charades_sta_train.txt").write_text("AAAAA 1.0 5.0##a person sits.\n")
  (tmp_path / "charades_sta_test.txt").write_text("BBBBB 0.0 9.5##a person opens a door.\n")
  (tmp_path / "charades.json").write_text(
      '{"AAAAA": {"subset": "training", "duration": 10.25, "actions": []},'
      ' "BBBBB": {"subset": "testing", "duration": 8.5, "actions": []}}')
  train, test = charades_sta.read_splits(str(tmp_path))
  assert train.durations == {"AAAAA": 10.25} and test.durations == {"BBBBB": 8.5}
  assert test.queries[0].flags == protocol.END_PAST_DURATION


@pytest.mark.parametrize("text, message", [
    ('{"AAAAA": {"duration": -3}}', "video 'AAAAA' has duration -3"),
    ('{"AAAAA": {"subset": "training"}}', "video 'AAAAA' has duration None"),
    ('{"AAAAA": ', "charades.json:1: not JSON"),
    ('[1, 2]', "expected an object of videos, got list"),
])
def test_charades_json_bad_durations_are_named(tmp_path, text, message):
  (tmp_path / "charades.json").write_text(text)
  with pytest.raises(annotations.AnnotationError, match=message):
    annotations.read_charades_json_durations(str(tmp_path / "charades.json"))
