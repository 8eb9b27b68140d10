r"""2D-TAN on ActivityNet Captions (val_1 is the validation split, val_2 the test split).

  --config configs/tan_activitynet.py            # conv map, C3D-PCA features
  --config configs/tan_activitynet.py:variant=pool
  --config configs/tan_activitynet.py:runlocal

Published values from the 2D-TAN code's activitynet configs (microsoft/2D-TAN,
`experiments/activitynet/`; docs/models.md).
"""

from configs import common

FEATURE_DIMS = {"c3d": 500}  # Published: the official C3D features, PCA to 500-d.
# Published: NMS threshold 0.5 for both map variants.
NMS_THRESH = {"conv": 0.5, "pool": 0.5}


def get_config(arg=None):
  args = common.parse_arg(arg, variant="conv", feature="c3d", **common.COMMON_ARGS)
  common.check_choice("variant", args.variant, NMS_THRESH)
  common.check_choice("feature", args.feature, FEATURE_DIMS)
  return common.tan_config(
      dataset="activitynet_captions",
      variant=args.variant,
      feature_dim=FEATURE_DIMS[args.feature],
      num_clips=64,  # Published: N = 64 (pooling stride 4).
      num_scale_layers=[16, 8, 8],  # Published: three scales.
      map_kernel_size=9,  # Published: map convolutions 9 x 9 ...
      map_num_layers=4,  # ... 4 layers.
      min_iou=0.5,  # Published: loss targets scaled from IoU 0.5 ...
      max_iou=1.0,  # ... to 1.0.
      nms_thresh=NMS_THRESH[args.variant],
      iou_thresholds=[0.3, 0.5, 0.7],  # Published: Rank n@m for m in {0.3, 0.5, 0.7}.
      # data_prep names val_1.json `val` and val_2.json `test`.
      val_split="val",  # Drives ReduceLROnPlateau.
      eval_split="test",
      runlocal=args.runlocal, sscs=args.sscs, paper_optim=args.paper_optim)
