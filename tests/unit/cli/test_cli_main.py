"""Tests of the root app: command registration, error mapping and exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from recforge.cli import EXIT_ERROR, EXIT_INTERRUPTED, _RootGroup, app, main
from recforge.exceptions import DataError


def test_help_lists_commands(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("evaluate", "demo", "datasets", "data"):
        assert command in result.output


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys\n"
        "from recforge.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('numba', 'optuna', 'fastapi', 'sklearn', 'recforge.models.als',"
        " 'recforge.evaluation') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert "HEAVY []" in out


def _probe_app() -> typer.Typer:
    probe = typer.Typer(cls=_RootGroup)

    @probe.command()
    def fail() -> None:
        raise DataError("ratings.csv: column 'rating' has a non-numeric value 'x' at line 3")

    @probe.command()
    def interrupt() -> None:
        raise KeyboardInterrupt

    return probe


def test_recforge_error_is_one_red_line(runner: CliRunner) -> None:
    result = runner.invoke(_probe_app(), ["fail"])
    assert result.exit_code == EXIT_ERROR
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ratings.csv: column 'rating'")


def test_keyboard_interrupt_exits_130(runner: CliRunner) -> None:
    result = runner.invoke(_probe_app(), ["interrupt"])
    assert result.exit_code == EXIT_INTERRUPTED


def test_main_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ok:
        main(["datasets", "list"])
    assert ok.value.code in (0, None)
    assert "movielens-small" in capsys.readouterr().out
    with pytest.raises(SystemExit) as bad:
        main(["data", "describe", "no-such-data-set"])
    assert bad.value.code == EXIT_ERROR
    assert "neither a file nor a known data set" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["no-such-command"])
    assert usage.value.code == 2
