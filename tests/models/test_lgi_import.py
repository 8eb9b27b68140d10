"""Importing the authors' LGI weights and model config: names, layouts, errors, checkpoints,
the ActivityNet structure, and the reference's parameter counts at full width."""

import copy
import gc
import json
import re
import sys

import numpy as np
import pytest

from configs import lgi_activitynet, lgi_charades
from sscs_tf.models import build_model, lgi, lgi_import
from tests import testing


def reference_shapes(feature_dim, vocab_size, embedding_dim, hidden, segments, phrases, blocks,
                     kernel=15):
  """`LGI.state_dict()` of the authors' code, name -> shape, written out from its modules
  (building_blocks.py) independently of the importer; the attention MLPs are H / 2 wide."""
  h, u, a = hidden, hidden // 2, hidden // 2
  shapes = {"query_enc.embedding.weight": (vocab_size, embedding_dim)}

  def linear(name, n_in, n_out, bias=True):
    shapes[f"{name}.weight"] = (n_out, n_in)
    if bias:
      shapes[f"{name}.bias"] = (n_out,)

  for layer, n_in in ((0, embedding_dim), (1, 2 * u)):
    for suffix in ("", "_reverse"):
      shapes.update({f"query_enc.rnn.weight_ih_l{layer}{suffix}": (4 * u, n_in),
                     f"query_enc.rnn.weight_hh_l{layer}{suffix}": (4 * u, u),
                     f"query_enc.rnn.bias_ih_l{layer}{suffix}": (4 * u,),
                     f"query_enc.rnn.bias_hh_l{layer}{suffix}": (4 * u,)})
  linear("video_enc.vid_emb_fn.0", feature_dim, h)
  shapes["video_enc.pos_emb_fn.0.weight"] = (segments, h)
  if phrases > 1:
    for n in range(phrases):
      linear(f"sqan.global_emb_fn.{n}", h, h)
    linear("sqan.guide_emb_fn.0", 2 * h, h)
    linear("sqan.att_fn.key2att", h, a)
    linear("sqan.att_fn.feat2att", h, a)
    linear("sqan.att_fn.to_alpha", a, 1)
  for n in range(phrases):
    for j in (1, 2, 3):
      linear(f"vti_fn.fusion_fn.{n}.fc_{j}", h, h)
    for conv, norm in ((0, 1), (3, 4)):
      shapes[f"vti_fn.local_fn.{n}.blocks.0.{conv}.weight"] = (h, h, kernel)
      for name in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"vti_fn.local_fn.{n}.blocks.0.{norm}.{name}"] = (h,)
      shapes[f"vti_fn.local_fn.{n}.blocks.0.{norm}.num_batches_tracked"] = ()
  linear("vti_fn.satt_fn.feat2att", h, a, bias=False)
  linear("vti_fn.satt_fn.to_alpha", a, 1, bias=False)
  linear("vti_fn.satt_fn.fc", h, h)  # built, never used
  for k in range(blocks):
    linear(f"vti_fn.global_fn.{k}.c_lin", h, 2 * h)
    linear(f"vti_fn.global_fn.{k}.v_lin", h, h)
  linear("ta_reg_fn.tatt.feat2att", h, a, bias=False)
  linear("ta_reg_fn.tatt.to_alpha", a, 1, bias=False)
  linear("ta_reg_fn.tatt.fc", h, h)
  linear("ta_reg_fn.MLP_reg.0", h, h)
  linear("ta_reg_fn.MLP_reg.2", h, 2)
  return shapes


def reference_parameter_count(shapes):
  """`sum(p.numel() for p in model.parameters())`: BN statistics are buffers."""
  return sum(int(np.prod(s)) for name, s in shapes.items()
             if not name.endswith(("running_mean", "running_var", "num_batches_tracked")))


UNUSED_REFERENCE_FC = 512 * 512 + 512  # vti_fn.satt_fn.fc at full width

# (D, V, E, H, S, N, blocks, heads, activation) of the tiny models here.
CHARADES_TINY = (6, 11, 5, 8, 16, 3, 2, 2, "relu")
ACTIVITYNET_TINY = (7, 13, 5, 8, 16, 5, 1, 1, "sigmoid")


def tiny_model(geometry):
  d, v, e, h, s, n, blocks, heads, activation = geometry
  return lgi.LGI(feature_dim=d, vocab_size=v, embedding_dim=e, hidden_size=h, num_segments=s,
                 num_phrases=n, num_nonlocal_blocks=blocks, num_heads=heads,
                 local_kernel_size=3, output_activation=activation)


def random_state(geometry, seed=0):
  d, v, e, h, s, n, blocks, _, _ = geometry
  rng = np.random.default_rng(seed)
  shapes = reference_shapes(d, v, e, h, s, n, blocks, kernel=3)
  return {name: (rng.uniform(0.5, 2, shape) if name.endswith("running_var")
                 else rng.normal(size=shape)).astype(np.float32)
          for name, shape in shapes.items()}


@pytest.mark.parametrize("geometry", [CHARADES_TINY, ACTIVITYNET_TINY])
def test_names_and_layouts(geometry):
  model = tiny_model(geometry)
  state = random_state(geometry)
  lgi_import.load_reference_weights(model, state)
  # Every Keras variable is set by exactly one reference entry.
  targets = [v.path for v, _ in lgi_import.reference_weight_map(model).values()]
  assert sorted(targets) == sorted(v.path for v in model.weights)
  cell = model.query_encoder.lstms[1][1].cell  # layer 1, backward
  np.testing.assert_array_equal(cell.kernel[3, 5],
                                state["query_enc.rnn.weight_ih_l1_reverse"][5, 3])
  np.testing.assert_array_equal(cell.recurrent_bias, state["query_enc.rnn.bias_hh_l1_reverse"])
  conv = model.phrase_branches[1].convs[1]  # (k, in, out) <- (out, in, k)
  np.testing.assert_array_equal(conv.kernel[2, 4, 6],
                                state["vti_fn.local_fn.1.blocks.0.3.weight"][6, 4, 2])
  norm = model.phrase_branches[0].norms[1]
  np.testing.assert_array_equal(norm.moving_variance,
                                state["vti_fn.local_fn.0.blocks.0.4.running_var"])
  block = model.nonlocal_blocks[-1]  # v_lin gives the keys
  k = len(model.nonlocal_blocks) - 1
  np.testing.assert_array_equal(block.key.kernel[1, 2],
                                state[f"vti_fn.global_fn.{k}.v_lin.weight"][2, 1])
  np.testing.assert_array_equal(block.query_value.bias, state[f"vti_fn.global_fn.{k}.c_lin.bias"])
  # Runs with the ActivityNet structure: 5 phrases, 1 block of 1 head, sigmoid, 25 words.
  d, _, _, h, s, n, _, _, activation = geometry
  words = 25 if n == 5 else 10
  outputs = model({"features": np.ones((2, s, d), np.float32),
                   "feature_mask": np.ones((2, s), np.float32),
                   "word_ids": np.ones((2, words), np.int32), "num_words": np.array([words, 3])},
                  return_intermediates=True)
  assert outputs["phrase_attention"].shape == (2, n, words)
  assert outputs["local_features"].shape == (2, n, s, h)
  times = np.asarray(outputs["times"])
  assert np.all(times >= 0) and (activation == "relu" or np.all(times <= 1))


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("vti_fn.global_fn.0.v_lin.bias"), "missing.*vti_fn.global_fn.0.v_lin.bias"),
    (lambda s: s.update({"extra.weight": np.zeros(1)}), "unexpected.*extra.weight"),
    (lambda s: s.update({"vti_fn.local_fn.0.blocks.0.0.weight": np.zeros((8, 8, 5))}),
     "vti_fn.local_fn.0.blocks.0.0.weight"),
    (lambda s: s.update({"query_enc.rnn.weight_hh_l0": np.zeros((4, 16))}),
     "query_enc.rnn.weight_hh_l0"),
    (lambda s: s.update({"vti_fn.satt_fn.fc.weight": np.zeros((8, 6))}), "satt_fn.fc"),
])
def test_mismatches_name_the_parameter(change, message):
  model = tiny_model(CHARADES_TINY)
  state = random_state(CHARADES_TINY)
  change(state)
  before = [np.array(v) for v in model.weights]
  with pytest.raises(ValueError, match=message):
    lgi_import.load_reference_weights(model, state)
  for old, variable in zip(before, model.weights):  # nothing assigned
    np.testing.assert_array_equal(old, variable)


def test_state_without_the_unused_linear_or_counters_loads():
  model = tiny_model(CHARADES_TINY)
  state = {k: v for k, v in random_state(CHARADES_TINY).items()
           if "satt_fn.fc" not in k and "num_batches_tracked" not in k}
  lgi_import.load_reference_weights(model, state)


def test_torch_checkpoint_without_torch_names_the_extra(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
  (tmp_path / "model.pth").write_bytes(b"")
  with pytest.raises(ImportError, match=r"pip install 'sscs_tf\[torch\]'"):
    lgi_import.load_torch_checkpoint(str(tmp_path / "model.pth"))
  with pytest.raises(FileNotFoundError, match="absent.pth not found"):
    lgi_import.load_torch_checkpoint(str(tmp_path / "absent.pth"))


def test_torch_checkpoint_per_module_is_flattened(tmp_path):
  torch = pytest.importorskip("torch")
  model = tiny_model(ACTIVITYNET_TINY)
  state = random_state(ACTIVITYNET_TINY)
  # The reference's save_checkpoint: {module: module.state_dict()}.
  modules = {}
  for name, value in state.items():
    module, rest = name.split(".", 1)
    modules.setdefault(module, {})[rest] = torch.from_numpy(np.array(value))
  path = str(tmp_path / "epoch_300.pth")
  torch.save(modules, path)
  loaded = lgi_import.load_torch_checkpoint(path)
  assert sorted(loaded) == sorted(state)
  lgi_import.load_reference_weights(model, loaded)
  torch.save({"model": "not a tensor"}, path)
  with pytest.raises(ValueError, match="'model' is a str"):
    lgi_import.load_torch_checkpoint(path)


def _parity_config():
  with open(testing.shared_path("parity", "lgi", "model_charades.config.json")) as f:
    return json.load(f)


@pytest.mark.shared_data
def test_config_from_reference_charades_and_activitynet():
  reference = _parity_config()
  assert lgi_import.config_from_reference(reference) == dict(
      name="lgi", feature_dim=24, vocab_size=30, embedding_dim=12, hidden_size=16,
      num_segments=32, num_phrases=3, num_nonlocal_blocks=2, num_heads=4, local_kernel_size=15,
      dropout=0.5, output_activation="relu", max_query_length=10)
  # The ActivityNet option file's structure at the same widths.
  anet = copy.deepcopy(reference)
  anet["max_length"] = 25
  anet["model_config_after_authors_updates"].update(
      num_semantic_entity=5, lgi_global_num_nl_block=1, lgi_global_nl_nheads=1,
      dataset="anet", dqa_lambda=0.2)
  fields = lgi_import.config_from_reference(anet)
  assert (fields["num_phrases"], fields["num_nonlocal_blocks"], fields["num_heads"],
          fields["output_activation"], fields["max_query_length"]) == (5, 1, 1, "sigmoid", 25)
  fields.pop("name")
  model = lgi.LGI(**fields)
  shapes = reference_shapes(24, 30, 12, 16, 32, 5, 1)
  assert model.count_params() == reference_parameter_count(shapes) - (16 * 16 + 16) + (
      5 * 2 * 2 * 16)  # minus the unused Linear, plus the BN statistics Keras counts


@pytest.mark.shared_data
@pytest.mark.parametrize("key, value, message", [
    ("lgi_fusion_method", "concat", "lgi_fusion_method = 'concat'"),
    ("lgi_local_num_res_blocks", 2, "lgi_local_num_res_blocks"),
    ("sqan_att_hdim", 12, "sqan_att_hdim"),
    ("lgi_global_nl_use_local_mask", True, "lgi_global_nl_use_local_mask"),
])
def test_config_from_reference_names_what_the_port_cannot_build(key, value, message):
  reference = _parity_config()
  reference["model_config_after_authors_updates"][key] = value
  with pytest.raises(ValueError, match=message):
    lgi_import.config_from_reference(reference)
  del reference["model_config_after_authors_updates"]["num_semantic_entity"]
  with pytest.raises(ValueError, match="missing field 'num_semantic_entity'"):
    lgi_import.config_from_reference(reference)


@pytest.mark.parametrize("module, vocab_size, reference_count", [
    # The authors' code (JonghwanMun/LGI4temporalgrounding) counts 33,818,355 with its
    # 1,140-word vocabulary and 53,591,583 with ActivityNet Captions' 11,125 words.
    (lgi_charades, 1140, 33_818_355),
    (lgi_activitynet, 11125, 53_591_583),
])
def test_full_width_parameter_counts(module, vocab_size, reference_count):
  config = module.get_config()
  m = config.model
  shapes = reference_shapes(m.feature_dim, vocab_size, m.embedding_dim, m.hidden_size,
                            m.num_segments, m.num_phrases, m.num_nonlocal_blocks,
                            m.local_kernel_size)
  assert reference_parameter_count(shapes) == reference_count
  with config.unlocked():
    config.model.vocab_size = vocab_size
  model = build_model(config.model)
  trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
  # The port leaves out the Linear whose output the reference discards: 33,555,699 and
  # 53,328,927 trainable parameters.
  assert trainable == reference_count - UNUSED_REFERENCE_FC
  assert model.count_params() == trainable + m.num_phrases * 2 * 2 * 512  # BN moving stats
  del model
  gc.collect()


@pytest.mark.shared_data
def test_reference_vocabulary_on_the_public_files():
  lines = open(testing.shared_path("annotations", "charades_sta",
                                   "charades_sta_train.txt")).read().splitlines()
  vocab = lgi_import.reference_vocabulary(line.split("##", 1)[1] for line in lines if line)
  assert len(vocab) == 1140 and vocab[:4] == ["<PAD>", "<UNK>", "<S>", "<E>"]
  assert vocab[4:] == sorted(vocab[4:]) and "persons" in vocab and "person's" not in vocab
  with open(testing.shared_path("annotations", "activitynet_captions", "train.json")) as f:
    sentences = [s for entry in json.load(f).values() for s in entry["sentences"]]
  assert len(lgi_import.reference_vocabulary(sentences)) == 11125


def test_word_embeddings_follow_the_vocabulary_by_word():
  reference = lgi_import.reference_vocabulary(["A door opens.", "The person's door!"])
  assert reference == ["<PAD>", "<UNK>", "<S>", "<E>", "a", "door", "opens", "persons", "the"]
  table = np.arange(len(reference), dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
  ours = ["<pad>", "<unk>", "<eos>", "door", "the", "sneezes", "a"]
  state = lgi_import.remap_word_embeddings({"query_enc.embedding.weight": table, "x": 1},
                                           reference, ours)
  np.testing.assert_array_equal(state["query_enc.embedding.weight"][:, 0],
                                [0, 1, 1, 5, 8, 1, 4])  # unknown words take <UNK>'s row
  assert state["x"] == 1
  with pytest.raises(ValueError, match="has 9 rows; the reference vocabulary given has 3"):
    lgi_import.remap_word_embeddings({"query_enc.embedding.weight": table}, reference[:3], ours)


def test_reference_vocabulary_from_the_authors_files(tmp_path):
  expected = ["<PAD>", "<UNK>", "<S>", "<E>", "a", "door", "opens", "persons", "the"]
  charades = tmp_path / "charades_sta_train.txt"
  charades.write_text("AAAAA 0.0 6.9##A door opens.\n\nBBBBB 1.0 2.0##The person's door!\n")
  assert lgi_import.read_reference_vocabulary(str(charades)) == expected
  anet = tmp_path / "train.json"
  anet.write_text(json.dumps({"v_1": {"duration": 9.0, "timestamps": [[0, 1], [1, 2]],
                                      "sentences": ["A door opens.", " The person's door!"]}}))
  assert lgi_import.read_reference_vocabulary(str(anet)) == expected
  # Their query-info file: the ids as written, whatever order the JSON keeps.
  query_info = tmp_path / "train_info_F1_L10_I3D.json"
  query_info.write_text(json.dumps({"wtoi": {w: i for i, w in reversed(list(enumerate(
      expected)))}, "itow": {}, "query_lengths": {}}))
  assert lgi_import.read_reference_vocabulary(str(query_info)) == expected


@pytest.mark.parametrize("name, content, message", [
    ("train.txt", "AAAAA 0.0 6.9##a door.\nAAAAA 0.0 6.9 a door\n", r"train.txt:2: expected"),
    ("train.txt", "\n\n", "train.txt: no annotation lines"),
    ("train.txt", b"AAAAA 0.0 6.9##a \xff door.\n", "train.txt: not UTF-8"),
    ("info.json", "{not json", "info.json: not JSON"),
    ("info.json", '{"v_1": {"sentences": "a door"}}', "info.json: neither a query-info"),
    ("info.json", '{"wtoi": {"<PAD>": 0, "<UNK>": 1, "<S>": 2, "<E>": 3, "a": 5}}',
     "ids of 'wtoi' are not 0 to 4"),
    ("info.json", '{"wtoi": {"a": 0, "<UNK>": 1, "<S>": 2, "<E>": 3, "<PAD>": 4}}',
     "'wtoi' must start with"),
    ("info.json", '{"wtoi": {"<PAD>": "0"}}', "'wtoi' must map words to integer ids"),
])
def test_reference_vocabulary_file_errors_name_the_file(tmp_path, name, content, message):
  path = tmp_path / name
  if isinstance(content, bytes):
    path.write_bytes(content)
  else:
    path.write_text(content)
  with pytest.raises(ValueError, match=message):
    lgi_import.read_reference_vocabulary(str(path))


def test_remap_without_word_embeddings_names_them():
  with pytest.raises(ValueError, match=r"missing \['query_enc.embedding.weight'\]"):
    lgi_import.remap_word_embeddings({"x": np.zeros(1)}, ["<PAD>"], ["<pad>"])


@pytest.mark.parametrize("content, message", [
    (b"", "not a PyTorch checkpoint (EOFError"),
    (b"a text file\n", "not a PyTorch checkpoint ("),
    (bytes(range(256)), "refused: the file is not a plain state dict of tensors"),
])
def test_torch_checkpoint_that_is_no_checkpoint_is_named(tmp_path, content, message):
  pytest.importorskip("torch")
  path = tmp_path / "model.pth"
  path.write_bytes(content)
  with pytest.raises(ValueError, match=f"model.pth: {re.escape(message)}"):
    lgi_import.load_torch_checkpoint(str(path))
