"""The code passes ruff (lint and format) and mypy (strict), as `./dev lint` runs them: CI runs
only `./dev test`, so this is where lint and types are held. The tools run from this venv, as
subprocesses, on the same paths and configuration (pyproject.toml) as `./dev lint`."""

from __future__ import annotations

import subprocess
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The venv's bin folder: ruff and mypy come with `pip install -e '.[dev]'` (./dev does it).
SCRIPTS = Path(sysconfig.get_path("scripts"))
LINTED = ("shadowdiff", "tests", "benchmarks")


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "check", *LINTED),
        ("ruff", "format", "--check", *LINTED),
        # No paths: mypy checks the `files` of pyproject.toml (the same three folders).
        ("mypy",),
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_code_passes_static_checks(command: tuple[str, ...]) -> None:
    tool = SCRIPTS / command[0]
    assert tool.exists(), f"{tool} is missing: install the dev extra (./dev does)"
    # mypy without a cache (a fresh clone) takes about 7 s here; the limit only stops a hang.
    result = subprocess.run(
        [str(tool), *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=50
    )
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}", pytrace=False)
