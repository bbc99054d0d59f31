"""bigo_face on its dummy data: six 4-frame synthetic videos, two per tier, one with a frame without a face.

The dummy data was made with
    python -c "from bigo_facegen import synthetic; synthetic.generate('tfds_bigo/bigo_face/dummy_data', num_videos=6,
               frames_per_video=4, frame_size=(96, 96), seed=0)"
"""
import tensorflow_datasets as tfds

from tfds_bigo.bigo_face import bigo_face_dataset_builder


class BigoFaceTest(tfds.testing.DatasetBuilderTestCase):
    """`bigo` and `folder` read the dummy data as their manual directory; `synthetic` is built in tests/test_data.py's
    way (a generated folder), as generating the full set here would take long."""
    DATASET_CLASS = bigo_face_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["bigo", "folder"]
    SPLITS = {"easy": 2, "medium": 2, "hard": 2}
    # The builder reads local videos with OpenCV (and the annotations with pathlib), not through tf.io.gfile.
    MOCK_OUT_FORBIDDEN_OS_FUNCTIONS = False


if __name__ == "__main__":
    tfds.testing.test_main()
