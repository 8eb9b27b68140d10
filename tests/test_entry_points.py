"""setup.py's console scripts and the Bazel py_binary targets name the same tools."""

import ast
import os
import re

from tests.testing import REPO_ROOT


def _console_scripts():
  tree = ast.parse(open(os.path.join(REPO_ROOT, "setup.py")).read())
  for node in ast.walk(tree):
    if isinstance(node, ast.Dict) and any(
        isinstance(k, ast.Constant) and k.value == "console_scripts" for k in node.keys):
      scripts = node.values[[k.value for k in node.keys].index("console_scripts")]
      return dict(s.value.split("=") for s in scripts.elts)
  raise AssertionError("setup.py defines no console_scripts")


def test_every_console_script_is_a_bazel_binary_and_exists():
  scripts = _console_scripts()
  build = open(os.path.join(REPO_ROOT, "BUILD")).read()
  bazel = dict(re.findall(r'"(sscs-[\w-]+)": "([\w.:]+)"', build))
  assert bazel == scripts
  for target in scripts.values():
    module, function = target.split(":")
    source = open(os.path.join(REPO_ROOT, *module.split(".")) + ".py").read()
    assert re.search(rf"^def {function}\(\):", source, re.M), target
