"""Imports the authors' PyTorch LGI weights and model config into `sscs_tf.models.lgi.LGI`.

The reference (github.com/JonghwanMun/LGI4temporalgrounding, src/model/LGI.py and
building_blocks.py) names its modules query_enc, video_enc, sqan, vti_fn and ta_reg_fn.
Layouts: Linear `(out, in)` (a Dense kernel is its transpose), Conv1d `(out, in, k)`, LSTM
gates i, f, g, o with two biases (the layout of `layers.TwoBiasLSTMCell`), BatchNorm1d
weight, bias and running statistics. Two reference names read like something else: in a
non-local block `v_lin` gives the keys and `c_lin` the queries and values, concatenated.
The phrase pooling's `vti_fn.satt_fn.fc` is built but its output is discarded; the port has
no such layer, so its values are checked for shape and not loaded.
"""

import string
from typing import Dict, Iterable, Mapping, Sequence

import numpy as np

from sscs_tf.core import fileio
from sscs_tf.models import torch_checkpoint
from sscs_tf.models.tan_import import _conv1d, _linear, _same, assign_converted

# Entries the port has no variable for: PyTorch's BN step counters, and the unused Linear.
_IGNORED_SUFFIXES = (".num_batches_tracked",)
_UNUSED_LINEAR = "vti_fn.satt_fn.fc"


# The reference's vocabulary layout (src/dataset/abstract_dataset.py, _build_vocab).
REFERENCE_RESERVED = ("<PAD>", "<UNK>", "<S>", "<E>")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def reference_tokenize(sentence: str) -> list:
  """The reference's tokenizer (src/utils/utils.py): lowercase, delete ASCII punctuation
  ("person's" -> "persons"), split on whitespace."""
  return str(sentence).lower().translate(_PUNCTUATION).strip().split()


def reference_vocabulary(train_sentences: Iterable[str]) -> list:
  """The reference's word list, index = word id: ids 0-3 reserved, then every training word
  in alphabetical order (the option files' frequency threshold is never read: all words).
  On the public files: 1,140 entries for Charades-STA, 11,125 for ActivityNet Captions."""
  words = {w for sentence in train_sentences for w in reference_tokenize(sentence)}
  return list(REFERENCE_RESERVED) + sorted(words)


def read_reference_vocabulary(path: str) -> list:
  """The reference's word list from one of the files a user of the authors' code has.

  Args:
    path: the query-info JSON their code writes beside its data (`wtoi`: word -> id), or
      the training annotations it builds the vocabulary from: Charades-STA's
      `charades_sta_train.txt` (`video start end##sentence` lines) or ActivityNet Captions'
      `train.json` (`{video: {"sentences": [...]}}`).

  Raises ValueError naming the file (and line) when it is none of these.
  """
  if path.endswith(".json"):
    try:
      content = fileio.read_json(path)
    except ValueError as error:
      raise ValueError(f"{path}: not JSON ({error}).") from None
    if isinstance(content, Mapping) and "wtoi" in content:
      return _tokens_by_id(path, content["wtoi"])
    if isinstance(content, Mapping) and content and all(
        isinstance(entry, Mapping) and isinstance(entry.get("sentences"), list)
        for entry in content.values()):
      return reference_vocabulary(s for entry in content.values() for s in entry["sentences"])
    raise ValueError(f"{path}: neither a query-info file (no 'wtoi') nor ActivityNet "
                     "Captions annotations ({video: {'sentences': [...]}}).")
  try:
    with open(path, encoding="utf-8") as f:
      lines = f.read().splitlines()
  except UnicodeDecodeError:
    raise ValueError(f"{path}: not UTF-8 text (Charades-STA annotations).") from None
  sentences = []
  for number, line in enumerate(lines, 1):
    if line.strip():
      if "##" not in line:
        raise ValueError(f"{path}:{number}: expected 'video start end##sentence' "
                         "(Charades-STA annotations).")
      sentences.append(line.split("##", 1)[1])
  if not sentences:
    raise ValueError(f"{path}: no annotation lines.")
  return reference_vocabulary(sentences)


def _tokens_by_id(path: str, word_to_id) -> list:
  """`wtoi` as the list of its words by id: ids 0..n-1 each once, the reserved ones first."""
  if not isinstance(word_to_id, Mapping) or not all(
      isinstance(i, int) and not isinstance(i, bool) for i in word_to_id.values()):
    raise ValueError(f"{path}: 'wtoi' must map words to integer ids.")
  tokens = sorted(word_to_id, key=word_to_id.get)
  if [word_to_id[t] for t in tokens] != list(range(len(tokens))):
    raise ValueError(f"{path}: the ids of 'wtoi' are not 0 to {len(tokens) - 1}, each once.")
  if tuple(tokens[:len(REFERENCE_RESERVED)]) != REFERENCE_RESERVED:
    raise ValueError(f"{path}: 'wtoi' must start with {list(REFERENCE_RESERVED)}, got "
                     f"{tokens[:len(REFERENCE_RESERVED)]}.")
  return tokens


def remap_word_embeddings(state_dict: Mapping[str, np.ndarray], reference_tokens: Sequence[str],
                          vocab_tokens: Sequence[str]) -> Dict[str, np.ndarray]:
  """The state dict with `query_enc.embedding.weight` re-indexed for `vocab_tokens`.

  A checkpoint's embedding rows follow the reference vocabulary; the data here is encoded
  with data_prep's vocab.txt (another tokenizer, frequency order). Row i becomes the
  reference row of vocab token i (matched after the reference's tokenization), the
  reference's `<UNK>` row for a token it lacks, and its `<PAD>` row for padding (id 0).
  """
  if "query_enc.embedding.weight" not in state_dict:
    raise ValueError("Reference weights do not match this model: missing "
                     "['query_enc.embedding.weight'] (the word embeddings).")
  table = np.asarray(state_dict["query_enc.embedding.weight"])
  if len(table) != len(reference_tokens):
    raise ValueError(f"query_enc.embedding.weight has {len(table)} rows; the reference "
                     f"vocabulary given has {len(reference_tokens)} tokens.")
  index = {t: i for i, t in enumerate(reference_tokens)}
  unk = index[REFERENCE_RESERVED[1]]
  rows = [0] + [index.get("".join(reference_tokenize(t)), unk) for t in vocab_tokens[1:]]
  return {**state_dict, "query_enc.embedding.weight": table[rows]}


def reference_weight_map(model) -> Dict[str, tuple]:
  """{reference name: (Keras variable, layout conversion)} for every loaded parameter."""
  pairs = {}

  def add(prefix, layer, convert=_linear):
    pairs[f"{prefix}.weight"] = (layer.kernel, convert)
    if layer.use_bias:
      pairs[f"{prefix}.bias"] = (layer.bias, _same)

  encoder = model.query_encoder
  pairs["query_enc.embedding.weight"] = (encoder.embedding.embeddings, _same)
  for k, directions in enumerate(encoder.lstms):
    for lstm, suffix in zip(directions, ("", "_reverse")):
      cell, tail = lstm.cell, f"l{k}{suffix}"
      pairs[f"query_enc.rnn.weight_ih_{tail}"] = (cell.kernel, _linear)
      pairs[f"query_enc.rnn.weight_hh_{tail}"] = (cell.recurrent_kernel, _linear)
      pairs[f"query_enc.rnn.bias_ih_{tail}"] = (cell.bias, _same)
      pairs[f"query_enc.rnn.bias_hh_{tail}"] = (cell.recurrent_bias, _same)
  add("video_enc.vid_emb_fn.0", model.video_encoder.projection)
  pairs["video_enc.pos_emb_fn.0.weight"] = (model.video_encoder.positions, _same)
  if model.query_attention is not None:
    sqan = model.query_attention
    for n, query in enumerate(sqan.phrase_queries):
      add(f"sqan.global_emb_fn.{n}", query)
    add("sqan.guide_emb_fn.0", sqan.guide)
    add("sqan.att_fn.feat2att", sqan.word_key)
    add("sqan.att_fn.key2att", sqan.guide_key)
    add("sqan.att_fn.to_alpha", sqan.score)
  for n, branch in enumerate(model.phrase_branches):
    for j, layer in enumerate(branch.fusion):
      add(f"vti_fn.fusion_fn.{n}.fc_{j + 1}", layer)
    block = f"vti_fn.local_fn.{n}.blocks.0"
    for conv, norm, (conv_index, norm_index) in zip(branch.convs, branch.norms,
                                                    ((0, 1), (3, 4))):
      pairs[f"{block}.{conv_index}.weight"] = (conv.kernel, _conv1d)
      for name, variable in (("weight", norm.gamma), ("bias", norm.beta),
                             ("running_mean", norm.moving_mean),
                             ("running_var", norm.moving_variance)):
        pairs[f"{block}.{norm_index}.{name}"] = (variable, _same)
  add("vti_fn.satt_fn.feat2att", model.phrase_pooling.hidden)
  add("vti_fn.satt_fn.to_alpha", model.phrase_pooling.score)
  for k, nonlocal_block in enumerate(model.nonlocal_blocks):
    add(f"vti_fn.global_fn.{k}.v_lin", nonlocal_block.key)  # the keys, despite the name
    add(f"vti_fn.global_fn.{k}.c_lin", nonlocal_block.query_value)
  add("ta_reg_fn.tatt.feat2att", model.temporal_attention.hidden)
  add("ta_reg_fn.tatt.to_alpha", model.temporal_attention.score)
  embed, hidden, to_times = model.regression
  add("ta_reg_fn.tatt.fc", embed)
  add("ta_reg_fn.MLP_reg.0", hidden)
  add("ta_reg_fn.MLP_reg.2", to_times)
  return pairs


def _ignored(name: str) -> bool:
  return name.endswith(_IGNORED_SUFFIXES) or name.startswith(_UNUSED_LINEAR + ".")


def _check_unused_linear(model, state_dict) -> None:
  """The discarded Linear(H, edim): present in every reference checkpoint; shape-checked."""
  weight = state_dict.get(f"{_UNUSED_LINEAR}.weight")
  bias = state_dict.get(f"{_UNUSED_LINEAR}.bias")
  if weight is None and bias is None:
    return
  weight, bias = np.asarray(weight), np.asarray(bias)
  if (weight.ndim != 2 or weight.shape[1] != model.hidden_size or bias.ndim != 1
      or bias.shape[0] != weight.shape[0]):
    raise ValueError(f"Reference parameters {_UNUSED_LINEAR}.weight/bias have shapes "
                     f"{weight.shape} / {bias.shape}; expected (edim, {model.hidden_size}) / "
                     "(edim,).")


def load_reference_weights(model, state_dict: Mapping[str, np.ndarray]) -> None:
  """Copies a reference state dict (name -> numpy array) into the LGI `model`.

  Raises ValueError naming the parameter on a missing or unexpected name or a shape mismatch;
  nothing is assigned unless every parameter matches.
  """
  targets = reference_weight_map(model)
  given = {name for name in state_dict if not _ignored(name)}
  missing = sorted(set(targets) - given)
  unexpected = sorted(given - set(targets))
  if missing or unexpected:
    raise ValueError(f"Reference weights do not match this model: missing {missing}, "
                     f"unexpected {unexpected}.")
  _check_unused_linear(model, state_dict)
  assign_converted(targets, state_dict)


def load_torch_checkpoint(path: str) -> Dict[str, np.ndarray]:
  """Reads an authors' `.pkl`/`.pth` checkpoint into {"module.param": numpy array}.

  The reference saves `{module name: state dict}` (query_enc, video_enc, sqan, vti_fn,
  ta_reg_fn; criterion has no parameters); a flat state dict is read as it is. Read by
  `torch_checkpoint.read` (tensors only; PyTorch, an optional extra).
  """
  checkpoint = torch_checkpoint.read(path)
  if not isinstance(checkpoint, Mapping):
    raise ValueError(f"{path}: expected a state dict, found {type(checkpoint).__name__}.")
  state = {}
  for key, value in checkpoint.items():
    items = value.items() if isinstance(value, Mapping) else [(None, value)]
    for name, tensor in items:
      full = key if name is None else f"{key}.{name}"
      state[full] = torch_checkpoint.to_numpy(path, full, tensor)
  return state


# Reference model-config fields the port ties to others or fixes; each must hold its value.
def _required_values(hidden, half):
  return {
      "query_enc_rnn_type": "LSTM", "query_enc_rnn_bidirectional": True,
      "query_enc_rnn_nlayer": 2, "query_enc_rnn_hdim": half,
      "video_enc_use_position": True, "video_enc_pemb_odim": hidden,
      "sqan_att_hdim": half, "sqan_att_drop_prob": 0.0,
      "lgi_fusion_method": "mul", "lgi_hp_hdim": hidden,
      "lgi_local_type": "res_block", "lgi_local_num_res_blocks": 1,
      "lgi_local_do_downsample": False,
      "lgi_global_type": "nl", "lgi_global_satt_att_n": 1, "lgi_global_satt_att_hdim": half,
      "lgi_global_nl_odim": hidden, "lgi_global_nl_use_bias": True,
      "lgi_global_nl_drop_prob": 0.0, "lgi_global_nl_use_local_mask": False,
      "grounding_att_hdim": half, "grounding_att_drop_prob": 0.0,
      "grounding_att_edim": hidden, "grounding_idim": hidden, "grounding_hdim": hidden,
      # The video encoder's dropout is fixed at 0.5 in the reference; the port has one rate.
      "query_enc_rnn_dropout": 0.5,
  }


def config_from_reference(reference_config: Mapping) -> dict:
  """The `config.model` fields (name "lgi") for a reference model config.

  Args:
    reference_config: `{"model_config_after_authors_updates": {...}, "vocab_size",
      "num_segment", "max_length"}`, the model config as the authors' code holds it after
      `model_specific_config_update` plus the data loader's values (the form of the parity
      files' `model_*.config.json`).

  Raises ValueError naming the field when the reference config describes a structure the
  port does not build (other fusion, more residual blocks, untied widths, ...).
  """
  for key in ("model_config_after_authors_updates", "vocab_size", "num_segment", "max_length"):
    if key not in reference_config:
      raise ValueError(f"reference config: missing field {key!r}.")
  m = reference_config["model_config_after_authors_updates"]
  try:
    hidden = int(m["video_enc_vemb_odim"])
    num_phrases = int(m["num_semantic_entity"])
    fields = dict(
        name="lgi", feature_dim=int(m["video_enc_vemb_idim"]),
        vocab_size=int(reference_config["vocab_size"]),
        embedding_dim=int(m["query_enc_emb_odim"]), hidden_size=hidden,
        num_segments=int(reference_config["num_segment"]), num_phrases=num_phrases,
        num_nonlocal_blocks=int(m["lgi_global_num_nl_block"]),
        num_heads=int(m["lgi_global_nl_nheads"]),
        local_kernel_size=int(m["lgi_local_res_block_1d_ksize"]),
        dropout=0.5,
        output_activation="relu" if m["dataset"] == "charades" else "sigmoid",
        max_query_length=int(reference_config["max_length"]))
  except KeyError as error:
    raise ValueError(f"reference model config: missing field {error.args[0]!r}.") from None
  required = _required_values(hidden, hidden // 2)
  required["video_enc_pemb_idim"] = fields["num_segments"]
  required["query_enc_emb_idim"] = fields["vocab_size"]
  for key, expected in required.items():
    if key in m and m[key] != expected:
      raise ValueError(f"reference model config: {key} = {m[key]!r}; the port builds only "
                       f"{expected!r} here (hidden size {hidden}).")
  return fields
