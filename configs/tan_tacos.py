r"""2D-TAN on TACoS (the 2D-TAN split: train / val / test).

  --config configs/tan_tacos.py                 # conv map, C3D features
  --config configs/tan_tacos.py:variant=pool
  --config configs/tan_tacos.py:runlocal

Published values from the 2D-TAN code's tacos configs (microsoft/2D-TAN,
`experiments/tacos/`; docs/models.md).
"""

from configs import common

FEATURE_DIMS = {"c3d": 4096}  # Published: TALL's C3D features, 4096-d.
# Published: NMS threshold 0.5 for the conv map, 0.4 for the pool map.
NMS_THRESH = {"conv": 0.5, "pool": 0.4}


def get_config(arg=None):
  args = common.parse_arg(arg, variant="conv", feature="c3d", **common.COMMON_ARGS)
  common.check_choice("variant", args.variant, NMS_THRESH)
  common.check_choice("feature", args.feature, FEATURE_DIMS)
  return common.tan_config(
      dataset="tacos",
      variant=args.variant,
      feature_dim=FEATURE_DIMS[args.feature],
      num_clips=128,  # Published: N = 128 (pooling stride 2).
      num_scale_layers=[16, 8, 8, 8],  # Published: four scales.
      map_kernel_size=5,  # Published: map convolutions 5 x 5 ...
      map_num_layers=8,  # ... 8 layers.
      min_iou=0.3,  # Published: loss targets scaled from IoU 0.3 ...
      max_iou=0.7,  # ... to 0.7.
      nms_thresh=NMS_THRESH[args.variant],
      iou_thresholds=[0.1, 0.3, 0.5, 0.7],  # Published: Rank n@m, m in {0.1, 0.3, 0.5, 0.7}.
      val_split="val",  # Drives ReduceLROnPlateau.
      eval_split="test",
      runlocal=args.runlocal, sscs=args.sscs, paper_optim=args.paper_optim)
