import numpy as np
import pytest

from data_prep import glove
from tests.testing import shared_path


def _write(path, rows, dim=3):
  with open(path, "w", encoding="utf-8") as f:
    for word, vector in rows:
      f.write(word + " " + " ".join(str(x) for x in vector) + "\n")
  return str(path)


def test_exact_match_beats_case_folded_and_first_fold_wins(tmp_path):
  path = _write(tmp_path / "g.txt", [
      ("The", [1, 1, 1]),          # folded "the", seen first
      ("Person", [2, 2, 2]),
      ("the", [3, 3, 3]),          # exact "the" wins over "The"
      ("PERSON", [4, 4, 4]),       # a later fold of "person": ignored
      ("a b", [5, 5, 5]),          # a word with a space inside
      (" ", [6, 6, 6]),            # the word is a single space
      ("unused", [7, 7, 7]),
  ])
  vectors, dim = glove.read_glove(path, {"the", "person", "a b", "missing"})
  assert dim == 3
  assert set(vectors) == {"the", "person", "a b"}
  np.testing.assert_array_equal(vectors["the"], [3, 3, 3])
  np.testing.assert_array_equal(vectors["person"], [2, 2, 2])
  np.testing.assert_array_equal(vectors["a b"], [5, 5, 5])


def test_embedding_matrix_rows_follow_tokens(tmp_path):
  matrix = glove.embedding_matrix(["<pad>", "x", "y"], {"y": np.array([1.0, 2.0])}, 2)
  np.testing.assert_array_equal(matrix, [[0, 0], [0, 0], [1, 2]])


def test_bad_lines_are_named(tmp_path):
  path = _write(tmp_path / "g.txt", [("ok", [1, 2, 3]), ("bad", [1, "x", 3])])
  with pytest.raises(glove.GloveError, match=r"g.txt:2: the last 3 fields"):
    glove.read_glove(path, {"bad"})
  (tmp_path / "empty.txt").write_text("")
  with pytest.raises(glove.GloveError, match="not in the GloVe text format"):
    glove.read_glove(str(tmp_path / "empty.txt"), {"x"})


@pytest.mark.shared_data
def test_real_glove_subset_covers_charades():
  path = shared_path("glove", "glove.840B.300d.charades_sta_subset.txt")
  vectors, dim = glove.read_glove(path, {"person", "opens", "door", ".", "'s", "n't", " "})
  assert dim == 300
  assert {"person", "opens", "door", "'s", "n't", " "} <= set(vectors)
  assert all(v.shape == (300,) for v in vectors.values())
