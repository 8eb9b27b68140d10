"""The package layout: imports point down the data flow, and inference needs no training code.

Each folder of sscs_tf/ says in its docstring what it may import ("May import (from
sscs_tf): ..."); the table below is that rule, and the tests check the code, the docstrings
and the table against each other (docs/architecture.md).
"""

import ast
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "sscs_tf")

# Folder -> the folders of sscs_tf it may import, in the order of the data flow.
ALLOWED = {
    "core": set(),
    "scoring": set(),
    "features": {"core"},
    "data": {"core"},
    "models": {"core", "data", "scoring"},
    "sscs": {"core", "data", "models"},
    "run": {"core", "data", "models"},
    "evaluate": {"core", "data", "scoring", "models", "run"},
    "report": {"core", "data", "scoring", "models"},
    "serve": {"core", "data", "features", "models", "run"},
    "train": {"core", "data", "scoring", "models", "sscs", "run", "evaluate", "report"},
    "cli": None,  # the tools: every folder
}
# The other top-level packages: data_prep never imports model code; the configs read a
# baseline's local-run widths from its record.
OTHER_PACKAGES = {
    "data_prep": {"core", "data", "features", "cli"},
    "configs": {"models"},
}
# Training code that export, evaluation and grounding must not load.
TRAINING_PREFIXES = ("sscs_tf.train", "sscs_tf.sscs")


def _python_files(folder):
  for directory, _, names in os.walk(folder):
    for name in sorted(names):
      if name.endswith(".py"):
        yield os.path.join(directory, name)


def _imported_folders(path):
  """{(folder of sscs_tf, line)} that the file at `path` imports, at any depth."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  found = set()
  for node in ast.walk(tree):
    names = []
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names = ([f"{node.module}.{alias.name}" for alias in node.names]
               if node.module == "sscs_tf" else [node.module])
    for name in names:
      parts = name.split(".")
      if parts[0] == "sscs_tf" and len(parts) > 1:
        found.add((parts[1], node.lineno))
  return found


def _violations(folder_path, own, allowed):
  bad = []
  for path in _python_files(folder_path):
    for target, line in sorted(_imported_folders(path), key=lambda item: item[::-1]):
      if target != own and target not in allowed:
        bad.append(f"{os.path.relpath(path, ROOT)}:{line} imports sscs_tf.{target}")
  return bad


def test_every_folder_is_in_the_table():
  folders = {name for name in os.listdir(PACKAGE)
             if os.path.isfile(os.path.join(PACKAGE, name, "__init__.py"))}
  assert folders == set(ALLOWED)
  modules = [name for name in os.listdir(PACKAGE) if name.endswith(".py")]
  assert modules == ["__init__.py"], "modules belong in a folder of sscs_tf/"


@pytest.mark.parametrize("folder", sorted(name for name, allowed in ALLOWED.items()
                                          if allowed is not None))
def test_imports_point_down_the_flow(folder):
  assert _violations(os.path.join(PACKAGE, folder), folder, ALLOWED[folder]) == []


@pytest.mark.parametrize("package", sorted(OTHER_PACKAGES))
def test_other_packages_import_only_what_they_may(package):
  assert _violations(os.path.join(ROOT, package), None, OTHER_PACKAGES[package]) == []


def test_the_rule_allows_no_cycle():
  order = []
  remaining = {k: set(v) for k, v in ALLOWED.items() if v is not None}
  while remaining:
    ready = sorted(k for k, v in remaining.items() if not v - set(order))
    assert ready, f"the allowed imports form a cycle among {sorted(remaining)}"
    order += ready
    for name in ready:
      del remaining[name]


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_folder_docstrings_state_the_rule(folder):
  with open(os.path.join(PACKAGE, folder, "__init__.py"), encoding="utf-8") as f:
    doc = ast.get_docstring(ast.parse(f.read())) or ""
  match = re.search(r"^May import \(from sscs_tf\): (.+?)\.$", doc, re.M)
  assert match, f"sscs_tf/{folder}/__init__.py does not say what it may import"
  stated = match.group(1)
  if ALLOWED[folder] is None:
    assert stated == "every folder"
  else:
    assert ({s.strip() for s in stated.split(",")} if stated != "nothing" else set()) == (
        ALLOWED[folder])


def test_the_checker_sees_a_wrong_import(tmp_path):
  (tmp_path / "bad.py").write_text("import os\nfrom sscs_tf.train import train_lib\n"
                                   "def f():\n  from sscs_tf import sscs\n")
  assert _violations(str(tmp_path), "models", ALLOWED["models"]) == [
      f"{os.path.relpath(str(tmp_path / 'bad.py'), ROOT)}:2 imports sscs_tf.train",
      f"{os.path.relpath(str(tmp_path / 'bad.py'), ROOT)}:4 imports sscs_tf.sscs"]


_LOADED = """
import importlib, sys
for name in sys.argv[1:]:
  importlib.import_module(name)
print("\\n".join(sorted(m for m in sys.modules if m.startswith("sscs_tf"))))
"""


def _loaded_modules(*modules):
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  result = subprocess.run([sys.executable, "-c", _LOADED, *modules], capture_output=True,
                          text=True, env=env, cwd=ROOT, check=True)
  return result.stdout.split()


@pytest.mark.parametrize("entry", [
    ("sscs_tf.serve.export_lib", "sscs_tf.serve.grounding", "sscs_tf.cli.export",
     "sscs_tf.cli.ground"),
    ("sscs_tf.evaluate.eval_lib", "sscs_tf.cli.eval"),
])
def test_export_evaluation_and_grounding_load_no_training_code(entry):
  loaded = _loaded_modules(*entry)
  assert set(entry) <= set(loaded)
  assert "sscs_tf.models.tan" in loaded  # the check sees what was imported
  assert [m for m in loaded if m.startswith(TRAINING_PREFIXES)] == []


def test_training_loads_the_branch():
  # The same check on the trainer: it does load the Sscs branch and the schedules.
  loaded = _loaded_modules("sscs_tf.train.train_lib")
  assert {"sscs_tf.sscs.branch", "sscs_tf.train.schedules"} <= set(loaded)
