"""churnwatch: the application shell (CLI, settings, local stack, simulator)."""

__version__ = "0.1.0"
