r"""LGI on ActivityNet Captions.

  --config configs/lgi_activitynet.py            # C3D-PCA features
  --config configs/lgi_activitynet.py:runlocal

Published values from the LGI code's anet option file (JonghwanMun/LGI4temporalgrounding,
`src/experiment/options/anet/tgn_lgi/LGI.yml`; docs/models.md). The authors test
on val_1 and val_2 together; data_prep names them `val` and `test`, and this config
evaluates `test` (val_2, the split the 2D-TAN configs test on). Evaluating `val` as well
(--config.data.eval_split=val) gives the other half of the authors' test set.
"""

from configs import common

FEATURE_DIMS = {"c3d": 500}  # Published: the official C3D features, PCA to 500-d.


def get_config(arg=None):
  args = common.parse_arg(arg, feature="c3d", **common.COMMON_ARGS)
  common.check_choice("feature", args.feature, FEATURE_DIMS)
  return common.lgi_config(
      dataset="activitynet_captions",
      feature_dim=FEATURE_DIMS[args.feature],
      num_phrases=5,  # Published: 5 semantic phrases ...
      num_nonlocal_blocks=1,  # ... 1 non-local block ...
      num_heads=1,  # ... of 1 head ...
      dqa_lambda=0.2,  # ... distinct query lambda 0.2 ...
      max_query_length=25,  # ... queries cut at 25 words.
      output_activation="sigmoid",  # Published: sigmoid on (t_s, t_e).
      num_epochs=300,  # Published: 300 epochs.
      val_split="val",  # val_1; unused while optim.plateau_monitor is empty.
      eval_split="test",
      runlocal=args.runlocal, sscs=args.sscs, paper_optim=args.paper_optim)
