"""``python -m recforge``: the command line, as the ``recforge`` script."""

from recforge.cli import main

main()
