"""lead-bench: sim-to-real benchmark harness for end-to-end driving."""

__version__ = "0.1.0"
