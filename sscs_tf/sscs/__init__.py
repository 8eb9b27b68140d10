"""The Sscs branch (paper, Sec. 3): support sets, support functions, the caption decoder and
the contrastive and caption objectives, as one Keras layer (`branch.SscsBranch`) that reads
any model's clip and sentence features (`models.contract`). Training only: evaluation,
export and serving never import it.

May import (from sscs_tf): core, data, models.
"""
