"""Every layer the project registers with Keras goes through `run_layer_test`.

The layers are found, not listed: every module of sscs_tf.models, sscs_tf.sscs and
sscs_tf.features is imported and the `sscs_tf>` entries of Keras' custom objects are kept.
The two models, TAN and LGI, are registered too and go through the same checks at tiny
widths (a few seconds); their own modules test what is specific to them.

CASES gives, per class name, the tiny-width cases: constructor arguments, an input builder,
and the shapes and weight counts computed by hand in the comments. A registered layer without
a case fails `test_every_registered_layer_has_a_case`, naming it.
"""

import dataclasses
import importlib
import pkgutil
from typing import Any, Callable, Dict, Optional, Sequence

import keras
import numpy as np
import pytest

import sscs_tf.features
import sscs_tf.models
import sscs_tf.sscs
from tests.layer_testing import run_layer_test

PACKAGES = (sscs_tf.models, sscs_tf.sscs, sscs_tf.features)
B = 2  # batch size of every case but the I3D ones (1)


def registered_layers() -> Dict[str, type]:
  """{class name: class} of every Layer (and Model) registered under the package "sscs_tf"."""
  for package in PACKAGES:
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
      importlib.import_module(module.name)
  found = {}
  for key, obj in keras.saving.get_custom_objects().items():
    if key.startswith("sscs_tf>") and isinstance(obj, type) and issubclass(obj, keras.layers.Layer):
      found[key.split(">", 1)[1]] = obj
  return found


@dataclasses.dataclass
class Case:
  """One `run_layer_test` call; `make_inputs(rng)` returns the input data."""
  init_kwargs: Dict[str, Any]
  make_inputs: Callable[[np.random.Generator], Any]
  output_shape: Any
  trainable: Sequence[int]  # (tensors, parameters)
  non_trainable: Sequence[int] = (0, 0)
  call_kwargs: Optional[Dict[str, Any]] = None
  weights_without_gradient: Sequence[str] = ()
  mixed_precision_dtype: Any = None  # None: the layer's compute dtype (bfloat16)
  # The layers that hand their dtype policy to their sublayers (I3D is built with a `dtype`
  # per layer; the Sscs branch pins float32); the others follow the global policy, which is
  # how training sets it, and leave their sublayers on it when given a `dtype`.
  dtype_argument: bool = False


def floats(rng, *shape):
  return rng.normal(size=shape).astype(np.float32)


def mask(*valid, length):
  """`[len(valid), length]` float32, 1 on the first valid[b] steps of row b."""
  return (np.arange(length)[None] < np.array(valid)[:, None]).astype(np.float32)


def words(rng, num_words=(5, 2), length=5, vocab_size=7):
  """word_ids `[B, length]` int32 (0 past num_words), num_words `[B]` int32."""
  num_words = np.array(num_words, np.int32)
  word_ids = rng.integers(1, vocab_size, size=(len(num_words), length)).astype(np.int32)
  word_ids[np.arange(length)[None] >= num_words[:, None]] = 0
  return word_ids, num_words


def grounding_inputs(rng, steps, feature_dim, valid=(None, None)):
  word_ids, num_words = words(rng)
  return {"features": floats(rng, B, steps, feature_dim),
          "feature_mask": mask(*[v or steps for v in valid], length=steps),
          "word_ids": word_ids, "num_words": num_words}


def branch_inputs(rng):
  word_ids, num_words = words(rng)
  return {"clip_features": floats(rng, B, 4, 5), "clip_mask": mask(4, 3, length=4),
          "sentence_feature": floats(rng, B, 6), "start": np.array([1.0, 0.0], np.float32),
          "end": np.array([5.0, 2.0], np.float32),
          "duration": np.array([10.0, 8.0], np.float32), "word_ids": word_ids,
          "num_words": num_words}


MODEL_LAYER_CASES = {
    "TwoBiasLSTMCell": [Case(
        dict(units=3),
        lambda rng: (floats(rng, B, 4), [floats(rng, B, 3), floats(rng, B, 3)]),
        ((B, 3), [(B, 3), (B, 3)]),
        # kernel 4 x 12 + recurrent 3 x 12 + two biases of 12 = 48 + 36 + 24
        trainable=(4, 108), dtype_argument=True)],
    "TorchBatchNorm": [Case(
        dict(momentum=0.8, epsilon=1e-3),
        lambda rng: floats(rng, 3, 4, 5), (3, 4, 5),
        trainable=(2, 10),  # gamma, beta of 5
        non_trainable=(2, 10),  # moving mean and variance of 5
        dtype_argument=True)],
    "SentenceEncoder": [Case(
        dict(vocab_size=7, embedding_dim=3, embeddings_file="", lstm_units=4, lstm_layers=2,
             hidden_size=5),
        words, (B, 5),
        # table 7 x 3 = 21; LSTM 1: 3 x 16 + 4 x 16 + 16 + 16 = 144; LSTM 2: 4 x 16 + 4 x 16
        # + 32 = 160; projection 4 x 5 + 5 = 25. Tensors 1 + 4 + 4 + 2.
        trainable=(11, 350))],
    "ClipEncoder": [Case(
        dict(hidden_size=3, num_clips=2, num_sample_clips=4),
        lambda rng: floats(rng, B, 4, 5), (B, 2, 3),
        trainable=(2, 18))],  # projection 5 x 3 + 3
    "MapFusion": [Case(
        dict(hidden_size=3),
        lambda rng: (floats(rng, B, 4, 4, 3), floats(rng, B, 3),
                     np.triu(np.ones((4, 4), np.float32))),
        (B, 4, 4, 3),
        trainable=(2, 12))],  # projection 3 x 3 + 3
    # N = 4, one scale of 4 layers: kernel 1 (length 4), then kernel 2 (lengths 3, 2, 1).
    "SparseTemporalMap": [
        Case(dict(hidden_size=3, num_clips=4, num_scale_layers=[4], map_type="conv"),
             lambda rng: floats(rng, B, 4, 3), (B, 4, 4, 3),
             # Conv1D 1 x 3 x 3 + 3 = 12, then three of 2 x 3 x 3 + 3 = 21
             trainable=(8, 75)),
        Case(dict(hidden_size=3, num_clips=4, num_scale_layers=[4], map_type="pool"),
             lambda rng: floats(rng, B, 4, 3), (B, 4, 4, 3), trainable=(0, 0))],
    "MaskedMapConv": [Case(
        dict(hidden_size=3, kernel_size=3, num_layers=2, num_clips=4, num_scale_layers=[4],
             impl=impl),
        lambda rng: floats(rng, B, 4, 4, 3) * np.triu(np.ones((4, 4, 1), np.float32)),
        (B, 4, 4, 3),
        trainable=(4, 168))  # two Conv2D of 3 x 3 x 3 x 3 + 3 = 84
        for impl in ("sparse", "dense")],
    "TAN": [Case(
        dict(feature_dim=3, num_clips=4, vocab_size=7, hidden_size=4, num_sample_clips=8,
             map_type="pool", num_scale_layers=[4], map_kernel_size=3, map_num_layers=2,
             embedding_dim=3, lstm_units=4, lstm_layers=2),
        lambda rng: grounding_inputs(rng, 8, 3, valid=(8, 5)),
        {"scores": (B, 4, 4), "map_mask": (4, 4), "clip_features": (B, 4, 4),
         "clip_mask": (B, 4), "sentence_feature": (B, 4)},
        # clip encoder 3 x 4 + 4 = 16 (2); table 7 x 3 = 21 (1); LSTM 1 3 x 16 + 4 x 16 + 32
        # = 144 (4); LSTM 2 4 x 16 + 4 x 16 + 32 = 160 (4); sentence projection 4 x 4 + 4 =
        # 20 (2); fusion 20 (2); map convs 2 x (3 x 3 x 4 x 4 + 4) = 296 (4); head 4 + 1 = 5
        # (2). The table is learned: trainable.
        trainable=(21, 682),
        # Scores, masks float32 (the loss and NMS read them); features in bfloat16.
        mixed_precision_dtype={"scores": "float32", "map_mask": "float32",
                               "clip_features": "bfloat16", "clip_mask": "float32",
                               "sentence_feature": "bfloat16"})],
}

LGI_CASES = {
    "QueryEncoder": [Case(
        dict(vocab_size=7, embedding_dim=3, units=2, num_layers=2, dropout=0.5),
        words, ((B, 5, 4), (B, 4), (B, 5)),
        # table 7 x 3 = 21 (1); layer 1, each direction 3 x 8 + 2 x 8 + 16 = 56; layer 2,
        # each direction 4 x 8 + 2 x 8 + 16 = 64; 4 tensors per direction.
        trainable=(17, 261),
        mixed_precision_dtype=("bfloat16", "bfloat16", "bool"))],
    "SequentialQueryAttention": [Case(
        # H = 8: at H = 4 the guide's relu is dead for the first phrase at this seed.
        dict(num_phrases=2, hidden_size=8, attention_size=3),
        lambda rng: (floats(rng, B, 8), floats(rng, B, 5, 8),
                     np.arange(5)[None] < np.array([[3], [5]])),
        ((B, 2, 8), (B, 2, 5)),
        # two queries 8 x 8 + 8 = 144 (4); guide 16 x 8 + 8 = 136 (2); word and guide keys
        # 8 x 3 + 3 = 27 each (4); score 3 + 1 = 4 (2).
        trainable=(12, 338),
        mixed_precision_dtype=("bfloat16", "float32"))],
    "VideoEncoder": [Case(
        dict(hidden_size=3, num_segments=4, dropout=0.5),
        lambda rng: (floats(rng, B, 4, 5), mask(4, 2, length=4)), (B, 4, 3),
        trainable=(3, 30))],  # projection 5 x 3 + 3 = 18; positions 4 x 3 = 12
    "PhraseLocalContext": [Case(
        dict(hidden_size=3, kernel_size=3),
        lambda rng: (floats(rng, B, 5, 3), floats(rng, B, 3)), (B, 5, 3),
        # fusion 3 x (3 x 3 + 3) = 36 (6); convs 2 x 3 x 3 x 3 = 54 (2); norms gamma, beta
        # 2 x 6 = 12 (4); moving mean, variance 2 x 6 = 12 (4).
        trainable=(12, 102), non_trainable=(4, 12))],
    "AttentionWeights": [Case(
        dict(hidden_size=4, attention_size=3),
        lambda rng: (floats(rng, B, 5, 4), mask(5, 3, length=5)), (B, 5),
        trainable=(2, 15),  # hidden 4 x 3, score 3, no biases
        mixed_precision_dtype="float32")],
    "NonLocalBlock": [
        Case(dict(hidden_size=4, num_heads=2),
             lambda rng: (floats(rng, B, 5, 4), mask(5, 3, length=5)), (B, 5, 4),
             trainable=(4, 60)),  # key 4 x 4 + 4 = 20; query_value 4 x 8 + 8 = 40
        Case(dict(hidden_size=4, num_heads=2),
             lambda rng: (floats(rng, B, 5, 4), mask(5, 3, length=5)),
             ((B, 5, 4), (B, 2, 5, 5)), trainable=(4, 60),
             call_kwargs=dict(return_attention=True),
             mixed_precision_dtype=("bfloat16", "float32"))],
    "LGI": [Case(
        # H = 8: at H = 4 a phrase branch's relu is dead at this seed.
        dict(feature_dim=3, vocab_size=7, embedding_dim=3, hidden_size=8, num_segments=4,
             num_phrases=3, num_nonlocal_blocks=2, num_heads=2, local_kernel_size=3,
             dropout=0.5, output_activation="sigmoid"),
        lambda rng: grounding_inputs(rng, 4, 3, valid=(4, 3)),
        {"times": (B, 2), "temporal_attention": (B, 4), "phrase_attention": (B, 3, 5),
         "clip_features": (B, 4, 8), "clip_mask": (B, 4), "sentence_feature": (B, 8)},
        # query encoder (table 7 x 3, units 4): 21 + 2 x (3 x 16 + 4 x 16 + 32) + 2 x
        # (8 x 16 + 4 x 16 + 32) = 757 (17); video encoder 3 x 8 + 8 + 4 x 8 = 64 (3); query
        # attention (3 phrases, H 8, A 4): 3 x 72 + 16 x 8 + 8 + 2 x (8 x 4 + 4) + 5 = 429
        # (14); three phrase branches (H 8, K 3): 3 x 72 + 2 x 3 x 8 x 8 + 2 x 16 = 632 (12)
        # each; phrase pooling and temporal attention 8 x 4 + 4 = 36 (2) each; two non-local
        # blocks 72 + 144 = 216 (4) each; regression 72 + 72 + 18 = 162 (6). Batch norm
        # statistics: 3 x 2 x 16 (12).
        trainable=(88, 3812), non_trainable=(12, 96),
        mixed_precision_dtype="float32")],  # every output is cast to float32
}

SSCS_CASES = {
    "SscsBranch": [Case(
        dict(mode="ss", lambda1=0.1, lambda2=0.1, tau=0.1, dim=4, head="linear",
             support="video", function="ca", reduction="sum", num_clips=4, vocab_size=7,
             caption_units=3, caption_embedding_dim=3),
        branch_inputs,
        {"gt_clips": (B,), "fell_back": (B,), "contrast": (B,), "caption": (B,)},
        # psi 5 x 4 + 4 = 24 (2); phi 6 x 4 + 4 = 28 (2); decoder: initial state 4 x 3 + 3 =
        # 15 (2), table 7 x 3 = 21 (1), GRU 3 x 9 + 3 x 9 + 2 x 9 = 72 (3), logits
        # 3 x 7 + 7 = 28 (2).
        trainable=(12, 188),
        mixed_precision_dtype="float32"),  # the branch computes in float32 under any policy
        Case(dict(mode="gtc", lambda1=0.1, lambda2=0.1, tau=0.1, dim=4, head="mlp",
                  reduction="mean", num_clips=4, vocab_size=7, caption_units=3,
                  caption_embedding_dim=3),
             branch_inputs,
             {"gt_clips": (B,), "fell_back": (B,), "contrast": (B,), "caption": (B,)},
             # psi 5 x 4 + 4 + 4 x 4 + 4 = 44 (4); phi 6 x 4 + 4 + 20 = 48 (4); GT pooling
             # 4 x 4 + 4 + 4 = 24 (3); decoder 136 (8) as below.
             trainable=(19, 252), mixed_precision_dtype="float32")],
    "AttentivePooling": [Case(
        dict(units=3),
        lambda rng: (floats(rng, B, 4, 5), mask(4, 2, length=4)), (B, 5),
        trainable=(3, 21), dtype_argument=True)],  # hidden 5 x 3 + 3 = 18; score 3, no bias
    "CaptionDecoder": [Case(
        dict(vocab_size=7, units=3, embedding_dim=3),
        lambda rng: (floats(rng, B, 4),) + words(rng), (B,),
        trainable=(8, 136),  # 15 + 21 + 72 + 28, as in SscsBranch
        mixed_precision_dtype="float32",  # the log-likelihood is computed in float32
        dtype_argument=True)],
    "SupportFunction": [
        Case(dict(function="conv", dim=4, num_clips=4, tau=0.1),
             lambda rng: (floats(rng, B, 4, 4), floats(rng, B, 4), mask(4, 2, length=4)),
             (B, 4), trainable=(2, 52), dtype_argument=True),  # Conv1D 3 x 4 x 4 + 4
        Case(dict(function="fc", dim=4, num_clips=4, tau=0.1),
             lambda rng: (floats(rng, B, 4, 4), floats(rng, B, 4), mask(4, 2, length=4)),
             (B, 4), trainable=(2, 68), dtype_argument=True),  # Dense 16 x 4 + 4
    ] + [Case(dict(function=function, dim=4, num_clips=4, tau=0.1),
              lambda rng: (floats(rng, B, 4, 4), floats(rng, B, 4), mask(4, 2, length=4)),
              (B, 4), trainable=(0, 0)) for function in ("ca", "sa", "mp", "ap")],
}

I3D_CASES = {
    "Unit3D": [Case(
        dict(filters=2, kernel_size=(3, 3, 3), strides=(1, 2, 2)),
        lambda rng: floats(rng, 1, 2, 4, 4, 3), (1, 2, 2, 2, 2),
        trainable=(2, 164),  # kernel 27 x 3 x 2 = 162, beta 2 (no scale)
        non_trainable=(2, 4),  # moving mean and variance of 2
        dtype_argument=True)],
    "InceptionBlock": [Case(
        dict(widths=(1, 2, 3, 1, 2, 1)),
        lambda rng: floats(rng, 1, 2, 3, 3, 4), (1, 2, 3, 3, 1 + 3 + 2 + 1),
        # kernels 4 x 1 + 4 x 2 + 27 x 2 x 3 + 4 x 1 + 27 x 1 x 2 + 4 x 1 = 236, betas
        # 1 + 2 + 3 + 1 + 2 + 1 = 10; six units of (kernel, beta) and (mean, variance).
        trainable=(12, 246), non_trainable=(12, 20), dtype_argument=True)],
    # dtype float32 as build_i3d gives it: the feature and logits stay float32.
    "ClipHead": [Case(
        dict(num_classes=3, dtype="float32"),
        lambda rng: floats(rng, 1, 2, 7, 7, 4), ((1, 4), (1, 3)),
        trainable=(2, 15),  # classifier 4 x 3 + 3
        # Its sublayers follow the pinned float32 (checked under the mixed global policy).
        mixed_precision_dtype="float32")],
}

def two_sequences(rng):
  """VSLNet's video `[B, 5, 4]` and query `[B, 3, 4]` with their masks."""
  return (floats(rng, B, 5, 4), floats(rng, B, 3, 4), mask(5, 3, length=5),
          mask(3, 2, length=3))


VSLNET_CASES = {
    "FeatureEncoder": [Case(
        dict(hidden_size=4, num_heads=2, max_position_length=6, dropout=0.1, kernel_size=3,
             num_conv_layers=2),
        lambda rng: (floats(rng, B, 5, 4), mask(5, 3, length=5)), (B, 5, 4),
        # positions 6 x 4 = 24 (1); two layer norms 8 (4); two separable convolutions
        # 3 x 4 + 4 x 4 + 4 = 32 (6); attention norm 8 (2); query, key, value 3 x 20 (6);
        # dense norm 8 (2); dense 20 (2).
        trainable=(23, 200))],
    "ContextQueryAttention": [Case(
        dict(hidden_size=4, dropout=0.1), two_sequences, ((B, 5, 4), (B, 5, 3)),
        # w0, w1, w_mul 4 each; dense 16 x 4 without bias.
        trainable=(4, 76), mixed_precision_dtype=("bfloat16", "float32"))],
    "QueryPoolingConcat": [Case(
        dict(hidden_size=4), lambda rng: two_sequences(rng)[:2] + (mask(3, 2, length=3),),
        ((B, 5, 4), (B, 4)), trainable=(3, 40))],  # pool weight 4; dense 8 x 4 + 4
    "Highlighter": [Case(
        dict(hidden_size=4), lambda rng: (floats(rng, B, 5, 4), mask(5, 3, length=5)),
        (B, 5), trainable=(2, 5), mixed_precision_dtype="float32")],  # dense 4 + 1
    "TF1LSTMCell": [Case(
        dict(units=3),
        lambda rng: (floats(rng, B, 4), [floats(rng, B, 3), floats(rng, B, 3)]),
        ((B, 3), [(B, 3), (B, 3)]),
        trainable=(2, 96), dtype_argument=True)],  # kernel (4 + 3) x 12 + bias 12
    "ConditionedSpanPredictor": [
        Case(dict(hidden_size=4, mode="rnn"),
             lambda rng: (floats(rng, B, 5, 4), mask(5, 3, length=5)), ((B, 5), (B, 5)),
             # two LSTMs (4 + 4) x 16 + 16 = 144 (2); hidden 8 x 4 + 4 (2) twice; dense
             # 4 + 1 (2) twice.
             trainable=(12, 370), mixed_precision_dtype="float32"),
        Case(dict(hidden_size=4, mode="transformer", num_heads=2, max_position_length=6,
                  dropout=0.1),
             lambda rng: (floats(rng, B, 5, 4), mask(5, 3, length=5)), ((B, 5), (B, 5)),
             # encoder (kernel 7, 4 convolutions): 24 + 4 x 8 + 4 x (7 x 4 + 16 + 4) + 8
             # + 60 + 8 + 20 = 344 (33); start and end norms 16 (4); hidden and dense 82 (8).
             trainable=(45, 442), mixed_precision_dtype="float32")],
    "CharCNN": [Case(
        dict(char_vocab_size=6, char_dim=3, dropout=0.1),
        lambda rng: rng.integers(0, 6, size=(B, 3, 5)).astype(np.int32), (B, 3, 100),
        # table 5 x 3; filters 1 x 3 x 10 + 2 x 3 x 20 + 3 x 3 x 30 + 4 x 3 x 40 = 900;
        # biases 100.
        trainable=(9, 1015))],
    "VSLNet": [Case(
        dict(feature_dim=3, vocab_size=7, embedding_dim=3, hidden_size=4, num_heads=2,
             max_position_length=6, dropout=0.1),
        lambda rng: grounding_inputs(rng, 6, 3, valid=(6, 4)),
        {"start_logits": (B, 6), "end_logits": (B, 6), "highlight_logits": (B, 6),
         "clip_features": (B, 6, 4), "clip_mask": (B, 6), "sentence_feature": (B, 4),
         "regularized_square_sum": (B,)},
        # word table 7 x 3 = 21 and unk 3 (2); projections 3 x 4 + 4 twice (4); encoder
        # (kernel 7, 4 convolutions, 6 positions) 344 (33); attention 76 (4); pooling 40
        # (3); highlighter 5 (2); rnn predictor 370 (12).
        trainable=(60, 891), mixed_precision_dtype="float32")],
}

CASES = {**MODEL_LAYER_CASES, **LGI_CASES, **SSCS_CASES, **I3D_CASES, **VSLNET_CASES}
REGISTERED = registered_layers()


def test_every_registered_layer_has_a_case():
  missing = sorted(set(REGISTERED) - set(CASES))
  unknown = sorted(set(CASES) - set(REGISTERED))
  assert not missing, f"registered layers without a case in CASES: {missing}"
  assert not unknown, f"CASES for classes no module registers: {unknown}"


@pytest.mark.parametrize("name", sorted(REGISTERED))
def test_registered_layer(name):
  assert name in CASES, f"{name} is registered but has no case in CASES"
  for case in CASES[name]:
    run_layer_test(
        REGISTERED[name], case.init_kwargs, case.make_inputs(np.random.default_rng(0)),
        call_kwargs=case.call_kwargs, expected_output_shape=case.output_shape,
        expected_num_trainable_weights=case.trainable[0],
        expected_num_trainable_params=case.trainable[1],
        expected_num_non_trainable_weights=case.non_trainable[0],
        expected_num_non_trainable_params=case.non_trainable[1],
        weights_without_gradient=case.weights_without_gradient,
        expected_mixed_precision_dtype=case.mixed_precision_dtype,
        run_dtype_argument_check=case.dtype_argument)
