"""A trained model over one split: the paper's table, the loss, the query-dependence
diagnostic and per-query predictions (`eval_lib`), through each baseline's scorer.

May import (from sscs_tf): core, data, scoring, models, run.
"""
