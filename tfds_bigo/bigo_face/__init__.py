"""bigo_face dataset."""
from tfds_bigo.bigo_face.bigo_face_dataset_builder import Builder, BigoFaceConfig, folder_config  # noqa: F401
