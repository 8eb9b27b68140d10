import numpy as np
import pytest
import tensorflow as tf

from sscs_tf.data import example

QUERIES = [example.QueryRecord("f.txt:1", "a person opens the door.", 0.5, 3.25, [5, 6, 7]),
           example.QueryRecord("f.txt:9", "closes it", 4.0, 9.0, [8]),
           example.QueryRecord("f.txt:12", "x", 1.0, 2.0, [])]


@pytest.mark.parametrize("dtype, tol", [("float32", 0.0), ("float16", 1e-3)])
def test_round_trip(dtype, tol):
  features = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
  record = example.encode_video("AAAAA", 12.5, features, QUERIES, dtype)
  parsed = example.parse_video(tf.constant(record), 5, dtype)
  assert parsed["video_id"].numpy() == b"AAAAA"
  assert parsed["duration"].numpy() == 12.5
  np.testing.assert_allclose(parsed["features"].numpy(), features, rtol=tol, atol=tol)
  assert parsed["features"].dtype == tf.float32
  assert parsed["query_ids"].numpy().tolist() == [b"f.txt:1", b"f.txt:9", b"f.txt:12"]
  assert parsed["sentences"].numpy()[1] == b"closes it"
  np.testing.assert_array_equal(parsed["starts"].numpy(), [0.5, 4.0, 1.0])
  np.testing.assert_array_equal(parsed["ends"].numpy(), [3.25, 9.0, 2.0])
  assert parsed["word_ids"].to_list() == [[5, 6, 7], [8], []]


def test_parse_inside_dataset_map_and_checks_meta():
  record = example.encode_video("V", 3.0, np.ones((2, 4), np.float32), QUERIES[:1])
  dataset = tf.data.Dataset.from_tensors(record).map(lambda r: example.parse_video(r, 4))
  element = next(iter(dataset))
  np.testing.assert_array_equal(element["features"].numpy(), np.ones((2, 4)))
  with pytest.raises(tf.errors.InvalidArgumentError, match="feature_dim differs"):
    example.parse_video(tf.constant(record), 3)
  with pytest.raises(tf.errors.InvalidArgumentError, match="feature_dtype differs"):
    example.parse_video(tf.constant(record), 4, "float16")


def test_encode_rejects_bad_input():
  with pytest.raises(ValueError, match="features must be"):
    example.encode_video("V", 1.0, np.ones((0, 4)), QUERIES)
  with pytest.raises(ValueError, match="at least one query"):
    example.encode_video("V", 1.0, np.ones((2, 4)), [])
  with pytest.raises(ValueError, match="feature_dtype"):
    example.encode_video("V", 1.0, np.ones((2, 4)), QUERIES, "int8")
