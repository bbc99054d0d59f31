"""Streaming: a dev-set photo driven by another person's clip given one frame at a time (the library object and
`experiments.animate --stream`), against the offline `animate` of the same inputs, judged by dlib where the tracker
makes them differ; faceless driving frames, the shipped model at batch 1, the entry point's report and refusals."""
import itertools
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from bigo_facegen import animate, annotate, methods, motion_transfer, pretrained, streaming, video
from bigo_facegen.evaluation import metrics
from bigo_facegen.face_model import GenerationError
from bigo_facegen.generation_settings import GenerationSettings
from tests.test_animate import DRIVER, GAZE_DRIVER, GAZE_PHOTO, REPO, photo  # noqa: F401 (photo: a fixture)

EYES = (36, 45)   # the outer eye corners, the NME's normaliser


def _driving(real_faces_dir, count):
    return list(itertools.islice(video.read_frames(real_faces_dir / "videos" / DRIVER), count))


def test_with_dlib_on_every_frame_the_streamed_video_is_animates_own(photo, real_faces_dir, tmp_path):
    """dlib on each frame alone and the One-Euro filter run forward are causal already: streaming changes nothing
    (animate with the same smoothing; its own default looks ahead, see the next test)."""
    driver = real_faces_dir / "videos" / DRIVER
    stats = streaming.stream(methods.WARP, photo[0], driver, tmp_path / "live.mp4", face_output=tmp_path / "face.mp4",
                             max_frames=24, progress=False, tracking=annotate.DETECT)
    animate.animate(methods.WARP, photo[0], driver, tmp_path / "offline.mp4", max_frames=24, progress=False,
                    tracking=annotate.DETECT, motion=motion_transfer.LIVE)
    assert (stats.frames, stats.lost, len(stats.latencies)) == (24, 0, 24)
    written = video.probe(tmp_path / "live.mp4")
    assert (written.width, written.height, written.frame_count) == (224, 200, 24)
    assert video.probe(tmp_path / "face.mp4").frame_count == 24
    live, offline = video.read_all(tmp_path / "live.mp4"), video.read_all(tmp_path / "offline.mp4")
    np.testing.assert_array_equal(live, offline)
    assert np.abs(live[-1].astype(int) - live[0].astype(int)).mean() > 1.0   # the face moved: not two still copies
    assert stats.frames_per_s > 0 and 0 < stats.latency(50) <= stats.latency(95)


def test_the_streamed_irises_follow_the_driver_s_gaze_as_animate_s_do(real_faces_dir, tmp_path):
    """Gaze measured on each driving frame as it comes and followed one step a frame: with dlib on every frame, the
    streamed video is animate's, its repainted eyes included (a driver that looks image-left from frame 55)."""
    photo, driver = real_faces_dir / "videos" / GAZE_PHOTO, real_faces_dir / "videos" / GAZE_DRIVER
    stats = streaming.stream(methods.WARP, photo, driver, tmp_path / "live.mp4", source_frame=1, max_frames=64,
                             progress=False, tracking=annotate.DETECT, gaze=True)
    offline = animate.animate(methods.WARP, photo, driver, tmp_path / "offline.mp4", source_frame=1, max_frames=64,
                              progress=False, tracking=annotate.DETECT, gaze=True, motion=motion_transfer.LIVE)
    plain = animate.animate(methods.WARP, photo, driver, tmp_path / "plain.mp4", source_frame=1, max_frames=64,
                            progress=False, tracking=annotate.DETECT, gaze=False, motion=motion_transfer.LIVE)
    assert stats.gaze and offline.gaze and not plain.gaze
    live = video.read_all(tmp_path / "live.mp4")
    np.testing.assert_array_equal(live, video.read_all(tmp_path / "offline.mp4"))
    assert np.abs(live[-1].astype(int) - video.read_all(tmp_path / "plain.mp4")[-1]).max() > 40   # irises moved


def test_with_the_tracker_the_streamed_faces_follow_animates_as_dlib_judges_them(photo, real_faces_dir, tmp_path):
    """The tracker's causal form differs from its whole-span fusion (and so the live reference, frame 1's points as
    first seen): dlib on the outputs finds the streamed faces where the offline ones are, while both move far from the
    photo's own face."""
    driver = real_faces_dir / "videos" / DRIVER
    streaming.stream(methods.WARP, photo[0], driver, tmp_path / "live.mp4", max_frames=40, progress=False)
    animate.animate(methods.WARP, photo[0], driver, tmp_path / "offline.mp4", max_frames=40, progress=False,
                    motion=motion_transfer.LIVE)
    live, offline = video.read_all(tmp_path / "live.mp4"), video.read_all(tmp_path / "offline.mp4")
    assert not np.array_equal(live, offline)
    judged = {name: [annotate.annotate_frame(rgb, i) for i, rgb in enumerate(frames, start=1)]
              for name, frames in (("live", live), ("offline", offline))}
    assert all(frame.has_face for frames in judged.values() for frame in frames)
    source = annotate.annotate_frame(photo[1], 1).points
    apart = [metrics.keypoint_nme(a.points, b.points, EYES) for a, b in zip(judged["live"], judged["offline"])]
    moved = [metrics.keypoint_nme(a.points, source, EYES) for a in judged["live"]]
    assert max(apart) < 0.04, np.round(apart, 3)
    assert np.mean(moved[-10:]) > 3 * np.mean(apart[-10:]), (np.round(moved, 3), np.round(apart, 3))


def test_a_faceless_driving_frame_keeps_the_last_motion_and_the_face_is_found_again(photo, real_faces_dir):
    frames = _driving(real_faces_dir, 20)
    for t in (10, 11, 12):
        frames[t] = np.zeros_like(frames[t])
    animator = streaming.LiveAnimator(methods.WARP, photo[1], 25.0)
    made = [animator(rgb) for rgb in frames]
    assert (animator.frames, animator.lost) == (20, 3)
    assert [result.index for result in made] == list(range(1, 21))
    assert all(result.frame.shape == (200, 224, 3) for result in made)
    for t in (10, 11, 12):
        np.testing.assert_array_equal(made[t].frame, made[9].frame)
    assert np.abs(made[19].frame.astype(int) - made[9].frame.astype(int)).mean() > 0.5   # moving again


def test_the_shipped_model_streams_at_batch_one_the_frames_animate_makes(photo, real_faces_dir):
    """The model's faces one per call, pasted back as `generation` pastes them: the frames of the offline path (the
    same targets, eight faces per call) up to the network's float rounding, a faceless frame the last one again."""
    frames = _driving(real_faces_dir, 8)
    frames[5] = np.zeros_like(frames[5])
    method = methods.load(pretrained.NAME, GenerationSettings(copy_threshold=0.0))   # every face made by the model
    animator = streaming.LiveAnimator(method, photo[1], 25.0, tracking=annotate.DETECT)
    made = [animator(rgb) for rgb in frames]
    assert animator.lost == 1 and all(result.frame.shape == (200, 224, 3) for result in made)
    assert all(result.kind == "generated" for result in made)
    np.testing.assert_array_equal(made[5].frame, made[4].frame)
    track = annotate.annotate_frames(frames, annotate.DETECT)
    targets = motion_transfer.transfer(animator.face, (224, 200), track, (256, 256), 25.0, motion_transfer.LIVE)
    offline = list(method.frames(photo[1], animator.face, targets))
    for live, whole in zip(made, offline, strict=True):
        assert np.abs(live.frame.astype(int) - whole.frame.astype(int)).mean() < 0.5


def test_frames_a_live_source_cannot_give_are_named(photo, real_faces_dir):
    frames = _driving(real_faces_dir, 3)
    animator = streaming.LiveAnimator(methods.WARP, photo[1], 25.0)
    animator(frames[0])
    with pytest.raises(ValueError, match=r"^frame 2: 128x256, but the frames before it are 256x256$"):
        animator(frames[1][:, :128])
    with pytest.raises(ValueError, match=r"^frame 2: expected an RGB uint8 image \(H, W, 3\), got float32"):
        animator(frames[1].astype(np.float32))
    with pytest.raises(motion_transfer.MotionError, match="driving reference 'best' chooses among all the driving"):
        streaming.LiveAnimator(methods.WARP, photo[1], 25.0, motion=motion_transfer.MotionSettings(reference="best"))
    with pytest.raises(GenerationError, match="no face in the source image"):
        streaming.LiveAnimator(methods.WARP, np.full((120, 160, 3), 200, np.uint8), 25.0)


def _animate(*flags):
    return subprocess.run([sys.executable, "-m", "experiments.animate", *flags], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_the_entry_point_streams_and_reports_the_rate_and_latency(photo, real_faces_dir, tmp_path):
    driver = real_faces_dir / "videos" / DRIVER
    out = tmp_path / "live.mp4"
    done = _animate("--stream", "--model=warp", f"--source={photo[0]}", f"--driving={driver}", f"--output={out}",
                    "--max_frames=6")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{out}: 6 frames streamed (0 driving frames without a face kept the last motion)" in done.stdout
    assert re.search(r"^streaming: \d+\.\d frames/s end to end, latency per frame median \d+\.\d ms, 95th percentile "
                     r"\d+\.\d ms \(frames 2 to 6: the first, the warm-up, left out\)$", done.stdout, re.MULTILINE), \
        done.stdout
    assert video.probe(out).frame_count == 6
    os.remove(out)
    refused = [("--driving_reference=best", "--driving_reference=best chooses among all the driving frames"),
               (f"--driving_annotations={real_faces_dir / 'annotations.json'}",
                f"--driving_annotations={real_faces_dir / 'annotations.json'} reads the driving points from a file"),
               ("--batch=4", "--batch=4 makes faces several frames at a time")]
    for flag, message in refused:
        bad = _animate("--stream", "--model=warp", f"--source={photo[0]}", f"--driving={driver}", f"--output={out}",
                       flag)
        assert bad.returncode == 1 and "Traceback" not in bad.stderr
        errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith(f"error: {message}") and \
            errors[0].endswith(": --stream refuses it"), bad.stderr[-2000:]
    assert os.listdir(tmp_path) == []


def test_bad_inputs_to_a_stream_are_named_before_any_frame_and_nothing_is_written(photo, real_faces_dir, tmp_path):
    driver = real_faces_dir / "videos" / DRIVER
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((120, 160, 3), 200, np.uint8))
    out = tmp_path / "out.mp4"
    cases = [
        (dict(driving=photo[0]), "photo.png: is a PNG image, not a video$"),
        (dict(source=blank), "blank.png: dlib finds no face in the source image"),
        (dict(output=driver), f"output {driver}: is the same file as the input driving {driver}"),
        (dict(max_frames=0), "max_frames must be at least 1"),
        (dict(max_side=0), "max_side 0: a source image needs at least 1 pixel on a side"),
        (dict(tracking="optical"), "unknown tracking 'optical'; choose one of detect, track"),
        (dict(motion=motion_transfer.MotionSettings(reference="best")), "driving reference 'best' chooses among"),
    ]
    for changes, message in cases:
        args = dict(method=methods.WARP, source=photo[0], driving=driver, output=out, progress=False)
        with pytest.raises(ValueError, match=message):
            streaming.stream(**{**args, **changes})
    assert os.listdir(tmp_path) == ["blank.png"]
