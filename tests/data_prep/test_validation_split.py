import pytest

from data_prep import annotations


def _split(num_videos=20):
  queries = [annotations.Query(f"V{v:02d}", f"train.txt:{v}:{k}", "a person sits.", 0.0, 1.0)
             for v in range(num_videos) for k in range(1 + v % 3)]
  durations = {f"V{v:02d}": 10.0 for v in range(num_videos)}
  skipped = annotations.SkipLog()
  skipped.add("start >= end", "train.txt:99")
  return annotations.SplitAnnotations("train", queries, durations, skipped)


def test_carved_by_video_seeded_and_recorded():
  rest, val = annotations.carve_validation(_split(), 0.25, seed=0)
  rest_videos = {q.video_id for q in rest.queries}
  val_videos = {q.video_id for q in val.queries}
  assert len(val_videos) == 5 and len(rest_videos) == 15 and not rest_videos & val_videos
  assert len(rest.queries) + len(val.queries) == len(_split().queries)
  assert set(val.durations) == val_videos and set(rest.durations) == rest_videos
  assert (val.name, val.origin) == ("val", dict(carved_from="train", fraction=0.25, seed=0,
                                                 videos=5))
  # The source file's drops stay with the training split.
  assert len(rest.skipped) == 1 and len(val.skipped) == 0
  again = annotations.carve_validation(_split(), 0.25, seed=0)[1]
  other = annotations.carve_validation(_split(), 0.25, seed=1)[1]
  assert {q.video_id for q in again.queries} == val_videos
  assert {q.video_id for q in other.queries} != val_videos


def test_the_draw_does_not_depend_on_the_file_order():
  split = _split()
  reordered = _split()
  reordered.queries = reordered.queries[::-1]
  assert ({q.video_id for q in annotations.carve_validation(split, 0.3, 7)[1].queries} ==
          {q.video_id for q in annotations.carve_validation(reordered, 0.3, 7)[1].queries})


@pytest.mark.parametrize("fraction, num_videos, message", [
    (0.0, 20, r"must be in \(0, 1\)"), (1.0, 20, r"must be in \(0, 1\)"),
    (0.5, 1, "1 videos cannot give a validation split"),
])
def test_bad_fractions_are_named(fraction, num_videos, message):
  with pytest.raises(ValueError, match=message):
    annotations.carve_validation(_split(num_videos), fraction, seed=0)
