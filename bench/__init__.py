"""bench: a benchmark harness for spatially scalable learned image compression."""

__version__ = "0.1.0"
