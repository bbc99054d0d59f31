"""Animating a dev-set photo of one person with a dev-set clip of another: the library function and the entry point,
with the driving keypoints tracked or detected on the driving frames or read from a BIGO-layout file, the warp and a
small model; the photo's irises following the driver's gaze, or left as the method paints them."""
import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from bigo_facegen import (
    animate,
    annotate,
    annotations,
    config,
    files,
    gaze,
    generation,
    geometry,
    iris,
    methods,
    motion_transfer,
    tracking as tracking_lib,
    video,
)
from bigo_facegen.annotations import FrameAnnotation
from bigo_facegen.face_model import FaceModel, GenerationError
from bigo_facegen.generation_settings import GenerationSettings
from bigo_facegen.models import registry
from tests import bad_images

REPO = Path(__file__).resolve().parents[1]
SOURCE_CLIP = "mead_W011_neutral.mp4"   # 256 x 256, one person
DRIVER = "dpe_d.mp4"                    # 256 x 256 at 25 fps, another person
SIZE = 32
# Gaze: a test-split person's first frame (lp_d0, 512 px) driven by another's clip that looks about (lp_d10 looks at
# the camera, then image-left at frames 55 to 64, ahead, and image-right at 85 to 95).
GAZE_PHOTO = "lp_d0.mp4"
GAZE_DRIVER = "lp_d10.mp4"
GAZE_FRAMES = 100


@pytest.fixture(scope="module")
def dev(real_faces_dir):
    return {v.video: v for v in annotations.load(real_faces_dir / "annotations.json")}


@pytest.fixture(scope="module")
def photo(real_faces_dir, tmp_path_factory):
    """A photo of the source person, cropped off-centre to a size no clip has (224 x 200), as a PNG file."""
    frame = next(video.read_frames(real_faces_dir / "videos" / SOURCE_CLIP))[20:220, 10:234]
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return path, frame


@pytest.fixture(scope="module")
def model():
    cfg = config.override(config.preset("cpu"), {"data.image_size": SIZE, "data.layout": "ibug68",
                                                 "model.conv_dim": 8, "model.res_blocks": 1})
    return FaceModel.from_generator(registry.build_generator(cfg.model, SIZE, 68), cfg)


def test_a_photo_driven_by_another_persons_clip(photo, real_faces_dir, tmp_path):
    path, frame = photo
    out, face = tmp_path / "out.mp4", tmp_path / "face.mp4"
    stats = animate.animate(methods.WARP, path, real_faces_dir / "videos" / DRIVER, out, face_output=face,
                            max_frames=4, progress=False)
    assert (stats.frames, stats.lost) == (4, 0)
    written = video.probe(out)
    assert (written.width, written.height, written.frame_count, written.fps) == (224, 200, 4, 25.0)
    assert video.probe(face).width == methods.CLASSICAL_FACE_SIZE
    frames = video.read_all(out)
    # Relative motion from the driver's first frame: the first output frame is the photo itself (up to mp4 coding).
    assert np.abs(frames[0].astype(int) - frame.astype(int)).mean() < 3.0
    assert np.abs(frames[3].astype(int) - frames[0].astype(int)).mean() > 0.2  # and then the face moves


def test_a_video_frame_as_source_and_driving_keypoints_from_a_file(model, dev, real_faces_dir, tmp_path):
    # The driver's annotations with frames 2 and 3 lost: those keep frame 1's motion.
    entry = dataclasses.replace(dev[DRIVER], frames=[f if f.index not in (2, 3) else FrameAnnotation(index=f.index)
                                                     for f in dev[DRIVER].frames[:6]])
    annotations.dump([entry], tmp_path / "annotations.json")
    out, face = tmp_path / "out.mp4", tmp_path / "face.mp4"
    method = methods.ModelMethod(model, GenerationSettings(copy_threshold=0.0))
    stats = animate.animate(method, real_faces_dir / "videos" / SOURCE_CLIP, real_faces_dir / "videos" / DRIVER,
                            out, face_output=face, source_frame=30, driving_annotations=tmp_path / "annotations.json",
                            max_frames=5, progress=False)
    assert (stats.frames, stats.lost) == (5, 2) and stats.gaze   # the driver's gaze from its pixels, not the file
    assert video.probe(out).frame_count == 5 and video.probe(face).width == SIZE
    frames = video.read_all(out)
    for lost in (1, 2):  # the same frame as the first, mp4-coded
        assert np.abs(frames[lost].astype(int) - frames[0].astype(int)).mean() < 0.5


def test_lost_driving_frames_make_frames_like_the_last_found_one(photo, dev):
    _, frame = photo
    source = annotate.annotate_frame(frame, 1)
    track = [dev[DRIVER].frames[0], dev[DRIVER].frames[5], FrameAnnotation(index=3)]
    targets = motion_transfer.transfer(source, (224, 200), track, (256, 256), 25.0)
    made = [r.frame for r in methods.Warp().frames(frame, source, targets)]
    np.testing.assert_array_equal(made[2], made[1])
    assert not np.array_equal(made[1], made[0])


class Recording(methods.Warp):
    """The warp, keeping what animate gave it: the source's face and the targets."""

    def frames(self, reference_frame, reference, targets, teeth=None):
        self.given = (reference, list(targets))
        return super().frames(reference_frame, reference, targets)


@pytest.mark.parametrize("tracking", annotate.TRACKINGS)
def test_a_clip_driving_its_own_frame_is_given_its_track_itself(real_faces_dir, tmp_path, tracking):
    """The source face of a frame of the driving clip is the track's there, not a second detection: with relative
    motion from that frame and no smoothing, the targets are the track itself."""
    clip = real_faces_dir / "videos" / DRIVER
    method = Recording()
    stats = animate.animate(method, clip, clip, tmp_path / "out.mp4", source_frame=1, max_frames=8, progress=False,
                            motion=motion_transfer.MotionSettings(smoothing="none"), tracking=tracking)
    track = annotate.read_track(clip, tracking, max_frames=8, progress=False)
    source, targets = method.given
    assert stats.frames == len(targets) == 8 and all(frame.has_face for frame in track)
    np.testing.assert_array_equal(source.points, track[0].points)
    np.testing.assert_allclose(np.stack([t.points for t in targets]), np.stack([f.points for f in track]), atol=1e-4)
    # The two ways of finding the points are the ones asked for: dlib on every frame, or the tracker's.
    expected = [annotate.annotate_frame(rgb, i) for i, rgb in enumerate(video.read_all(clip)[:8], start=1)] \
        if tracking == annotate.DETECT else tracking_lib.track(video.read_all(clip)[:8])
    np.testing.assert_array_equal(np.stack([f.points for f in track]), np.stack([f.points for f in expected]))


def test_tracked_and_detected_driving_points_drive_the_photo_alike_but_not_the_same(photo, real_faces_dir, tmp_path):
    given = {}
    for tracking in annotate.TRACKINGS:
        method = Recording()
        animate.animate(method, photo[0], real_faces_dir / "videos" / DRIVER, tmp_path / f"{tracking}.mp4",
                        max_frames=12, progress=False, tracking=tracking)
        given[tracking] = np.stack([t.points for t in method.given[1]])
    difference = np.linalg.norm(given["track"] - given["detect"], axis=-1)
    # px, on a face about 100 px wide: dlib's frame-to-frame noise, which the Gaussian smoothing leaves more of than
    # the One-Euro filter did (2.1 px against 1.x); points that slid off the face would be tens of px away.
    assert 0 < difference.mean() < 3.0


def test_a_tracking_with_driving_annotations_is_refused_and_writes_nothing(photo, dev, real_faces_dir, tmp_path):
    annotations.dump([dev[DRIVER]], tmp_path / "annotations.json")
    for tracking in annotate.TRACKINGS:
        with pytest.raises(GenerationError) as error:
            animate.animate(methods.WARP, photo[0], real_faces_dir / "videos" / DRIVER, tmp_path / "out.mp4",
                            driving_annotations=tmp_path / "annotations.json", tracking=tracking, progress=False)
        assert str(error.value) == (f"{tmp_path / 'annotations.json'}: the driving keypoints are read from this file "
                                    f"as they are, and tracking {tracking!r} would find them in the frames: give one "
                                    f"or the other")
    with pytest.raises(ValueError, match="unknown tracking 'optical'; choose one of detect, track"):
        animate.animate(methods.WARP, photo[0], real_faces_dir / "videos" / DRIVER, tmp_path / "out.mp4",
                        tracking="optical", progress=False)
    assert os.listdir(tmp_path) == ["annotations.json"]

    done = _animate("--model=warp", f"--source={photo[0]}", f"--driving={real_faces_dir / 'videos' / DRIVER}",
                    f"--output={tmp_path / 'out.mp4'}", "--tracking=detect",
                    f"--driving_annotations={tmp_path / 'annotations.json'}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {tmp_path / 'annotations.json'}: the driving keypoints are read from this file as they are, and "
        f"tracking 'detect' would find them in the frames: give one or the other"]
    assert os.listdir(tmp_path) == ["annotations.json"]


def test_bad_inputs_name_the_file_and_write_nothing(photo, real_faces_dir, tmp_path):
    driver = real_faces_dir / "videos" / DRIVER
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    not_an_image = inputs / "notes.png"
    not_an_image.write_text("not an image")
    blank = inputs / "blank.png"
    cv2.imwrite(str(blank), np.full((120, 160, 3), 200, np.uint8))
    broken = inputs / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    jpegs = bad_images.damaged_jpegs(photo[1], inputs)
    huge = bad_images.blank_png(inputs / "huge.png", 12000, 12000)
    given = {path.name: path.read_bytes() for path in inputs.iterdir()}
    out = tmp_path / "out.mp4"
    cases = [
        (dict(source=not_an_image), "notes.png: not a readable image"),
        (dict(source=blank), "blank.png: dlib finds no face in the source image"),
        # Before, dlib found no face in them: the damage is named.
        (dict(source=jpegs["truncated"]), r"truncated.jpg: the image is damaged \(truncated or corrupt\): Premature"),
        (dict(source=jpegs["zeroed"]), r"zeroed.jpg: the image is damaged \(truncated or corrupt\)"),
        (dict(source=huge), "huge.png: 12000x12000 pixels, over the 100,000,000 an image may have"),
        # Before, a JPEG drove as a video of one frame.
        (dict(driving=jpegs["good"]), "good.jpg: is a JPEG image, not a video$"),
        (dict(source=driver), "dpe_d.mp4: is a video; say which of its frames is the source"),
        (dict(source=driver, source_frame=9999), "has no frame 9999"),
        (dict(driving=broken), "broken.mp4: cannot be opened as a video"),
        (dict(driving_annotations=tmp_path / "none.json"), "none.json: no such annotation file"),
        (dict(compiled=True), "'warp' is the classical warp, not a network: there is nothing to compile"),
    ]
    for changes, message in cases:
        args = dict(method=methods.WARP, source=photo[0], driving=driver, output=out, max_frames=2, progress=False)
        with pytest.raises(ValueError, match=message):
            animate.animate(**{**args, **changes})
    assert os.listdir(tmp_path) == ["inputs"]
    assert {path.name: path.read_bytes() for path in inputs.iterdir()} == given


def test_an_output_that_is_an_input_is_refused_before_any_work(photo, real_faces_dir, tmp_path):
    """The driving video, the source video or the driving annotations as an output, by the same path or another:
    refused naming both before anything is read (the model does not exist here), the inputs as they were."""
    driver, source = tmp_path / DRIVER, tmp_path / SOURCE_CLIP
    for clip in (driver, source):
        shutil.copyfile(real_faces_dir / "videos" / clip.name, clip)
    os.symlink(tmp_path, tmp_path / "linked")
    os.link(source, tmp_path / "hard.mp4")
    track = tmp_path / "track.mov"  # annotations under a video's name
    track.write_text("[]")
    before = {path: path.read_bytes() for path in (driver, source, track)}
    cases = [
        (dict(output=driver), f"output {driver}: is the same file as the input driving {driver}"),
        (dict(output=tmp_path / "linked" / DRIVER),
         f"output {tmp_path / 'linked' / DRIVER}: is the same file as the input driving {driver}"),
        (dict(source=source, source_frame=1, output=source),
         f"output {source}: is the same file as the input source {source}"),
        (dict(source=source, source_frame=1, face_output=tmp_path / "hard.mp4"),
         f"face_output {tmp_path / 'hard.mp4'}: is the same file as the input source {source}"),
        (dict(driving_annotations=track, face_output=track),
         f"face_output {track}: is the same file as the input driving_annotations {track}"),
    ]
    for changes, message in cases:
        args = dict(method=tmp_path / "no_model", source=photo[0], driving=driver, output=tmp_path / "out.mp4",
                    progress=False)
        with pytest.raises(files.OutputPathError) as error:
            animate.animate(**{**args, **changes})
        assert str(error.value) == f"{message}; writing it would destroy that input"
    assert sorted(os.listdir(tmp_path)) == sorted([DRIVER, SOURCE_CLIP, "linked", "hard.mp4", "track.mov"])
    assert {path: path.read_bytes() for path in before} == before

    done = _animate("--model=warp", f"--source={source}", "--source_frame=1", f"--driving={driver}",
                    f"--output={source}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
        f"error: output {source}: is the same file as the input source {source}; writing it would destroy that input"]
    assert {path: path.read_bytes() for path in before} == before


def test_max_frames_below_one_is_refused(photo, real_faces_dir, tmp_path):
    for max_frames in (0, -48):
        with pytest.raises(GenerationError) as error:
            animate.animate(methods.WARP, photo[0], real_faces_dir / "videos" / DRIVER, tmp_path / "out.mp4",
                            max_frames=max_frames, progress=False)
        assert str(error.value) == f"max_frames must be at least 1 (or absent: every frame), got {max_frames}"
    assert os.listdir(tmp_path) == []


def _animate(*flags):
    return subprocess.run([sys.executable, "-m", "experiments.animate", *flags], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_entry_point(photo, real_faces_dir, tmp_path):
    out = tmp_path / "cli.mp4"
    done = _animate("--model=warp", f"--source={photo[0]}", f"--driving={real_faces_dir / 'videos' / DRIVER}",
                    f"--output={out}", "--max_frames=3", "--driving_reference=best", "--smoothing=one_euro",
                    "--tracking=detect")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{out}: 3 frames (0 driving frames without a face" in done.stdout
    assert video.probe(out).frame_count == 3

    (tmp_path / "taken").mkdir()
    bad = _animate("--model=warp", f"--source={photo[0]}", f"--driving={real_faces_dir / 'videos' / DRIVER}",
                   f"--output={tmp_path / 'taken'}")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert [line for line in bad.stderr.splitlines() if line.startswith("error:")] == [
        f"error: output {tmp_path / 'taken'}: is an existing folder; give the path of a file to write"]
    assert sorted(os.listdir(tmp_path)) == ["cli.mp4", "taken"] and os.listdir(tmp_path / "taken") == []


def test_a_photo_larger_than_max_side_is_scaled_down_and_the_run_says_so(photo, real_faces_dir, tmp_path):
    out = tmp_path / "small.mp4"
    done = _animate("--model=warp", f"--source={photo[0]}", f"--driving={real_faces_dir / 'videos' / DRIVER}",
                    f"--output={out}", "--max_frames=2", "--max_side=168")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{photo[0]}: 224x200 pixels, scaled down to --max_side=168 pixels on its longer side" in done.stdout
    written = video.probe(out)
    assert (written.width, written.height, written.frame_count) == (168, 150, 2)
    # A JPEG four times as large is decoded at a quarter of its size; the run still says the size it has.
    big = tmp_path / "big.jpg"
    cv2.imwrite(str(big), cv2.cvtColor(cv2.resize(photo[1], (896, 800), interpolation=cv2.INTER_CUBIC),
                                       cv2.COLOR_RGB2BGR))
    stats = animate.animate("warp", big, real_faces_dir / "videos" / DRIVER, tmp_path / "big.mp4", max_frames=2,
                            max_side=168, progress=False)
    assert stats.scaled_from == (896, 800)
    written = video.probe(tmp_path / "big.mp4")
    assert (written.width, written.height, written.frame_count) == (168, 150, 2)
    assert sorted(os.listdir(tmp_path)) == ["big.jpg", "big.mp4", "small.mp4"]


def test_ctrl_c_ends_animate_with_one_line_and_leaves_nothing(photo, real_faces_dir, tmp_path):
    out = tmp_path / "out.mp4"
    # Ctrl-C as a terminal sends it: a test run started in the background (`nohup ... &`) hands its children SIGINT
    # ignored, and Python then keeps ignoring it, so the child gets the default disposition back before it starts.
    process = subprocess.Popen([sys.executable, "-m", "experiments.animate", f"--source={photo[0]}",
                                f"--driving={real_faces_dir / 'videos' / DRIVER}", f"--output={out}"],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # Interrupted while the video is being written, once its temporary file exists (dlib has tracked the driver).
        deadline = time.monotonic() + 300
        while not list(tmp_path.glob(".out.mp4.*")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, f"animate ended before it was interrupted: {process.stderr.read()[-3000:]}"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGINT, stderr[-3000:]
    assert "Traceback" not in stderr and stderr.splitlines()[-1] == "interrupted"
    assert os.listdir(tmp_path) == []


class Keeping(methods.Warp):
    """The warp, keeping the targets animate gave it and the frames it made."""

    def frames(self, reference_frame, reference, targets, teeth=None):
        self.targets, self.made = list(targets), []
        for result in super().frames(reference_frame, reference, self.targets):
            self.made.append(result)
            yield result


@pytest.fixture
def written(monkeypatch):
    """The frame results animate hands to the video writer, in order (the files are still written)."""
    kept, write = [], generation.write_video
    monkeypatch.setattr(generation, "write_video", lambda results, *args, **kwargs: write(
        (kept.append(result) or result for result in results), *args, **kwargs))
    return kept


def _gaze_run(real_faces_dir, tmp_path, written, **kwargs):
    """animate of the gaze pair's first GAZE_FRAMES frames with the warp: its stats, the method and what was written."""
    method = Keeping()
    stats = animate.animate(method, real_faces_dir / "videos" / GAZE_PHOTO, real_faces_dir / "videos" / GAZE_DRIVER,
                            tmp_path / "out.mp4", face_output=tmp_path / "face.mp4", source_frame=1,
                            max_frames=GAZE_FRAMES, progress=False, **kwargs)
    return stats, method, list(written)


def _horizontal(finder, results, targets, face_size):
    """The finder's horizontal offset (mean of the eyes) per frame and per face crop, at the targets' points; NaN
    where an eye is closed."""
    frames, faces = [], []
    for result, target in zip(results, targets):
        points = target.points.astype(np.float64)
        shut = gaze.opening(points).min() < gaze.GazeSettings().closed
        crop_points = geometry.apply_affine(points, geometry.crop_matrix(target.bbox, face_size)).astype(np.float64)
        frames.append(np.nan if shut else finder(result.frame, points).offset[:, 0].mean())
        faces.append(np.nan if shut else finder(result.face, crop_points).offset[:, 0].mean())
    return np.array(frames), np.array(faces)


def test_the_photo_s_irises_follow_the_driver_s_gaze(dev, real_faces_dir, tmp_path, written):
    finder = iris.IrisFinder()
    stats, method, results = _gaze_run(real_faces_dir, tmp_path, written)
    assert stats.gaze and len(results) == GAZE_FRAMES
    driving = video.read_all(real_faces_dir / "videos" / GAZE_DRIVER)[:GAZE_FRAMES]
    driver = gaze.measure(finder, driving, dev[GAZE_DRIVER].frames[:GAZE_FRAMES])[:, :, 0].mean(axis=1)
    for output in _horizontal(finder, results, method.targets, method.face_size):
        seen = np.isfinite(driver) & np.isfinite(output)
        assert seen.sum() > 0.9 * GAZE_FRAMES
        # Measured 0.97 (frames and crops); the warp alone 0.82, for its lids move the finder a little: the slope
        # tells them apart, 0.63 against 0.18 (the pupils do not move).
        assert np.corrcoef(driver[seen], output[seen])[0, 1] > 0.9
        assert np.polyfit(driver[seen], output[seen], 1)[0] > 0.4
    # Only the eyes were repainted: every changed pixel lies in the box around an eye's opening (its lids' curves).
    repainted = 0
    for result, made, target in zip(results, method.made, method.targets):
        changed = (result.frame != made.frame).any(axis=2)
        eyes = np.zeros_like(changed)
        for eye in range(2):
            outline = gaze.eye_opening(target.points, eye)
            (left, top), (right, bottom) = np.floor(outline.min(axis=0)).astype(int) - 2, \
                np.ceil(outline.max(axis=0)).astype(int) + 3
            eyes[top:bottom, left:right] = True
        assert not changed[~eyes].any()
        repainted += changed.any()
    assert repainted > 0.9 * GAZE_FRAMES


def test_nogaze_leaves_the_eyes_as_the_method_paints_them(real_faces_dir, tmp_path, written):
    stats, method, results = _gaze_run(real_faces_dir, tmp_path, written, gaze=False)
    assert not stats.gaze and len(results) == GAZE_FRAMES
    for result, made in zip(results, method.made):
        assert result.frame is made.frame and result.face is made.face


def test_a_photo_without_usable_irises_is_animated_without_gaze_and_says_why_once(real_faces_dir, tmp_path, written,
                                                                                  caplog):
    # lp_d9's 11th frame is a blink (eye aspect ratios 0.09 and 0.08).
    source, driver = real_faces_dir / "videos" / "lp_d9.mp4", real_faces_dir / "videos" / GAZE_DRIVER
    method = Keeping()
    with caplog.at_level(logging.INFO, logger="absl"):
        stats = animate.animate(method, source, driver, tmp_path / "out.mp4", source_frame=11, max_frames=3,
                                progress=False)
    said = [r.getMessage() for r in caplog.records if r.name == "absl" and r.getMessage().startswith("gaze:")]
    assert len(said) == 1 and said[0].startswith(f"gaze: {source}: its image-left eye is closed (opening 0.")
    assert said[0].count("is closed") == 2 and said[0].endswith("neither iris moves (no gaze transfer)")
    assert not stats.gaze and video.probe(tmp_path / "out.mp4").frame_count == 3
    assert all(result.frame is made.frame for result, made in zip(written, method.made)) and len(written) == 3

    done = _animate("--model=warp", f"--source={source}", "--source_frame=11", f"--driving={driver}",
                    f"--output={tmp_path / 'cli.mp4'}", "--max_frames=3")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len([line for line in done.stderr.splitlines() if "gaze:" in line]) == 1
    assert video.probe(tmp_path / "cli.mp4").frame_count == 3
