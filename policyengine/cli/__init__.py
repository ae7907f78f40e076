"""The ``policyengine`` command line: check, explain, show, table, test,
simulate, schema. ``python -m policyengine`` and the console script run
``main()``; the core package never imports this one."""

from .commands import build_parser, main

__all__ = ["build_parser", "main"]
