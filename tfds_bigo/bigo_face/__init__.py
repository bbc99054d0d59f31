"""bigo_face dataset."""
from tfds_bigo.bigo_face.bigo_face_dataset_builder import BigoFaceConfig, Builder, folder_config  # noqa: F401
