"""The spark extra stays optional: clear errors without pyspark or Java."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": SRC, **env}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=120
    )


def test_import_recforge_skips_pyspark_and_recforge_spark_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['pyspark'] = None  # as if not installed\n"
        "import recforge, recforge.data, recforge.pipeline.runner\n"
        "assert 'pyspark' not in [m for m, v in sys.modules.items() if v is not None]\n"
        "from recforge.exceptions import MissingDependencyError\n"
        "try:\n"
        "    import recforge.spark\n"
        "except MissingDependencyError as exc:\n"
        "    print('ERR', exc)\n"
    )
    res = _python(code)
    assert res.returncode == 0, res.stderr
    assert "ERR recforge.spark needs pyspark" in res.stdout
    assert "pip install 'recforge[spark]'" in res.stdout


def test_spark_session_without_java_says_so() -> None:
    pytest.importorskip("pyspark")
    code = (
        "from recforge import spark as rs\n"
        "from recforge.exceptions import MissingDependencyError\n"
        "try:\n"
        "    rs.spark_session()\n"
        "except MissingDependencyError as exc:\n"
        "    print('ERR', exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = "/nonexistent"
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "PYTHONPATH": SRC},
    )
    assert res.returncode == 0, res.stderr
    assert "no 'java' was found" in res.stdout
    assert "openjdk-17-jre-headless" in res.stdout
