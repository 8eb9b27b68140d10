"""`Baseline`: everything the project needs to know about one grounding model, in one record.

Sscs attaches to any grounding model (paper, Sec. 3); what differs between models is listed
here, defined next to each model (`models/tan.py`, `models/lgi.py`) and listed once in
`models.BASELINES`. The trainer, the evaluation, the export and the input pipeline read these
fields and nothing else model-specific; docs/architecture.md, "How to add a baseline", walks
through them.

The model contract every baseline keeps (`models/contract.py`): it is called on
`{features [B, S, D], feature_mask [B, S], word_ids [B, L], num_words [B]}` and returns a dict
holding its own outputs plus `clip_features [B, T, H]`, `clip_mask [B, T]` and
`sentence_feature [B, H']`, which the Sscs branch reads.
"""

import dataclasses
from typing import Any, Callable, Mapping

# (outputs, batch, config.loss) -> {term name: per-example loss [B]}, weighted; their sum is
# L_vg of Eq. 1.
GroundingLoss = Callable[[dict, dict, Any], dict]
# (batch, config.data) -> {name: tensor [B, ...]}: targets the loss reads, added per batch by
# the input pipeline (the batch holds the keys `data.pipeline.make_dataset` documents).
Targets = Callable[[dict, Any], dict]


@dataclasses.dataclass(frozen=True)
class Baseline:
  """One grounding model.

  Fields:
    name: `config.model.name`, the key in `models.BASELINES`.
    model: the Keras model class, built as `model(**config.model)` without `name`.
    grounding_loss: per-example loss terms (`GroundingLoss`).
    loss_terms: the names `grounding_loss` returns, in order ("vg" alone when it has one).
    clip_count_field: the `config.model` field giving T of `clip_features`.
    scorer: built as `scorer(config.eval)`; `outputs_to_numpy(outputs)` (static, traced)
      picks what the metric reads, `update(arrays, batch)` accumulates a batch, `result()`
      returns the metric table ({"Rank1@0.5": 0.41, ...}), `per_query()` one dict per
      query (query_id, duration, gt, segments, ious); `TOP1_METRIC` names the top-1 hit
      rate and `STRICT` says whether a hit needs IoU > 0.5 (else >= 0.5).
    serving_head: built as `serving_head(config)`, a `tf.Module` called in the exported
      graph as `head(outputs, durations [B])` -> (segments [B, k, 2] seconds, scores [B, k]).
    targets: what the input pipeline adds to each batch for the loss (`Targets`).
    local_run: the `config.model` widths a `runlocal` config sets (beside the shared
      `hidden_size`), so the whole loop runs on a CPU in minutes.
    demo_config: module of the config `sscs-demo --baseline NAME` trains ("" for none).
  """

  name: str
  model: Callable[..., Any]
  grounding_loss: GroundingLoss
  loss_terms: tuple
  clip_count_field: str
  scorer: Callable[[Any], Any]
  serving_head: Callable[[Any], Any]
  targets: Targets
  local_run: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  demo_config: str = ""
