"""Named points where a kill is most harmful (between the writes of a save), for the
fault-injection tests of docs/reliability.md.

`fault_point(name)` does nothing unless SSCS_KILL_AT_FAULT_POINT=k is set; then the process
kills itself with SIGKILL at the k-th point it passes (1-based, every name counted), as an
operating system or a user's `kill -9` would: no exception handler, no `finally`, no flush.
"""

import os
import signal

ENV = "SSCS_KILL_AT_FAULT_POINT"
_passed = 0


def fault_point(name: str) -> None:  # pylint: disable=unused-argument  (read in a debugger)
  global _passed
  target = os.environ.get(ENV)
  if not target:
    return
  _passed += 1
  if _passed == int(target):
    os.kill(os.getpid(), signal.SIGKILL)
