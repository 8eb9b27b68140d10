"""Serving: the SavedModel export that takes raw sentences and video features and returns
intervals in seconds (`export_lib`), and grounding sentences with an exported model
(`grounding`). No training code: no optimizer, schedule or Sscs branch.

May import (from sscs_tf): core, data, features, models, run.
"""
