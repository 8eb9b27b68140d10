"""Pieces shared by the config files: the argument parser and the 2D-TAN base config.

A config file is used as `--config configs/tan_charades.py:variant=pool,feature=vgg,runlocal`;
the text after ':' reaches `get_config(arg)`.
"""

from typing import Any, Sequence

import ml_collections

from configs import default, training
from sscs_tf import models

# Arguments every config file accepts besides its own (see configs/training.py).
COMMON_ARGS = dict(sscs="off", paper_optim=False, runlocal=False)

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _typed(key: str, text: str, like: Any) -> Any:
  """`text` converted to the type of the default `like`."""
  if isinstance(like, bool):
    if text.lower() in _TRUE + _FALSE:
      return text.lower() in _TRUE
    raise ValueError(f"Config argument {key}={text!r}: expected a boolean ({_TRUE + _FALSE}).")
  try:
    return type(like)(text)
  except ValueError:
    raise ValueError(f"Config argument {key}={text!r}: expected {type(like).__name__}.") from None


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Parses "variant=pool,feature=vgg,runlocal" into a ConfigDict typed by `defaults`.

  `key=value` pairs are converted to the type of `defaults[key]`; a bare word sets a boolean
  default to True. Unknown keys raise an error listing the known ones.
  """
  values = dict(defaults)
  for item in filter(None, (part.strip() for part in (arg or "").split(","))):
    key, has_value, text = item.partition("=")
    key = key.strip()
    if key not in defaults:
      raise ValueError(f"Unknown config argument {key!r}; known: {sorted(defaults)}.")
    if has_value:
      values[key] = _typed(key, text.strip(), defaults[key])
    elif isinstance(defaults[key], bool):
      values[key] = True
    else:
      raise ValueError(f"Config argument {key!r} needs a value ({key}=...).")
  return ml_collections.ConfigDict(values)


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
  if value not in choices:
    raise ValueError(f"Config argument {name}={value!r}: expected one of {list(choices)}.")
  return value


def tan_config(*, dataset: str, variant: str, feature_dim: int, num_clips: int,
               num_scale_layers: Sequence[int], map_kernel_size: int, map_num_layers: int,
               min_iou: float, max_iou: float, nms_thresh: float,
               iou_thresholds: Sequence[float], val_split: str, eval_split: str,
               runlocal: bool, sscs: str = "off",
               paper_optim: bool = False) -> ml_collections.ConfigDict:
  """The 2D-TAN config; dataset files pass their published values (microsoft/2D-TAN,
  its `experiments/` configs; docs/models.md)."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = default.get_data_config()
  config.data.dataset = dataset
  config.data.sampling = "average"  # 2D-TAN resamples every video ...
  config.data.num_segments = 256  # ... to 256 steps (all published configs).
  config.data.map_size = num_clips  # IoU target map of the model's N x N cells.
  config.data.val_split = val_split
  config.data.eval_split = eval_split
  config.data.batch_size = 32  # Published: batch 32.

  config.model = ml_collections.ConfigDict(dict(
      name="tan",
      feature_dim=feature_dim,
      hidden_size=512,  # Published: H = 512 in every config.
      num_clips=num_clips,
      num_sample_clips=256,
      map_type=variant,
      num_scale_layers=list(num_scale_layers),
      map_kernel_size=map_kernel_size,
      map_num_layers=map_num_layers,
      # Filled from the data_prep output (vocab.txt) when training starts.
      vocab_size=0,
      embedding_dim=300,  # Published: GloVe 840B 300-d, frozen.
      # "auto": the data's embeddings.npy (frozen GloVe) when data_prep wrote one, else
      # learned embeddings; "": always learned; or a path to a [vocab, 300] .npy.
      embeddings_file="auto",
      lstm_units=512,  # Published: 3-layer LSTM, 512 units.
      lstm_layers=3,
      # "sparse": the map convolutions compute only the cells that reach a valid cell's score
      # (same scores, 2x fewer cells); "dense": whole maps, as the reference (docs/models.md).
      map_conv_impl="sparse",
  ))

  config.loss = ml_collections.ConfigDict(dict(min_iou=min_iou, max_iou=max_iou))

  config.eval = ml_collections.ConfigDict(dict(
      nms_thresh=nms_thresh, iou_thresholds=list(iou_thresholds), ranks=[1, 5],
      query_diagnostics=True))  # sscs_tf/scoring/diagnostics.py; a second pass, swapped sentences.

  config.optim = ml_collections.ConfigDict(dict(
      name="adam",
      learning_rate=1e-4,  # Published: Adam lr 1e-4, betas (0.9, 0.999), no weight decay.
      beta_1=0.9,
      beta_2=0.999,
      epsilon=1e-8,  # PyTorch Adam's default (Keras' is 1e-7).
      weight_decay=0.0,  # PyTorch Adam's weight_decay: L2 coupled into the gradient.
      clip_norm=10.0,  # Published: gradient-norm clip 10.
      plateau_factor=0.8,  # Published: ReduceLROnPlateau(factor 0.8, patience 20) ...
      plateau_patience=20,
      # ... on the validation loss ("loss" on data.val_split), only where one exists.
      plateau_monitor="loss" if val_split else "",
  ))

  return _finish(config, num_epochs=100, best_metric="Rank1@0.5",  # Published: 100 epochs.
                 sscs=sscs, paper_optim=paper_optim, runlocal=runlocal)


def lgi_config(*, dataset: str, feature_dim: int, num_phrases: int, num_nonlocal_blocks: int,
               num_heads: int, dqa_lambda: float, max_query_length: int, output_activation: str,
               num_epochs: int, val_split: str, eval_split: str,
               runlocal: bool, sscs: str = "off",
               paper_optim: bool = False) -> ml_collections.ConfigDict:
  """The LGI config; dataset files pass their published values (the authors' option files,
  JonghwanMun/LGI4temporalgrounding `src/experiment/options/*/tgn_lgi/LGI.yml`;
  docs/models.md)."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = default.get_data_config()
  config.data.dataset = dataset
  config.data.protocol = "lgi"  # LGI's data code neither clips nor drops annotations.
  config.data.sampling = "pick"  # LGI picks rows (random offset in training) ...
  config.data.num_segments = 128  # ... into 128 segments, zero-padding shorter videos.
  config.data.map_size = 0  # No 2D-TAN IoU map; the pipeline emits gt_segment_mask.
  config.data.normalize_rows = False  # LGI's reference feeds the features as they are.
  config.data.max_query_length = max_query_length
  config.data.val_split = val_split
  config.data.eval_split = eval_split
  config.data.batch_size = 100  # Published: batch 100.

  config.model = ml_collections.ConfigDict(dict(
      name="lgi",
      feature_dim=feature_dim,
      # Filled from the data_prep output (vocab.txt) when training starts.
      vocab_size=0,
      embedding_dim=300,  # Published: learned 300-d word embedding, random init (no GloVe).
      hidden_size=512,  # Published: video and query features 512 (BiLSTM 2 x 256).
      num_segments=128,
      num_phrases=num_phrases,
      num_nonlocal_blocks=num_nonlocal_blocks,
      num_heads=num_heads,
      local_kernel_size=15,  # Published: residual block with kernel 15.
      dropout=0.5,
      output_activation=output_activation,
      max_query_length=max_query_length,
  ))

  config.loss = ml_collections.ConfigDict(dict(
      regression_weight=1.0,  # Published: the three terms summed with weight 1.
      attention_guidance_weight=1.0,
      distinct_query_weight=1.0,
      dqa_lambda=dqa_lambda,  # lambda of ||A A^T - lambda I||_F^2.
  ))

  # R@1 with IoU >= m (>=, where 2D-TAN's Rank n@m uses >); one prediction, no NMS.
  config.eval = ml_collections.ConfigDict(dict(iou_thresholds=[0.3, 0.5, 0.7], ranks=[1],
                                               query_diagnostics=True))

  config.optim = ml_collections.ConfigDict(dict(
      name="adam",
      learning_rate=4e-4,  # Published: Adam lr 4e-4, no schedule, no clipping.
      beta_1=0.9,
      beta_2=0.999,
      epsilon=1e-8,  # PyTorch Adam's default (Keras' is 1e-7).
      weight_decay=0.0,  # PyTorch Adam's weight_decay: L2 coupled into the gradient.
      clip_norm=0.0,
      # LGI has no schedule; these apply only under paper_optim, where a validation split
      # exists (the paper gives no factor: halving, as our decision, docs/sscs.md).
      plateau_factor=0.5,
      plateau_patience=20,
      plateau_monitor="",
  ))

  return _finish(config, num_epochs=num_epochs, best_metric="R1@0.5", sscs=sscs,
                 paper_optim=paper_optim, runlocal=runlocal)


def vslnet_config(*, dataset: str, feature_dim: int, max_position_length: int,
                  num_epochs: int, batch_size: int, val_split: str, eval_split: str,
                  runlocal: bool, sscs: str = "off",
                  paper_optim: bool = False) -> ml_collections.ConfigDict:
  """The VSLNet config; dataset files pass their published values (the authors' `main.py`
  defaults, 26hzhang/VSLNet; docs/models.md)."""
  config = ml_collections.ConfigDict()
  config.seed = 12345  # Published: --seed 12345.

  config.data = default.get_data_config()
  config.data.dataset = dataset
  config.data.protocol = "vslnet"  # Times clipped to [0, duration], no query dropped.
  # Rows kept as they are up to max_pos_len (zero-padded), averaged into it beyond.
  config.data.sampling = "pad_or_average"
  config.data.num_segments = max_position_length
  config.data.map_size = 0  # No 2D-TAN IoU map; the targets are steps (models/vslnet.py).
  config.data.normalize_rows = False  # The authors feed the .npy rows as they are.
  config.data.max_query_length = max_position_length  # Words cut at max_pos_len.
  config.data.highlight_extend = 0.1  # Published: --extend 0.1 of the span each side.
  config.data.val_split = val_split
  config.data.eval_split = eval_split
  config.data.batch_size = batch_size

  config.model = ml_collections.ConfigDict(dict(
      name="vslnet",
      feature_dim=feature_dim,
      vocab_size=0,  # Filled from the data_prep output (vocab.txt) when training starts.
      embedding_dim=300,  # Published: --word_dim 300, GloVe 840B, frozen.
      embeddings_file="auto",  # The data's GloVe rows when data_prep wrote them.
      # The authors' character CNN (--char_dim 50): their table holds padding, unknown and
      # the characters seen at least 5 times in the train and test tokens; that rule on this
      # project's Charades-STA tokens keeps 29. Each word's characters come from the data's
      # vocab.txt (models/vslnet.py).
      char_vocab_size=31,
      vocab_file="auto",
      char_dim=50,
      hidden_size=128,  # Published: --hidden_size 128.
      num_heads=8,  # Published: --num_heads 8.
      max_position_length=max_position_length,
      dropout=0.2,  # Published: --drop_rate 0.2.
      predictor="rnn",  # Published: --predictor rnn (default).
  ))

  config.loss = ml_collections.ConfigDict(dict(
      highlight_lambda=5.0,  # Published: --highlight_lambda 5.0.
      # The authors' regulariser under TensorFlow 2: keras l2(3e-7) = 3e-7 sum(w^2).
      l2_weight=3e-7,
  ))

  # R@1 with IoU >= m and mIoU (util/runner_utils.py, eval_test); top_k segments served.
  config.eval = ml_collections.ConfigDict(dict(iou_thresholds=[0.3, 0.5, 0.7], ranks=[1],
                                               top_k=5, query_diagnostics=True))

  config.optim = ml_collections.ConfigDict(dict(
      # Published: BERT's AdamWeightDecayOptimizer (model/ops.py `create_optimizer`) ...
      name="adam_weight_decay",
      learning_rate=1e-4,  # ... --init_lr 1e-4 ...
      beta_1=0.9,  # ... betas (0.9, 0.999), epsilon 1e-6 ...
      beta_2=0.999,
      epsilon=1e-6,
      weight_decay=0.01,  # ... weight_decay_rate 0.01, except for ...
      # ... exclude_from_weight_decay=['LayerNorm', 'layer_norm', 'bias'] on their variable
      # names: the biases and the layer norms' scale and bias, here by the port's paths.
      weight_decay_exclude=(r"bias", r"/gamma$", r"/beta$"),
      schedule="linear",  # ... polynomial_decay(power 1.0, end 0) over all steps ...
      warmup_proportion=0.0,  # ... --warmup_proportion 0.0.
      clip_norm=1.0,  # Published: --clip_norm 1.0.
      plateau_factor=0.5,  # VSLNet has no plateau schedule; these apply under paper_optim.
      plateau_patience=20,
      plateau_monitor="",
  ))

  # Published: --epochs 100; the authors keep the best R1@0.7 on the test set.
  return _finish(config, num_epochs=num_epochs, best_metric="R1@0.7", sscs=sscs,
                 paper_optim=paper_optim, runlocal=runlocal)


def _finish(config: ml_collections.ConfigDict, *, num_epochs: int, best_metric: str,
            sscs: str, paper_optim: bool, runlocal: bool) -> ml_collections.ConfigDict:
  """The parts every baseline shares: training, the Sscs branch, the two switches; locked."""
  config.train = training.train_config(num_epochs=num_epochs, best_metric=best_metric)
  config.sscs = training.sscs_config(config.data.dataset, sscs)
  if paper_optim:
    training.apply_paper_optim(config)
  if runlocal:
    shrink_for_local_run(config)
  config.lock()
  return config


def shrink_for_local_run(config: ml_collections.ConfigDict) -> None:
  """Tiny widths and a short run, to try the whole loop on a laptop CPU in minutes; the
  baseline's own widths come from its record (`Baseline.local_run`)."""
  config.model.hidden_size = 32
  widths = models.get(config.model.name).local_run
  unknown = sorted(set(widths) - set(config.model))
  if unknown:
    raise ValueError(f"The local-run widths {unknown} of model {config.model.name!r} are not "
                     "fields of config.model.")
  config.model.update(widths)
  config.data.batch_size = 8
  config.data.eval_batch_size = 16
  config.data.shuffle_buffer = 256
  config.train.num_epochs = 2


def shrink_for_demo(config: ml_collections.ConfigDict, seed: int, hidden_size: int = 64):
  """The demo configs' common changes: small widths, and a larger learning rate (a small
  model on clean synthetic data learns faster than the published rates allow in minutes)."""
  with config.unlocked():
    config.seed = seed
    config.model.hidden_size = hidden_size
    config.data.batch_size = 32
    config.data.shuffle_buffer = 2048
    config.optim.learning_rate = 1e-3
    config.train.log_every_steps = 20
    config.train.checkpoint_every_steps = 100
    config.sscs.dim = hidden_size
    config.sscs.caption_units = hidden_size
    config.sscs.caption_embedding_dim = hidden_size
  return config
