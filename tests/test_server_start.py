"""`python server.py --listen` as people type it, with whatever Python is on their PATH."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def python_without_the_requirements() -> str:
    """The interpreter the project's .venv was made from: it has none of the requirements."""
    base = Path(sys.base_prefix) / "bin" / "python3"
    probe = subprocess.run([str(base), "-c", "import gradio"], capture_output=True)
    if probe.returncode == 0:
        pytest.fail(f"{base} has gradio installed; this test needs a Python without the requirements")
    return str(base)


def test_a_bare_python_starts_the_server_inside_the_projects_venv():
    done = subprocess.run([python_without_the_requirements(), "server.py", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--admin-users" in done.stdout and "ModuleNotFoundError" not in done.stderr


def test_without_a_venv_it_says_in_one_line_what_to_run(tmp_path):
    shutil.copy(ROOT / "server.py", tmp_path / "server.py")        # a fresh checkout, before ./start.sh
    done = subprocess.run([python_without_the_requirements(), "server.py", "--listen"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Run ./start.sh first" in lines[0], done.stderr
