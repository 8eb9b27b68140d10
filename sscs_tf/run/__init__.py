"""A run between training and its readers: the config made final against the data
(`config.prepare_config`) and a run folder read back, config, vocabulary and checkpoint
(`run_dir`). Evaluation, export and the importers use it without importing training.

May import (from sscs_tf): core, data, models.
"""
