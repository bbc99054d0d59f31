"""Command-line entry points, each a thin shell over a library function."""
import bigo_facegen  # noqa: F401  (first: it keeps TensorFlow's CUDA probe quiet on a machine without a GPU)
