"""The data a model trains on, from the files data_prep writes to batches: the TFRecord schema
(`example`), the index of a data folder (`meta`), the 2D-TAN and LGI ground-truth protocols
(`protocol`), the tokenizer and vocabulary shared with serving (`text`), the feature
preprocessing shared with serving (`preprocess`) and the `tf.data` pipeline (`pipeline`).
Nothing here knows a model: a model's targets reach the pipeline as a function
(`models.contract.make_dataset`).

May import (from sscs_tf): core.
"""
