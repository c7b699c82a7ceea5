"""morgan: a PyPI mirror for restricted and air-gapped networks."""

__version__ = "0.1.0"
