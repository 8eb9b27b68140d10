"""The `train` and `sscs` sections shared by every baseline config, and the Sscs variants.

  --config configs/tan_charades.py:sscs=ss              # SS, both objectives, V-SS + CA
  --config configs/tan_charades.py:sscs=gtc_contrast    # a Table 1 row
  --config configs/tan_charades.py:sscs=ss_non_gt_mp    # a Table 2 cell
  --config configs/tan_charades.py:sscs=ss,paper_optim  # the paper's optimiser settings

Where the paper is silent, the value is a decision, marked so (see docs/sscs.md).
"""

import itertools

import ml_collections

# Paper, Sec. 4.2: lambda1 = lambda2 = 0.1 on Charades-STA, 0.001 on TACoS. ActivityNet
# Captions: not given (decision: 0.1, as Charades-STA).
LAMBDAS = {"charades_sta": 0.1, "tacos": 0.001, "activitynet_captions": 0.1}

SUPPORTS = ("video", "gt", "non_gt")
FUNCTIONS = ("ca", "sa", "fc", "conv", "mp", "ap")


def _variants() -> dict:
  """Variant name -> (mode, use contrast, use caption, support, function)."""
  variants = {"off": ("off", False, False, "video", "ca")}
  # Table 1: GTC / SS x contrast, caption, both (SS with V-SS + CA, the paper's default).
  for mode in ("gtc", "ss"):
    variants[mode] = (mode, True, True, "video", "ca")
    variants[f"{mode}_contrast"] = (mode, True, False, "video", "ca")
    variants[f"{mode}_caption"] = (mode, False, True, "video", "ca")
  # Table 2: support set x function, both objectives.
  for support, function in itertools.product(SUPPORTS, FUNCTIONS):
    variants[f"ss_{support}_{function}"] = ("ss", True, True, support, function)
  return variants


SSCS_VARIANTS = _variants()


def sscs_config(dataset: str, variant: str = "off") -> ml_collections.ConfigDict:
  """`config.sscs`: exactly the SscsBranch constructor's arguments (mode "off": no branch)."""
  if variant not in SSCS_VARIANTS:
    raise ValueError(f"Unknown sscs variant {variant!r}; known: {sorted(SSCS_VARIANTS)}.")
  mode, contrast, caption, support, function = SSCS_VARIANTS[variant]
  weight = LAMBDAS[dataset]
  return ml_collections.ConfigDict(dict(
      mode=mode,
      lambda1=weight if contrast else 0.0,  # Eq. 1 weight of L_contrast.
      lambda2=weight if caption else 0.0,  # Eq. 1 weight of L_caption.
      tau=0.1,  # Paper: tau = 0.1.
      dim=256,  # Decision: size of the shared space of X, Y and w.
      head="linear",  # Decision: Psi and Phi are one Dense each ("mlp": two).
      support=support,  # Sec. 3.4; V-SS is the paper's best.
      function=function,  # Sec. 3.4; CA is the paper's best.
      # Decision: Eq. 2 and 6 sum over the batch as written (the lambdas were tuned so);
      # "mean" divides by the global batch. The caption loss is a mean (Eq. 3, 7).
      reduction="sum",
      num_clips=0,  # Filled from the model when training starts (2D-TAN: N; LGI: 128).
      vocab_size=0,  # Filled from the data (the caption decoder's softmax).
      caption_units=256,  # Decision: 1-layer GRU decoder of 256 units ...
      caption_embedding_dim=256,  # ... reading its own 256-d word embeddings.
  ))


def train_config(num_epochs: int, best_metric: str) -> ml_collections.ConfigDict:
  """`config.train`: the loop's schedule, precision and strategy."""
  return ml_collections.ConfigDict(dict(
      num_epochs=num_epochs,
      num_train_steps=0,  # > 0 overrides num_epochs.
      steps_per_call=1,  # Train steps per compiled call (more: less Python overhead).
      log_every_steps=50,
      checkpoint_every_steps=500,
      keep_checkpoints=3,
      eval_every_epochs=1,
      # The query-dependence control (eval.query_diagnostics, a second pass over the split):
      # at the last evaluation and at each new best; N > 0 adds every N-th evaluation.
      query_check_every=0,
      best_metric=best_metric,  # Keeps the checkpoint with the best value in `best/`.
      # Fig. 7 and Fig. 8 as TensorBoard images at each evaluation (about 1-2 s each on a
      # CPU, mostly drawing them); off: scalars only.
      analysis_images=True,
      precision="float32",  # Or "mixed_bfloat16" / "mixed_float16" (with loss scaling).
      # XLA for the train step's forward and backward pass and the evaluation forward pass.
      # Off: on CPU it is slower and larger for 2D-TAN (docs/benchmarks.md, "XLA").
      jit_compile=False,
      strategy="auto",  # auto | mirrored | multi_worker | default
      devices=[],  # Explicit devices for MirroredStrategy, e.g. ["/cpu:0", "/cpu:1"].
  ))


def apply_paper_optim(config: ml_collections.ConfigDict) -> None:
  """The Sscs paper's settings (Sec. 4.2): Adam lr 1.6e-2, batch 256, ReduceLROnPlateau.

  They clash with each baseline's published optimiser, which the configs keep by default
  (decision). The paper does not say what the schedule monitors: the validation loss where
  a validation split exists (as 2D-TAN does), no schedule otherwise, so the test split never
  steers training.
  """
  config.optim.learning_rate = 1.6e-2
  if config.optim.name != "adam" or config.optim.get("schedule", "constant") != "constant":
    # A baseline trained otherwise (VSLNet) takes the paper's plain Adam and its schedule.
    config.optim.name, config.optim.schedule = "adam", "constant"
    config.optim.weight_decay, config.optim.warmup_proportion = 0.0, 0.0
  config.data.batch_size = 256
  config.optim.plateau_monitor = "loss" if config.data.val_split else ""
