r"""LGI on Charades-STA.

  --config configs/lgi_charades.py              # I3D features
  --config configs/lgi_charades.py:runlocal     # tiny widths, short run
  --config configs/lgi_charades.py:val_split=   # all of train, no checkpoint selection

Published values from the LGI code's charades option file (JonghwanMun/LGI4temporalgrounding,
`src/experiment/options/charades/tgn_lgi/LGI.yml`; docs/models.md).
"""

from configs import common

FEATURE_DIMS = {"i3d": 1024}  # Published: I3D (fine-tuned on Charades), 1024-d.


def get_config(arg=None):
  args = common.parse_arg(arg, feature="i3d", val_split="val", **common.COMMON_ARGS)
  common.check_choice("feature", args.feature, FEATURE_DIMS)
  return common.lgi_config(
      dataset="charades_sta",
      feature_dim=FEATURE_DIMS[args.feature],
      num_phrases=3,  # Published: 3 semantic phrases ...
      num_nonlocal_blocks=2,  # ... 2 non-local blocks ...
      num_heads=4,  # ... of 4 heads ...
      dqa_lambda=0.3,  # ... distinct query lambda 0.3 ...
      max_query_length=10,  # ... queries cut at 10 words.
      # Normalised targets (end / duration) can exceed 1 in Charades-STA: no sigmoid.
      output_activation="relu",
      num_epochs=500,  # Published: 500 epochs.
      # `val`: carved out of the training videos by data_prep.charades_sta; `val_split=`
      # trains on all of train as published, without checkpoint selection.
      val_split=args.val_split,
      eval_split="test",
      runlocal=args.runlocal, sscs=args.sscs, paper_optim=args.paper_optim)
