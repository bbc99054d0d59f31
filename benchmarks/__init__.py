"""Speed benchmarks; each prints a table, or one JSON line with --json."""
import bigo_facegen  # noqa: F401  (first: it keeps TensorFlow's CUDA probe quiet on a machine without a GPU)
