"""How a predicted interval is scored, as pure functions of arrays: the baselines' grounding
losses (`losses`), temporal IoU, NMS and the paper's metrics (`metrics`), and the
query-dependence diagnostic (`diagnostics`).

May import (from sscs_tf): nothing.
"""
