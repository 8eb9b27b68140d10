"""VSLNet's losses, targets, decoding, serving head, scorer and importer on hand-computed
cases (the parity with the authors' code is tests/models/test_vslnet_parity.py)."""

import json
import math
import os

import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from configs import vslnet_charades
from sscs_tf import models
from sscs_tf.data import preprocess, protocol
from sscs_tf.models import vslnet, vslnet_import, vslnet_layers, vslnet_spans

GOLDENS = os.path.join(os.path.dirname(__file__), "goldens", "vslnet.npz")
NEG = -1e30


def test_span_cross_entropy_by_hand():
  start = np.array([[0.0, math.log(3.0), NEG]], np.float32)
  end = np.array([[math.log(2.0), 0.0, NEG]], np.float32)
  got = vslnet.span_cross_entropy_per_example(start, end, np.array([1]), np.array([0]))
  # -log(3 / 4) - log(2 / 3); the masked step adds nothing to either softmax.
  np.testing.assert_allclose(got, [math.log(4 / 3) + math.log(3 / 2)], rtol=1e-6)


def test_highlight_loss_shares_average_to_the_batch_value():
  logits = np.zeros((2, 3), np.float32)
  labels = np.array([[1, 0, 0], [1, 0, 0]], np.float32)
  mask = np.array([[1, 1, 0], [1, 0, 0]], np.float32)
  got = vslnet.highlight_loss_per_example(logits, labels, mask).numpy()
  # Per step log 2, weight 2 inside and 1 outside: sums 3 log 2 and 2 log 2 over 3 valid
  # steps; each share is B = 2 times its sum over 3, and their mean is the batch value.
  np.testing.assert_allclose(got, [2 * math.log(2), 4 / 3 * math.log(2)], rtol=1e-6)
  np.testing.assert_allclose(got.mean(), 5 / 3 * math.log(2), rtol=1e-6)


def test_grounding_loss_terms_are_weighted():
  outputs = {"start_logits": np.zeros((2, 3), np.float32),
             "end_logits": np.zeros((2, 3), np.float32),
             "highlight_logits": np.zeros((2, 3), np.float32),
             "clip_mask": np.ones((2, 3), np.float32),
             "regularized_square_sum": np.full([2], 10.0, np.float32)}
  batch = {"start_index": np.array([0, 1]), "end_index": np.array([2, 2]),
           "highlight_labels": np.zeros((2, 3), np.float32)}
  config = ml_collections.ConfigDict(dict(highlight_lambda=5.0, l2_weight=0.5))
  got = {k: np.asarray(v) for k, v in vslnet.grounding_loss(outputs, batch, config).items()}
  np.testing.assert_allclose(got["span"], [2 * math.log(3)] * 2, rtol=1e-6)
  np.testing.assert_allclose(got["highlight"], [5 * math.log(2)] * 2, rtol=1e-6)
  np.testing.assert_allclose(got["l2"], [5.0, 5.0])
  assert tuple(got) == models.get("vslnet").loss_terms


@pytest.mark.parametrize("start, end, expected", [
    (2.0, 6.0, (1, 2)),   # steps of 2 s: [2, 6] is steps 1-2 exactly
    (0.0, 10.0, (0, 4)),
    (1.0, 2.0, (0, 0)),   # [0, 2] has IoU 0.5, the best
    (3.0, 3.0, (0, 0)),   # empty: every IoU 0, the first pair
    (7.2, 9.9, (4, 4)),   # [8, 10]: 1.9 / 2.8 beats [6, 10]: 2.7 / 4
])
def test_time_to_index_by_hand(start, end, expected):
  s, e = vslnet_spans.time_to_index(tf.constant([start]), tf.constant([end]),
                                    tf.constant([10.0]), tf.constant([5]), 8)
  assert (int(s[0]), int(e[0])) == expected


@pytest.mark.parametrize("start, end, steps, expected", [
    (0, 4, 10, (0, 4)),     # 0.1 x 5 = 0.5 rounds to 0
    (10, 24, 40, (8, 26)),  # 1.5 rounds to 2
    (0, 24, 30, (0, 26)),   # 2.5 rounds to 2 (halves to even), clipped at 0
    (27, 29, 30, (27, 29)),  # 0.3 rounds to 0
    (20, 29, 30, (19, 29)),  # 1, clipped at the last valid step
])
def test_highlight_labels_by_hand(start, end, steps, expected):
  labels = vslnet_spans.highlight_labels(tf.constant([start]), tf.constant([end]),
                                         tf.constant([steps]), 40, 0.1).numpy()[0]
  want = np.zeros(40, np.float32)
  want[expected[0]:expected[1] + 1] = 1.0
  np.testing.assert_array_equal(labels, want)


def _logits():
  # Start prefers step 2, end prefers step 1: the best valid pair (s <= e) is chosen.
  start = np.log(np.array([[0.1, 0.25, 0.55, 0.1, 1e-30]], np.float32))
  end = np.log(np.array([[0.1, 0.5, 0.3, 0.1, 1e-30]], np.float32))
  start[0, 4] = end[0, 4] = NEG
  return start, end


def _upper_outer(start, end):
  p = np.exp(start - start.max()) / np.exp(start - start.max()).sum()
  q = np.exp(end - end.max()) / np.exp(end - end.max()).sum()
  return np.triu(np.outer(p[0], q[0]))


def test_decode_picks_the_best_pair_with_start_before_end():
  start, end = _logits()
  s, e, p = vslnet_spans.decode(start, end)
  # Pairs: (2, 2) 0.165, (1, 1) 0.125, (1, 2) 0.075, (2, 3) 0.055; (2, 1) 0.275 is below
  # the diagonal.
  assert (int(s[0]), int(e[0])) == (2, 2)
  np.testing.assert_allclose(p, [0.165], rtol=1e-5)


def test_span_head_ranks_the_pairs_in_seconds():
  start, end = _logits()
  outer = _upper_outer(start, end)
  segments, scores = vslnet_spans.SpanHead(top_k=3)(
      {"start_logits": start, "end_logits": end,
       "clip_mask": np.array([[1, 1, 1, 1, 0]], np.float32)}, tf.constant([8.0]))
  order = np.argsort(-outer.ravel(), kind="stable")[:3]
  np.testing.assert_allclose(scores[0], outer.ravel()[order], rtol=1e-5)
  # 4 valid steps of 2 s: (2, 2) -> [4, 6], (1, 1) -> [2, 4], (1, 2) -> [2, 6].
  np.testing.assert_allclose(segments[0], [[4, 6], [2, 4], [2, 6]], rtol=1e-6)
  np.testing.assert_allclose(scores[0], [0.165, 0.125, 0.075], rtol=1e-5)


def test_scorer_reads_decoded_steps_as_seconds():
  start, end = _logits()
  scorer = vslnet.Scorer(ml_collections.ConfigDict(dict(iou_thresholds=[0.3, 0.5, 0.7])))
  out = scorer.outputs_to_numpy({"start_logits": np.repeat(start, 2, 0),
                                 "end_logits": np.repeat(end, 2, 0),
                                 "clip_mask": np.array([[1, 1, 1, 1, 0]] * 2, np.float32)})
  # Both decode (2, 2): [4, 6] of an 8 s video; ground truths [4, 6] and [3, 6].
  scorer.update({k: np.asarray(v) for k, v in out.items()},
                {"duration": np.array([8.0, 8.0], np.float32),
                 "start": np.array([4.0, 3.0], np.float32),
                 "end": np.array([6.0, 6.0], np.float32),
                 "query_id": np.array([b"a", b"b"])})
  table = scorer.result()
  assert table["R1@0.5"] == 1.0 and table["R1@0.7"] == 0.5
  assert table["mIoU"] == pytest.approx((1.0 + 2 / 3) / 2)
  assert [q["segments"] for q in scorer.per_query()] == [[[4.0, 6.0]]] * 2


def test_vslnet_protocol_keeps_every_query_and_clips_its_times():
  flags = [protocol.annotation_flags(s, e, 10.0) for s, e in ((-1, 4), (3, 12), (5, 2))]
  keep, starts, ends = protocol.apply(tf.constant([-1.0, 3.0, 5.0]),
                                      tf.constant([4.0, 12.0, 2.0]), tf.constant(10.0),
                                      tf.constant(flags, tf.int64), "vslnet")
  assert keep.numpy().all()
  np.testing.assert_array_equal(starts, [0.0, 3.0, 5.0])
  np.testing.assert_array_equal(ends, [4.0, 10.0, 2.0])
  summary = protocol.summary(flags, ["a", "b", "c"], "vslnet")
  assert summary == {"queries": 3, "videos": 3, "notes": {
      "end clipped to the duration": 1, "kept: start >= end": 1, "start clipped to 0": 1}}
  assert protocol.COUNTED_AS["vslnet"] == "lgi"  # meta.json counts it as LGI's rule


@pytest.mark.parametrize("rows", [3, 8, 20])
def test_pad_or_average_eagerly_and_in_tf_data(rows):
  features = np.arange(rows * 2, dtype=np.float32).reshape(rows, 2)
  eager, mask = preprocess.resample(features, "pad_or_average", 8)
  mapped = next(iter(tf.data.Dataset.from_tensors(features).map(
      lambda f: preprocess.resample(f, "pad_or_average", 8))))
  np.testing.assert_array_equal(mapped[0], eager)
  if rows <= 8:
    np.testing.assert_array_equal(np.asarray(eager)[:rows], features)
    assert not np.asarray(eager)[rows:].any()
    np.testing.assert_array_equal(mask, np.arange(8) < rows)
  else:
    np.testing.assert_array_equal(eager, preprocess.average_to_fixed_length(features, 8))
    assert np.all(mask == 1.0)


def test_unknown_sampling_is_named():
  with pytest.raises(ValueError, match="data.sampling must be one of"):
    preprocess.resample(np.zeros((3, 2), np.float32), "nearest", 8)


def _reference_variables():
  data = np.load(GOLDENS)
  prefix = "rnn/param/"
  return {k[len(prefix):]: data[k] for k in data if k.startswith(prefix)}


def _model(**overrides):
  fields = dict(feature_dim=6, vocab_size=9, embedding_dim=8, char_vocab_size=11, char_dim=5,
                hidden_size=16, num_heads=2, max_position_length=12)
  fields.update(overrides)
  return vslnet.VSLNet(**fields)


def test_import_names_a_missing_variable():
  variables = _reference_variables()
  del variables["context_query_concat/weight"]
  with pytest.raises(ValueError, match="no variable 'context_query_concat/weight'"):
    vslnet_import.load_reference_weights(_model(), variables)


def test_import_names_a_misshapen_variable():
  variables = _reference_variables()
  kernel = variables["video_conv1d/kernel"]
  variables["video_conv1d/kernel"] = np.transpose(kernel, (0, 2, 1))
  with pytest.raises(ValueError, match=r"'video_conv1d/kernel' has shape \(1, 16, 6\)"):
    vslnet_import.load_reference_weights(_model(), variables)
  variables = _reference_variables()
  with pytest.raises(ValueError, match="'word_embeddings/word_table' has shape"):
    vslnet_import.load_reference_weights(_model(vocab_size=12), variables)


def test_import_names_a_variable_of_another_configuration():
  with pytest.raises(ValueError, match="holds 'conditioned_predictor/end_rnn"):
    vslnet_import.load_reference_weights(_model(predictor="transformer"),
                                         _reference_variables())


def test_import_reads_a_tf1_checkpoint(tmp_path):
  """A checkpoint written by tf.compat.v1's Saver, as the authors' main.py writes them,
  with the optimizer's slots beside the weights."""
  variables = _reference_variables()
  graph = tf.Graph()
  with graph.as_default():
    made = [tf.compat.v1.Variable(v, name=k) for k, v in variables.items()]
    made.append(tf.compat.v1.Variable(np.zeros(3, np.float32), name="video_conv1d/kernel/adam_m"))
    made.append(tf.compat.v1.Variable(7, name="global_step"))
    saver = tf.compat.v1.train.Saver(made)
    with tf.compat.v1.Session(graph=graph) as session:
      session.run(tf.compat.v1.global_variables_initializer())
      prefix = saver.save(session, str(tmp_path / "vslnet_7.ckpt"))
  model = _model()
  vslnet_import.load_reference_weights(model, vslnet_import.read_checkpoint(prefix), prefix)
  np.testing.assert_array_equal(model.concat.pool_weight,
                                variables["context_query_concat/weight"])
  np.testing.assert_array_equal(model.word_table[2:], variables["word_embeddings/word_table"])
  assert not np.asarray(model.word_table[:2]).any()


@pytest.mark.parametrize("predictor, index", [("rnn", 0), ("transformer", 1)])
def test_charades_config_builds_the_published_model(predictor, index, tmp_path):
  config = vslnet_charades.get_config()
  assert (config.model.hidden_size, config.model.num_heads, config.model.dropout,
          config.model.max_position_length) == (128, 8, 0.2, 128)
  assert (config.loss.highlight_lambda, config.data.batch_size, config.optim.clip_norm,
          config.optim.learning_rate) == (5.0, 16, 1.0, 1e-4)
  assert models.clip_count(config.model) == 128
  np.save(tmp_path / "glove.npy", np.zeros((12, 300), np.float32))
  fields = dict(config.model)
  # The authors' count (tools/vslnet_goldens.py) is of their model with a 50-character
  # table and a frozen 10-word GloVe table.
  fields.update(vocab_size=12, embeddings_file=str(tmp_path / "glove.npy"),
                char_vocab_size=50, vocab_file="", predictor=predictor)
  model = models.build_model(fields)
  trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
  assert trainable == int(np.load(GOLDENS)["published/num_params"][index])


def test_config_from_the_authors_configs_json(tmp_path):
  written = dict(video_feature_dim=1024, word_dim=300, char_size=52, char_dim=50,
                 hidden_size=128, num_heads=8, max_pos_len=128, drop_rate=0.2,
                 predictor="rnn", highlight_lambda=5.0, task="charades")
  (tmp_path / "configs.json").write_text(json.dumps(written))
  fields = vslnet_import.config_from_reference(str(tmp_path / "configs.json"))
  assert fields == dict(name="vslnet", feature_dim=1024, embedding_dim=300,
                        char_vocab_size=52, char_dim=50, hidden_size=128, num_heads=8,
                        max_position_length=128, dropout=0.2, predictor="rnn")
  del written["max_pos_len"]
  (tmp_path / "configs.json").write_text(json.dumps(written))
  with pytest.raises(ValueError, match="configs.json: no field 'max_pos_len'"):
    vslnet_import.config_from_reference(str(tmp_path / "configs.json"))


def test_word_characters_come_from_the_vocabulary():
  tokens = ["<pad>", "<unk>", "<eos>", "the", "person", "a", "opens", "xyz"]
  table = vslnet_layers.word_char_table(tokens, char_vocab_size=6)
  # Counted over the words: e 3, p 2, s 2, o 2, n 2, then t h r a x y z once (ties in the
  # order first seen); 6 - 2 = 4 characters get ids 2..5 (e p s o), the others 1.
  assert table.shape == (8, 6)  # C: "person", the longest word
  np.testing.assert_array_equal(table[:3], 0)  # reserved tokens: no characters
  np.testing.assert_array_equal(table[3], [1, 1, 2, 0, 0, 0])  # t h e
  np.testing.assert_array_equal(table[4], [3, 2, 1, 4, 5, 1])  # p e r s o n
  np.testing.assert_array_equal(table[5], [1, 0, 0, 0, 0, 0])  # a
  assert vslnet_layers.word_char_table(tokens[:6], 6).shape == (6, 6)
  assert vslnet_layers.word_char_table(["<pad>", "<unk>", "<eos>", "a"], 6).shape == (4, 4)


def test_model_reads_word_characters_from_the_vocabulary(tmp_path):
  tokens = ["<pad>", "<unk>", "<eos>", "the", "person", "a", "opens", "xyz"]
  (tmp_path / "vocab.txt").write_text("\n".join(tokens) + "\n")
  model = vslnet.VSLNet(feature_dim=3, vocab_size=8, embedding_dim=4, char_vocab_size=6,
                        vocab_file=str(tmp_path / "vocab.txt"), char_dim=3, hidden_size=8,
                        num_heads=2, max_position_length=6, dropout=0.0)
  assert not model.word_chars.trainable
  assert any(w is model.word_chars for w in model.non_trainable_weights)
  rng = np.random.default_rng(0)
  word_ids = np.array([[3, 5, 0], [4, 6, 7]], np.int32)
  inputs = {"features": rng.normal(size=(2, 4, 3)).astype(np.float32),
            "feature_mask": np.ones((2, 4), np.float32), "word_ids": word_ids,
            "num_words": np.array([2, 3], np.int32)}
  table = vslnet_layers.word_char_table(tokens, 6)
  # The same as the character ids given, padded wider than the longest word: the model cuts
  # them to the batch's longest word, as the authors' loader pads them.
  given = np.pad(table[word_ids], [[0, 0], [0, 0], [0, 3]])
  for name in ("start_logits", "end_logits", "sentence_feature"):
    np.testing.assert_allclose(model(inputs)[name], model({**inputs, "char_ids": given})[name],
                               rtol=1e-6)
  (tmp_path / "short.txt").write_text("\n".join(tokens[:5]) + "\n")
  with pytest.raises(ValueError, match="has 5 words; model.vocab_size is 8"):
    vslnet.VSLNet(feature_dim=3, vocab_size=8, char_vocab_size=6,
                  vocab_file=str(tmp_path / "short.txt"))
