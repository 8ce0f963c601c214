"""The ``recforge`` command line: thin commands over the library.

``main()`` is the console entry point. Errors raised by recforge (:class:`RecforgeError`) are
shown as one red line on standard error with exit code 2; Ctrl-C exits with 130. Heavy
libraries are imported inside the commands, so ``recforge --help`` stays fast.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from recforge.exceptions import RecforgeError

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "app", "main"]

#: Exit code of a failure reported by recforge (bad data, configuration or model).
EXIT_ERROR = 2
#: Exit code after Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130


def report_error(exc: BaseException) -> None:
    """Print ``exc`` as one red line on standard error."""
    from rich.markup import escape

    from recforge.cli._common import err_console

    message = " ".join(str(exc).split()) or type(exc).__name__
    err_console().print(f"[bold red]error:[/bold red] [red]{escape(message)}[/red]", soft_wrap=True)


class _RootGroup(TyperGroup):
    """Root command group mapping recforge errors and Ctrl-C to exit codes."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except RecforgeError as exc:
            report_error(exc)
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            report_error(KeyboardInterrupt("interrupted"))
            raise typer.Exit(EXIT_INTERRUPTED) from None


app = typer.Typer(
    name="recforge",
    cls=_RootGroup,
    help="recforge: from raw interaction data to a recommender system in production.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


# --------------------------------------------------------------------------- registration
# Each command module exposes ``register(app)``, which adds its commands or groups. To add
# commands, create ``recforge/cli/_<area>.py`` with a ``register`` function (import heavy
# libraries inside the commands, not at module level) and append the module below.
def _register_commands() -> None:
    from recforge.cli import _data, _demo, _evaluate, _index, _recommend, _replay, _serve

    for module in (_data, _evaluate, _demo, _serve, _replay, _index, _recommend):
        module.register(app)
    from recforge.cli import _pipeline  # init, run, tune, auto, report

    _pipeline.register(app)


_register_commands()
# --------------------------------------------------------------------------- end registration


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``recforge``): run the app and exit with its status.

    Logging is configured here and nowhere in the library: Optuna's per-trial messages are
    silenced (the progress bars and trials.csv say the same).
    """
    logging.getLogger("optuna").setLevel(logging.WARNING)
    try:
        app(args=argv, prog_name="recforge")
    except RecforgeError as exc:  # raised outside a command, e.g. while parsing options
        report_error(exc)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
