"""Shared test fixtures: where the real development footage lives, a quiet TF, and processes kept off the network."""
import dataclasses
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
# CI clones the repository with `shared/` beside it, as in the development checkout.
SHARED = REPO.parent / "shared"
REAL_FACES = SHARED / "data" / "real_faces" / "dev"
NO_NETWORK = Path(__file__).resolve().parent / "no_network"


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


@dataclasses.dataclass(frozen=True)
class Offline:
    """`env`: the environment of a process that may not reach the network, nor may any Python process it starts
    (`tests/no_network`), with an empty home folder of its own (`home`); `log` lists what tried."""
    env: dict
    home: Path
    log: Path

    def check(self) -> None:
        """Fails if a process tried the network, or if Beam cached a Prism download (~/.apache_beam)."""
        assert not self.log.exists(), self.log.read_text()
        assert not (self.home / ".apache_beam").exists()


@pytest.fixture
def offline(tmp_path) -> Offline:
    home = tmp_path / "home"
    home.mkdir()
    path = os.pathsep.join(filter(None, [str(NO_NETWORK), os.environ.get("PYTHONPATH")]))
    log = tmp_path / "network.log"
    return Offline({**os.environ, "HOME": str(home), "NO_NETWORK_LOG": str(log), "PYTHONPATH": path}, home, log)
