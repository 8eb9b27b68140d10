"""The one tokenizer and vocabulary of the project.

Data preparation, the input pipeline and the exported serving signature all call
`tokenize` and `Vocabulary` from here, so a sentence becomes the same word ids everywhere.

Tokenization (tensorflow-text):
  1. Unicode case folding (NFKC_Casefold, `case_fold_utf8`): "DOOR", "Door" -> "door".
  2. Typographic apostrophes become ASCII ones.
  3. Split on whitespace and on every punctuation / symbol character. English clitics are
     kept as tokens of their own, as GloVe's tokenizer produced them ("person's" -> "person",
     "'s"; "don't" -> "do", "n't"); every other punctuation or symbol character is dropped.
     The reference 2D-TAN splits on whitespace only, so "movements." misses GloVe; LGI
     strips punctuation. Dropping it also keeps sentences short (LGI truncates at 10 words).

Ids: 0 is padding, 1 is any out-of-vocabulary word, 2 ends a sentence (caption decoder).
"""

import collections
from typing import Iterable, Sequence

import tensorflow as tf
import tensorflow_text as tf_text

from sscs_tf.core.fileio import atomic_write_text

PAD, UNK, EOS = "<pad>", "<unk>", "<eos>"
RESERVED_TOKENS = (PAD, UNK, EOS)
PAD_ID, UNK_ID, EOS_ID = 0, 1, 2

_CLITIC = r"'(?:s|re|ve|ll|d|m)\b|n't\b"
_DELIMITERS = _CLITIC + r"|\s+|[\p{P}\p{S}]"


def tokenize(sentences) -> tf.RaggedTensor:
  """Splits a batch of sentences into tokens.

  Args:
    sentences: string tensor `[batch]` (or anything convertible to one).

  Returns:
    A `tf.RaggedTensor` of strings, `[batch, (num_tokens)]`. Works eagerly, in
    `tf.function` and in `tf.data.Dataset.map`.
  """
  sentences = tf.convert_to_tensor(sentences, dtype=tf.string)
  folded = tf_text.case_fold_utf8(sentences)
  folded = tf.strings.regex_replace(folded, "\u2019|\u2018|`", "'")
  return tf_text.regex_split(folded, _DELIMITERS, keep_delim_regex_pattern=_CLITIC)


def tokenize_py(sentences: Sequence[str], batch_size: int = 4096) -> list[list[str]]:
  """`tokenize` for Python strings, in batches; returns lists of `str` tokens."""
  out = []
  for begin in range(0, len(sentences), batch_size):
    tokens = tokenize(list(sentences[begin:begin + batch_size])).to_list()
    out.extend([t.decode("utf-8") for t in row] for row in tokens)
  return out


class Vocabulary:
  """Maps tokens to ids; `tokens[i]` has id `i`, the reserved tokens come first."""

  def __init__(self, tokens: Sequence[str]):
    tokens = list(tokens)
    if tuple(tokens[:len(RESERVED_TOKENS)]) != RESERVED_TOKENS:
      raise ValueError(f"A vocabulary must start with {RESERVED_TOKENS}, got {tokens[:3]}.")
    duplicates = [t for t, n in collections.Counter(tokens).items() if n > 1]
    if duplicates:
      raise ValueError(f"Duplicate vocabulary tokens: {duplicates[:5]}.")
    for token in tokens:
      if not token or any(c.isspace() for c in token):
        raise ValueError(f"Vocabulary token {token!r} is empty or holds whitespace.")
    self.tokens = tokens
    self._ids = {t: i for i, t in enumerate(tokens)}

  def __len__(self) -> int:
    return len(self.tokens)

  @classmethod
  def build(cls, token_lists: Iterable[Sequence[str]], min_count: int = 1,
            extra_tokens: Iterable[str] = ()) -> "Vocabulary":
    """Tokens seen at least `min_count` times, most frequent first, then `extra_tokens`."""
    counts = collections.Counter(t for tokens in token_lists for t in tokens)
    kept = [t for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            if n >= min_count and t not in RESERVED_TOKENS]
    seen = set(kept)
    extra = sorted(t for t in set(extra_tokens) if t not in seen and t not in RESERVED_TOKENS)
    return cls(list(RESERVED_TOKENS) + kept + extra)

  @classmethod
  def load(cls, path: str) -> "Vocabulary":
    with tf.io.gfile.GFile(path, "r") as f:
      return cls(line.rstrip("\n") for line in f)

  def save(self, path: str) -> None:
    atomic_write_text(path, "".join(t + "\n" for t in self.tokens))

  def encode(self, tokens: Sequence[str]) -> list[int]:
    return [self._ids.get(t, UNK_ID) for t in tokens]

  def lookup_table(self) -> tf.lookup.StaticHashTable:
    """In-graph token -> id table with `UNK_ID` for unknown tokens."""
    init = tf.lookup.KeyValueTensorInitializer(
        tf.constant(self.tokens), tf.range(len(self.tokens), dtype=tf.int64))
    return tf.lookup.StaticHashTable(init, default_value=UNK_ID)


class SentenceEncoder(tf.Module):
  """Raw sentences -> padded word ids, in-graph (used by the serving signature).

  Args:
    vocabulary: the training `Vocabulary`.
    max_length: truncate to this many words (0 keeps every word).
  Call: `sentences [B] string -> (word_ids [B, L] int32, num_words [B] int32)`.
  """

  def __init__(self, vocabulary: Vocabulary, max_length: int = 0, name=None):
    super().__init__(name=name)
    self.table = vocabulary.lookup_table()
    self.max_length = int(max_length)

  def __call__(self, sentences):
    tokens = tokenize(sentences)
    if self.max_length:
      tokens = tokens[:, :self.max_length]
    ids = tf.cast(tf.ragged.map_flat_values(self.table.lookup, tokens), tf.int32)
    return ids.to_tensor(default_value=PAD_ID), tf.cast(ids.row_lengths(), tf.int32)

