"""Shared test fixtures: where the real development footage lives, and a quiet TF."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
# CI clones the repository with `shared/` beside it, as in the development checkout.
SHARED = REPO.parent / "shared"
REAL_FACES = SHARED / "data" / "real_faces" / "dev"


@pytest.fixture(scope="session")
def real_faces_dir() -> Path:
    if not (REAL_FACES / "annotations.json").exists():
        pytest.fail(f"real development footage not found at {REAL_FACES}: tests need ../shared beside the checkout")
    return REAL_FACES


@pytest.fixture(scope="session")
def read_real_frame(real_faces_dir):
    """`read(clip, annotation) -> RGB frame`: the frame of a real clip that an annotation (1-based index) describes."""
    import itertools

    from bigo_facegen import annotations, video

    def read(clip, annotation):
        frames = video.read_frames(annotations.resolve_video_path(clip, real_faces_dir))
        return next(itertools.islice(frames, annotation.index - 1, None))

    return read
