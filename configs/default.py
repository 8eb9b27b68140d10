"""Defaults shared by every config; dataset/model files override what differs.

A config file defines `get_config(arg)` returning a locked `ml_collections.ConfigDict`;
`config.model` holds exactly the model constructor's arguments.
"""

import ml_collections


def get_data_config() -> ml_collections.ConfigDict:
  """How `sscs_tf.data.pipeline.make_dataset` reads a data_prep output directory."""
  return ml_collections.ConfigDict(dict(
      dataset="charades_sta",
      # Directory written by `python -m data_prep.<dataset>`: meta.json, vocab.txt, shards.
      data_dir="",
      train_split="train",
      # Which annotated queries are read, and with which times (sscs_tf/data/protocol.py):
      # "tan" drops start >= end and clips to [0, duration], as 2D-TAN; "lgi" keeps every
      # query as annotated, as LGI (training targets and test ground truth).
      protocol="tan",
      # Split evaluated during training and by default in sscs-eval.
      eval_split="test",
      # Split that drives ReduceLROnPlateau; empty where the dataset has none (Charades-STA).
      val_split="",
      # "average": rows averaged into num_segments steps (2D-TAN, 256).
      # "pick": num_segments rows picked with a random offset in training (LGI, 128).
      sampling="average",
      # L2-normalise each feature row first (2D-TAN does; LGI's reference does not).
      normalize_rows=True,
      num_segments=256,
      # N of the 2D-TAN IoU target map emitted per query; 0 emits none.
      map_size=16,
      # Words kept per sentence; 0 keeps all (2D-TAN), LGI truncates (10 / 25).
      max_query_length=0,
      batch_size=32,
      eval_batch_size=64,
      # Queries held by the training shuffle buffer.
      shuffle_buffer=8192,
      # Parallel calls in the pipeline's map stages; -1 lets tf.data tune them.
      num_parallel_calls=-1,
  ))
