"""The ``growth`` program: one module per command group, wired in ``cli.app``."""

from growthengine.cli.app import main

__all__ = ["main"]
