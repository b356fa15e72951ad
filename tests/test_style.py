"""The tree is formatted and linted as pyproject.toml's [tool.ruff] says (ruff is pinned
in the test extras), so a change that is not formatted fails here, in seconds."""

import pathlib
import shutil
import subprocess
import sys

import pytest
from conftest import REPO_ROOT


def ruff(*args: str) -> subprocess.CompletedProcess:
  """Runs the ruff installed beside this Python (else the one on PATH) in the repository."""
  executable = shutil.which("ruff", path=str(pathlib.Path(sys.executable).parent))
  executable = executable or shutil.which("ruff")
  if executable is None:
    pytest.fail("ruff is not installed: `pip install -e '.[test]'` installs the pinned version.")
  return subprocess.run(
    [executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
  )


def test_the_tree_is_formatted():
  result = ruff("format", "--check", ".")
  assert result.returncode == 0, f"run `ruff format .`:\n{result.stdout}{result.stderr}"


def test_the_tree_passes_the_linter():
  result = ruff("check", ".")
  assert result.returncode == 0, f"run `ruff check --fix .`:\n{result.stdout}{result.stderr}"
