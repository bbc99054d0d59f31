"""TFDS builders of bigo-facegen; importing this package registers `bigo_face` (`tfds build --imports=tfds_bigo`)."""
from tfds_bigo import bigo_face  # noqa: F401  (registers the builder)
