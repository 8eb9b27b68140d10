"""A run folder read back: its final config, its vocabulary and a trained model from its
checkpoints (`run_dir`), for evaluation, export and the importers, without importing training.

May import (from sscs_tf): core, data, models.
"""
