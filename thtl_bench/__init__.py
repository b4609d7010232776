"""thtl-bench: a benchmark suite for two-step heterogeneous transfer learning in medical imaging."""

__version__ = "0.1.0"
