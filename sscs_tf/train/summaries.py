"""TensorBoard: loss components, learning rate, throughput, metrics, the config, and the
paper's analysis figures (Figs. 7 and 8, sscs_tf/report/analysis.py) on the evaluation split.
"""

import os

import tensorflow as tf

from sscs_tf.evaluate import eval_lib
from sscs_tf.report import analysis
from sscs_tf.scoring import diagnostics


class Writer:
  """Summary writers for `{workdir}/tensorboard/{train,<split>}`; no-ops off the chief."""

  def __init__(self, workdir: str, config, enabled: bool = True):
    self.enabled = enabled
    self.config = config
    self._writers = {}
    self.root = os.path.join(workdir, "tensorboard")
    self._fixed_batch = None
    if enabled:
      with self._writer("train").as_default():
        tf.summary.text("config", "```\n" + config.to_json_best_effort(indent=2) + "\n```",
                        step=0)

  def _writer(self, name: str):
    if name not in self._writers:
      self._writers[name] = tf.summary.create_file_writer(os.path.join(self.root, name))
    return self._writers[name]

  def train_scalars(self, step, values: dict, learning_rate: float, rate: float, names):
    if not self.enabled:
      return
    with self._writer("train").as_default(step=step):
      for name in names:
        tf.summary.scalar(f"loss/{name}", values[name])
      if "sscs_fell_back" in values and self.config.sscs.support == "non_gt":
        tf.summary.scalar("sscs/non_gt_fallbacks", values["sscs_fell_back"])
      tf.summary.scalar("learning_rate", learning_rate)
      tf.summary.scalar("throughput/queries_per_second", rate)

  def eval_scalars(self, step, split: str, table: dict):
    if not self.enabled:
      return
    with self._writer(split).as_default(step=step):
      for name, value in table.items():
        if name not in eval_lib.NOT_METRICS:
          tf.summary.scalar(f"metrics/{name}" if name != "loss" else "loss/vg", value)
      # Does the model read the sentence (sscs_tf/scoring/diagnostics.py)?
      for name, value in diagnostics.flat(table.get("query_dependence", {})).items():
        tf.summary.scalar(name, value)

  def analysis_images(self, step, state, predictions, split=None):
    """Fig. 7 on a fixed batch and Fig. 8 on the whole of `split` (default: the evaluation
    split; the trainer passes the validation split)."""
    if not self.enabled:
      return
    split = split or self.config.data.eval_split
    if self._fixed_batch is None:
      self._fixed_batch = analysis.fixed_batch(self.config, split)
    images = analysis.analysis_figures(state.model, self._fixed_batch, predictions,
                              f"{split} split, step {int(step)}")
    with self._writer(split).as_default(step=step):
      for name, (png, description) in images.items():
        tf.summary.image(name, tf.io.decode_png(png, channels=3)[None], step=step,
                         description=description)

  def close(self):
    for writer in self._writers.values():
      writer.close()
