"""Reading the authors' PyTorch checkpoints (`.pkl`, `.pth`): tensors only, never code.

Both reference importers (`tan_import`, `lgi_import`) read their files here. `torch.load`
runs with `weights_only=True`: tensors and plain containers only, and a pickle naming any
other Python global (code a malicious file would run) is refused before anything runs. Every
way a file can fail to be such a checkpoint ends as one error naming the file. PyTorch is
the optional `torch` extra.
"""

import os
import pickle

import numpy as np

# torch.load's own advice around the reason ("re-run with weights_only=False", "file an
# issue", "check the documentation") is not for a user of this project.
_TORCH_ADVICE = ("Weights only load failed", "Please file an issue", "Check the documentation",
                 "return ")


def read(path: str):
  """What `torch.load(path, weights_only=True)` returns, on the CPU.

  Raises FileNotFoundError, ImportError (PyTorch absent, naming the extra) or ValueError
  (refused or unreadable), each naming `path`.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Checkpoint {path} not found.")
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as error:
    raise ImportError("Reading PyTorch checkpoints needs torch: "
                      "pip install 'sscs_tf[torch]'") from error
  try:
    return torch.load(path, map_location="cpu", weights_only=True)
  except pickle.UnpicklingError as error:
    raise ValueError(f"{path}: refused: the file is not a plain state dict of tensors "
                     f"({_reason(error)})") from None
  except Exception as error:  # pylint: disable=broad-except
    # Garbage stops torch's reader at whatever it trips on: EOFError (empty), KeyError
    # (text), IndexError, RuntimeError (another zip), ...
    raise ValueError(f"{path}: not a PyTorch checkpoint ({type(error).__name__}: "
                     f"{_reason(error) or 'unreadable'})") from None


def _reason(error: Exception) -> str:
  """The line of torch's message that says what was wrong (an unsupported global or
  operand), without its advice."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  kept = [line for line in lines if not line.startswith(_TORCH_ADVICE)]
  return kept[-1] if kept else (lines[0] if lines else "")


def to_numpy(path: str, name: str, tensor) -> np.ndarray:
  """A checkpoint entry as a numpy array; anything but a tensor is named as an error."""
  if not hasattr(tensor, "detach"):
    raise ValueError(f"{path}: entry {name!r} is a {type(tensor).__name__}, not a tensor.")
  return tensor.detach().cpu().numpy()
