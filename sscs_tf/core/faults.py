"""Named points where a kill is most harmful (between the writes of a save), for the
fault-injection tests of docs/reliability.md.

`fault_point(name)` does nothing unless SSCS_KILL_AT_FAULT_POINT is set; then the process
kills itself with SIGKILL, as an operating system or a user's `kill -9` would (no exception
handler, no `finally`, no flush), at
  * `k`: the k-th point it passes, every name counted (1-based), or
  * `name:k`: the k-th time it passes the point called `name`.
"""

import collections
import os
import signal

ENV = "SSCS_KILL_AT_FAULT_POINT"
_passed = collections.Counter()


def fault_point(name: str) -> None:
  target = os.environ.get(ENV)
  if not target:
    return
  _passed[name] += 1
  _passed[""] += 1
  wanted, _, count = target.rpartition(":")
  if _passed[wanted] == int(count):
    os.kill(os.getpid(), signal.SIGKILL)
