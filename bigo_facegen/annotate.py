"""Annotating new footage with dlib: any folder of videos -> a BIGO-layout folder the rest of the library reads.

    OUT/annotations.json    one object per video (sorted by file name), 68 iBUG points per frame (layout `ibug68`)
    OUT/videos/<name>       the videos, copied (or hard-linked with `link=True`)

The convention is that of ../shared/data/real_faces: per frame, dlib's HOG detector (no upsampling, then one
upsampling step if it finds nothing), the largest detection, the 68-point predictor in it; the bbox is the square of
side 1.6 x the detector box side centred on the mean of the 68 points (`dlib_face.face_box`: so forehead and chin are
inside), rounded to 0.01 px; every point gets flag 2 (visible); a frame without a face gets `"bbox": []` and
`"keypoint": []`.

How the points of a video's frames are found (`TRACKINGS`, `annotate_frames`): `detect`, dlib on every frame as above
(the default here: the shared footage's own convention, which the shipped annotations and the models trained on them
follow), or `track`, dlib's points followed by optical flow and held to dlib (`tracking`: they shake less, and a point
the flow loses is flagged 1, occluded); the bbox convention is the same.

Resumable: each finished video's annotation is kept in OUT/.annotate_cache/ and reused by a later run (as long as
the video file, the frame limit and the tracking are unchanged), and every file appears atomically, so an interrupted
run leaves no half-written file.
"""
from __future__ import annotations

import errno
import itertools
import os
import shutil
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from absl import logging
from tqdm import tqdm

from bigo_facegen import annotations, dlib_face, files, tracking as tracking_lib, video
from bigo_facegen.annotations import FLAG_VISIBLE, FrameAnnotation, VideoAnnotation

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")
CACHE_DIR = ".annotate_cache"
# How a video's points are found: dlib on every frame, or tracked (see the module doc).
DETECT, TRACK = "detect", "track"
TRACKINGS = (DETECT, TRACK)


def annotate_frame(rgb: np.ndarray, index: int) -> FrameAnnotation:
    """dlib's face in one RGB frame, in the real_faces convention (see the module doc)."""
    box = dlib_face.detect(rgb)
    if box is None:
        return FrameAnnotation(index=index)
    points = dlib_face.landmarks(rgb, box)
    return FrameAnnotation(index=index, bbox=dlib_face.face_box(box, points), points=points,
                           flags=np.full(len(points), FLAG_VISIBLE, np.int32))


def annotate_frames(frames: Iterable[np.ndarray], tracking: str = DETECT) -> list[FrameAnnotation]:
    """One annotation per RGB frame of `frames`, numbered from 1, found as `tracking` (`TRACKINGS`) says."""
    check_tracking(tracking)
    if tracking == TRACK:
        return tracking_lib.track(frames)
    return [annotate_frame(rgb, index) for index, rgb in enumerate(frames, start=1)]


def check_tracking(tracking: str) -> None:
    """Raises ValueError unless `tracking` is one of `TRACKINGS`."""
    if tracking not in TRACKINGS:
        raise ValueError(f"unknown tracking {tracking!r}; choose one of {', '.join(TRACKINGS)}")


def read_track(path: str | os.PathLike, tracking: str = DETECT, max_frames: int | None = None,
               progress: bool = True, desc: str | None = None) -> list[FrameAnnotation]:
    """The annotations of every frame (or the first `max_frames`) of the video at `path`, found as `tracking` says,
    with a progress bar over the frames (`desc`: its label, default the file name)."""
    path = Path(path)
    check_tracking(tracking)
    info = video.probe(path)
    total = info.frame_count if max_frames is None else min(max_frames, info.frame_count)
    with tqdm(total=total, desc=desc or path.name, unit="frame", disable=not progress, leave=False) as bar:
        def counted() -> Iterator[np.ndarray]:
            for rgb in itertools.islice(video.read_frames(path), total):
                yield rgb
                bar.update(1)

        return annotate_frames(counted(), tracking)


def annotate_video(path: str | os.PathLike, video_path: str | None = None, progress: bool = True,
                   max_frames: int | None = None, tracking: str = DETECT) -> VideoAnnotation:
    """Annotates every frame (or the first `max_frames`) of the video at `path` as `tracking` (`TRACKINGS`) says;
    `video_path` is what the annotation file will call it (default `videos/<file name>`)."""
    path = Path(path)
    return VideoAnnotation(video=path.name, video_path=video_path or f"videos/{path.name}",
                           frames=read_track(path, tracking, max_frames, progress))


def find_videos(video_dir: str | os.PathLike) -> list[Path]:
    """The video files (by suffix) directly in `video_dir`, sorted by name."""
    video_dir = Path(video_dir)
    if not video_dir.is_dir():
        raise FileNotFoundError(f"{video_dir}: no such folder of videos")
    found = sorted(p for p in video_dir.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not found:
        raise FileNotFoundError(f"{video_dir}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    return found


def annotate_folder(video_dir: str | os.PathLike, out_dir: str | os.PathLike, link: bool = False,
                    progress: bool = True, max_frames: int | None = None, tracking: str = DETECT) -> Path:
    """Annotates every video of `video_dir` into the BIGO-layout folder `out_dir`, its points found as `tracking`
    (`TRACKINGS`) says; returns its annotations.json.

    An unreadable video raises `video.VideoError` naming the file; the videos finished before it stay cached, so
    the next run resumes after it. An `out_dir` that cannot be written raises `files.OutputPathError` first."""
    out_dir = Path(out_dir)
    check_tracking(tracking)
    files.check_output_folder(out_dir, "out_dir")
    sources = find_videos(video_dir)
    cache = out_dir / CACHE_DIR
    results = []
    for source in tqdm(sources, desc="annotate", unit="video", disable=not progress):
        results.append(_cached_annotation(source, cache, progress, max_frames, tracking))
        _place_video(source, out_dir / "videos" / source.name, link)
    path = out_dir / "annotations.json"
    annotations.dump(results, path)
    return path


def _cached_annotation(source: Path, cache: Path, progress: bool, max_frames: int | None, tracking: str
                       ) -> VideoAnnotation:
    # The entry's name records what it was made from: a changed video (or frame limit, or tracking) simply misses the
    # cache.
    stat = source.stat()
    entry = cache / f"{source.name}.{stat.st_size}.{stat.st_mtime_ns}.{max_frames or 'all'}.{tracking}.json"
    if entry.exists():
        return annotations.load(entry)[0]
    result = annotate_video(source, progress=progress, max_frames=max_frames, tracking=tracking)
    annotations.dump([result], entry)
    return result


def _place_video(source: Path, destination: Path, link: bool) -> None:
    # A hard link, not a symbolic one: readers refuse a link out of the data folder, and the folder should hold its
    # files itself.
    if destination.exists() and not destination.is_symlink() and (
            os.path.samefile(destination, source)
            or (not link and destination.stat().st_size == source.stat().st_size)):
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    with files.temporary_file(destination) as tmp:
        try:
            if link:
                tmp.unlink()
                try:
                    os.link(source, tmp)
                except OSError as e:
                    if e.errno != errno.EXDEV:
                        raise
                    logging.warning("%s: on another file system than %s, so copied rather than linked", source,
                                    destination.parent)
                    shutil.copyfile(source, tmp)
            else:
                shutil.copyfile(source, tmp)
            os.replace(tmp, destination)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a hard link in its place is not the file `temporary_file` removes
            raise
