"""The ``policyengine`` command line: check, explain, show, table, test,
simulate, schema. ``python -m policyengine`` and the console script run
``main()``; the core package never imports this one."""

from .commands import main
from .parser import build_parser

__all__ = ["build_parser", "main"]
