"""The ``kvstore`` console script is installed and answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kvstore import __version__


def test_console_script_prints_version() -> None:
    exe = Path(sys.executable).parent / "kvstore"
    assert exe.is_file(), "the kvstore console script is not installed (scripts/setup)"
    result = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"kvstore {__version__}"


def test_no_command_is_a_usage_error() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "kvstore")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "usage: kvstore" in result.stderr
