"""Training: the config made final against the data (`run_config`), the state a run
checkpoints (`train_state`), the objective of Eq. 1 where a baseline meets the Sscs branch
(`objective`), the custom loop under `tf.distribute` (`train_lib`, `distribute`), the
learning-rate schedule (`schedules`), TensorBoard (`summaries`) and studies of several runs
(`study`).

May import (from sscs_tf): core, data, scoring, models, sscs, run, evaluate, report.
"""
