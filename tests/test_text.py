import numpy as np
import pytest
import tensorflow as tf

from sscs_tf.data import text

SENTENCES = ["A person's opening the DOOR.", "They don’t  sit,then LEAVE!", "Straße “Café”",
             "", "  ...  "]
TOKENS = [["a", "person", "'s", "opening", "the", "door"],
          ["they", "do", "n't", "sit", "then", "leave"],
          ["strasse", "café"], [], []]


def test_tokenize_case_folds_and_splits_punctuation():
  assert text.tokenize_py(SENTENCES) == TOKENS


def test_tokenize_eager_equals_tf_data_map():
  eager = text.tokenize(SENTENCES).to_list()
  dataset = tf.data.Dataset.from_tensor_slices(SENTENCES).map(
      lambda s: text.tokenize(s[None]).flat_values)
  assert [list(t.numpy()) for t in dataset] == eager


def test_vocabulary_build_order_and_oov():
  vocab = text.Vocabulary.build([["b", "a", "b"], ["c", "b", "a"]], extra_tokens=["z", "a"])
  assert vocab.tokens == ["<pad>", "<unk>", "<eos>", "b", "a", "c", "z"]
  assert vocab.encode(["a", "never", "z"]) == [4, text.UNK_ID, 6]
  assert len(text.Vocabulary.build([["x", "y", "x"]], min_count=2)) == 4


def test_vocabulary_save_load_and_validation(tmp_path):
  vocab = text.Vocabulary.build([TOKENS[0]])
  vocab.save(str(tmp_path / "vocab.txt"))
  assert text.Vocabulary.load(str(tmp_path / "vocab.txt")).tokens == vocab.tokens
  with pytest.raises(ValueError, match="must start with"):
    text.Vocabulary(["a", "b"])
  with pytest.raises(ValueError, match="Duplicate"):
    text.Vocabulary(list(text.RESERVED_TOKENS) + ["a", "a"])
  with pytest.raises(ValueError, match="whitespace"):
    text.Vocabulary(list(text.RESERVED_TOKENS) + ["a b"])


def test_sentence_encoder_matches_python_path():
  vocab = text.Vocabulary.build(TOKENS[:2])
  encoder = text.SentenceEncoder(vocab)
  ids, lengths = encoder(tf.constant(SENTENCES[:3]))
  expected = [vocab.encode(t) for t in text.tokenize_py(SENTENCES[:3])]
  assert lengths.numpy().tolist() == [6, 6, 2]
  for row, want in zip(ids.numpy(), expected):
    assert row[:len(want)].tolist() == want and not row[len(want):].any()
  assert expected[2] == [text.UNK_ID, text.UNK_ID]
  short_ids, short_lengths = text.SentenceEncoder(vocab, max_length=3)(SENTENCES[:2])
  np.testing.assert_array_equal(short_ids.numpy(), ids.numpy()[:2, :3])
  assert short_lengths.numpy().tolist() == [3, 3]
  traced = tf.function(encoder, input_signature=[tf.TensorSpec([None], tf.string)])
  np.testing.assert_array_equal(traced(tf.constant(SENTENCES[:3]))[0].numpy(), ids.numpy())
