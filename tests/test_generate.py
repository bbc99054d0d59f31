"""Video generation from a real reference frame and a real keypoint sequence, through the API and the entry point."""
import itertools
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

from bigo_facegen import annotations, config, export, fusion, generation, geometry, video
from bigo_facegen.annotations import FrameAnnotation, VideoAnnotation
from bigo_facegen.face_model import FaceModel, GenerationError
from bigo_facegen.files import OutputPathError
from bigo_facegen.generation_settings import GenerationSettings
from bigo_facegen.models import registry
from tests import bad_images
from tests.older_exports import older_copy

SIZE = 32
CLIP = "dpe_d"  # 256 x 256 at 25 fps, background left of and above the face box
REPO = Path(__file__).resolve().parents[1]


def _tiny_model(layout="ibug68", num_points=68):
    cfg = config.override(config.preset("cpu"), {"data.image_size": SIZE, "data.layout": layout,
                                                 "model.conv_dim": 8, "model.res_blocks": 1})
    generator = registry.build_generator(cfg.model, SIZE, num_points)
    return generator, cfg


@pytest.fixture(scope="module")
def model():
    return FaceModel.from_generator(*_tiny_model())


@pytest.fixture(scope="module")
def clip(real_faces_dir):
    entry = {v.video: v for v in annotations.load(real_faces_dir / "annotations.json")}[f"{CLIP}.mp4"]
    path = real_faces_dir / entry.video_path
    return entry, path, np.stack(list(itertools.islice(video.read_frames(path), 12)))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    generator, cfg = _tiny_model()
    return export.export(generator, cfg, tmp_path_factory.mktemp("exports"))


def test_video_from_a_real_reference_and_keypoint_sequence(model, clip, real_faces_dir, tmp_path):
    entry, path, frames = clip
    info = video.probe(path)
    out, face_out = tmp_path / "out.mp4", tmp_path / "face.mp4"
    stats = generation.generate_from_annotations(model, real_faces_dir / "annotations.json", CLIP, out,
                                                 face_output=face_out, max_frames=10, progress=False,
                                                 settings=GenerationSettings(copy_threshold=0.0))
    assert (stats.frames, stats.generated, stats.copied, stats.repeated) == (10, 10, 0, 0)
    written = video.probe(out)
    assert (written.width, written.height, written.frame_count) == (info.width, info.height, 10)
    assert written.fps == pytest.approx(info.fps)
    faces = video.probe(face_out)
    assert (faces.width, faces.height, faces.frame_count) == (SIZE, SIZE, 10)

    # Away from the face, the first output frame is the reference frame itself (shift by a zero offset).
    first = next(video.read_frames(out))
    x, y, w, h = entry.frames[0].bbox
    outside = np.ones(first.shape[:2], bool)
    outside[max(0, int(y)):int(y + h) + 1, max(0, int(x)):int(x + w) + 1] = False
    assert np.abs(first[outside].astype(int) - frames[0][outside].astype(int)).mean() < 4.0  # mp4 coding only


def test_nearly_unchanged_keypoints_copy_the_reference(model, clip):
    entry, _, frames = clip
    maker = generation.VideoGenerator(model, frames[0], entry.frames[0])
    assert type(maker.fusion) is fusion.ShiftFusion  # the default for stargan models
    frame, face = maker.generate_frame(entry.frames[0])
    np.testing.assert_array_equal(frame, frames[0])  # the reference's own keypoints: the frame comes back untouched
    np.testing.assert_array_equal(face, maker.reference.crop)
    always = generation.VideoGenerator(model, frames[0], entry.frames[0], GenerationSettings(copy_threshold=0.0))
    kinds = [r.kind for r in always.generate_frames(entry.frames[:3])]
    assert kinds == ["generated"] * 3
    assert maker.keypoint_distance(maker.reference.points, maker.reference.flags) == 0.0


def test_frames_without_a_face_repeat_the_last_output(model, clip):
    entry, _, frames = clip
    first, third = entry.frames[2], entry.frames[4]
    targets = [FrameAnnotation(index=1), first, FrameAnnotation(index=3), third, FrameAnnotation(index=5)]
    maker = generation.VideoGenerator(model, frames[0], entry.frames[0],
                                      GenerationSettings(copy_threshold=0.0, batch_size=2))
    results = list(maker.generate_frames(targets))
    assert [r.kind for r in results] == ["repeated", "generated", "repeated", "generated", "repeated"]
    np.testing.assert_array_equal(results[0].frame, frames[0])  # before any face: the reference frame
    np.testing.assert_array_equal(results[2].frame, results[1].frame)
    np.testing.assert_array_equal(results[4].frame, results[3].frame)
    assert not np.array_equal(results[1].face, results[3].face)


def test_batching_does_not_change_the_frames(model, clip):
    entry, _, frames = clip
    one = generation.VideoGenerator(model, frames[0], entry.frames[0],
                                    GenerationSettings(copy_threshold=0.0, batch_size=1))
    four = generation.VideoGenerator(model, frames[0], entry.frames[0],
                                     GenerationSettings(copy_threshold=0.0, batch_size=4))
    for a, b in zip(one.generate_frames(entry.frames[:6]), four.generate_frames(entry.frames[:6])):
        assert np.abs(a.frame.astype(int) - b.frame.astype(int)).max() <= 1


def test_one_reference_crop_goes_with_each_batch_and_a_crop_per_target_to_older_exports(exported, clip, tmp_path):
    """A video's frames are sent as one reference crop with the batch of targets; an export whose sidecar predates
    `shared_reference` gets the crop repeated for each target, and the same frames."""
    entry, _, frames = clip
    older = older_copy(exported, tmp_path / "1", without=("shared_reference",))
    results = {}
    for version_dir in (exported, older):
        loaded = export.load(version_dir)
        sent = []

        def serve(**inputs):
            sent.append({name: np.shape(value) for name, value in inputs.items()})
            return loaded.serve(**inputs)

        model = FaceModel(serve, loaded.spec, loaded.config, str(version_dir))
        maker = generation.VideoGenerator(model, frames[0], entry.frames[0],
                                          GenerationSettings(copy_threshold=0.0, batch_size=4))
        shares = loaded.spec.capabilities.shares_reference
        results[shares] = [r.frame for r in maker.generate_frames(entry.frames[:4])]
        crops = 1 if shares else 4
        assert sent == [{"reference": (crops, SIZE, SIZE, 3), "target_keypoints": (4, 68, 3)}]
    for shared, repeated in zip(results[True], results[False]):
        assert np.abs(shared.astype(int) - repeated.astype(int)).max() <= 1


def test_segment_fusion_video(model, clip, real_faces_dir, tmp_path):
    stats = generation.generate_from_annotations(model, real_faces_dir / "annotations.json", CLIP, tmp_path / "s.mp4",
                                                 max_frames=4, progress=False, settings=GenerationSettings(
                                                     fusion="segment", border="reflect", fill="nearest"))
    assert stats.frames == 4 and video.probe(tmp_path / "s.mp4").frame_count == 4


def test_warp_fusion_video(model, clip, real_faces_dir, tmp_path):
    entry, _, frames = clip
    # On the reference's own keypoints the warp moves nothing: away from the pasted face, the reference frame.
    maker = generation.VideoGenerator(model, frames[0], entry.frames[0],
                                      GenerationSettings(fusion="warp", copy_threshold=0.0))
    frame, _ = maker.generate_frame(entry.frames[0])
    cx, cy, side = geometry.square_box(entry.frames[0].bbox)  # what the face crop covers
    ys, xs = np.mgrid[0:frame.shape[0], 0:frame.shape[1]]
    # Bilinear upsampling spreads the crop's edge pixels by up to one crop pixel.
    outside = np.maximum(np.abs(xs - cx), np.abs(ys - cy)) > side / 2 + side / SIZE
    assert outside.mean() > 0.2
    np.testing.assert_array_equal(frame[outside], frames[0][outside])
    stats = generation.generate_from_annotations(model, real_faces_dir / "annotations.json", CLIP, tmp_path / "w.mp4",
                                                 max_frames=4, progress=False,
                                                 settings=GenerationSettings(fusion="warp"))
    assert stats.frames == 4 and video.probe(tmp_path / "w.mp4").frame_count == 4


def test_warp_style_faces_go_into_the_warped_frame_only_where_painted(clip):
    entry, _, frames = clip
    cfg = config.override(_tiny_model()[1], {"model.generator.type": "warp_refine"})
    generator = registry.build_generator(cfg.model, SIZE, 68)
    model = FaceModel.from_generator(generator, cfg)
    reference, target = entry.frames[0], entry.frames[8]
    warped = generation.VideoGenerator(model, frames[0], reference, GenerationSettings(copy_threshold=0.0))
    assert isinstance(warped.fusion, fusion.WarpFusion)  # a warp-style model's default
    background = warped.fusion.background(target.bbox, target.points, target.flags)

    generator.repaint_head.bias.assign([-30.0])  # a generator that paints nothing
    frame, _ = warped.generate_frame(target)
    np.testing.assert_array_equal(frame, background)  # the full-resolution warp, not the 32-px crop
    # The flow fusion: the full-resolution reference frame moved by the generator's flow in the face box, by the
    # keypoints around it.
    flowing = generation.VideoGenerator(model, frames[0], reference,
                                        GenerationSettings(fusion="flow", copy_threshold=0.0))
    points = geometry.apply_affine(target.points, geometry.crop_matrix(target.bbox, SIZE))
    flow = model.run(flowing.reference.crop[None], points[None], target.flags[None], flowing.reference.points[None],
                     flowing.reference.flags[None])[export.FLOW_OUTPUT][0]
    moved = flowing.fusion.moved_by_flow(flow, target.bbox, target.points, target.flags)
    np.testing.assert_array_equal(flowing.generate_frame(target)[0], moved)
    cx, cy, side = geometry.square_box(target.bbox)
    ys, xs = np.mgrid[0:moved.shape[0], 0:moved.shape[1]]
    outside = np.maximum(np.abs(xs - cx), np.abs(ys - cy)) > side / 2 + side / SIZE
    np.testing.assert_array_equal(moved[outside], background[outside])
    assert np.abs(moved.astype(int) - background.astype(int))[~outside].mean() > 0.1
    shifted, _ = generation.VideoGenerator(model, frames[0], reference, GenerationSettings(
        fusion="shift", copy_threshold=0.0)).generate_frame(target)
    assert np.abs(shifted.astype(int) - background.astype(int)).mean() > 1.0  # other fusions paste the whole crop

    generator.repaint_head.bias.assign([30.0])  # one that paints everything: pasted as a whole face
    frame, face = warped.generate_frame(target)
    np.testing.assert_array_equal(frame, fusion.paste_face(background, face, target.bbox))


def test_generation_processes_use_one_executor_thread_on_cpu():
    # A fresh process: TensorFlow's thread pools are fixed once it runs.
    code = ("import tensorflow as tf; from bigo_facegen import distribution; distribution.configure_cpu_threads(); "
            "tf.constant(1.0) + 1.0; distribution.configure_cpu_threads(); "
            "print(tf.config.threading.get_inter_op_parallelism_threads(), len(tf.config.list_logical_devices('GPU')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    inter_op, gpus = map(int, out.stdout.split())
    assert inter_op == (0 if gpus else 1)  # 0: TF's default, left alone where there are GPUs


def test_gaps_in_the_annotations_become_faceless_frames():
    entry = VideoAnnotation("v.mp4", "videos/v.mp4", [FrameAnnotation(index=2), FrameAnnotation(index=4)])
    assert [(f.index, f.has_face) for f in generation.frame_sequence(entry)] == [(1, False), (2, False), (3, False),
                                                                                 (4, False)]


# --- bad input -----------------------------------------------------------------------------------------------------

def test_bad_inputs_are_reported_clearly(model, clip, real_faces_dir, tmp_path):
    annotations_path = real_faces_dir / "annotations.json"

    def generate(**kwargs):
        args = dict(model=model, annotations_path=annotations_path, video_name=CLIP, output=tmp_path / "o.mp4",
                    max_frames=3, progress=False)
        return generation.generate_from_annotations(**{**args, **kwargs})

    with pytest.raises(GenerationError, match="no such annotation file"):
        generate(annotations_path=tmp_path / "missing.json")
    with pytest.raises(annotations.AnnotationError, match=r"no video 'nope'; the file has 39 videos"):
        generate(video_name="nope")
    with pytest.raises(GenerationError, match=r"68 keypoints per face, but .* bigo106 layout \(106 points\)"):
        generate(model=FaceModel.from_generator(*_tiny_model("bigo106", 106)))
    with pytest.raises(GenerationError, match="no such video; give --reference"):
        generate(videos_dir=tmp_path)
    with pytest.raises(video.ImageError, match="no such image file"):
        generate(reference_image=tmp_path / "missing.png")
    garbage = tmp_path / "garbage.png"
    garbage.write_text("not an image")
    with pytest.raises(video.ImageError, match="not a readable image"):
        generate(reference_image=garbage)
    huge = bad_images.blank_png(tmp_path / "huge.png", 12000, 12000)
    with pytest.raises(video.ImageError, match="huge.png: 12000x12000 pixels, over the 100,000,000 an image may have"):
        generate(reference_image=huge)
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((100, 120, 3), np.uint8))
    with pytest.raises(GenerationError, match="reference image is 120x100, but .* 256x256"):
        generate(reference_image=small)
    with pytest.raises(GenerationError, match="frame 500 has no face annotation"):
        generate(reference_index=500)
    assert not (tmp_path / "o.mp4").exists()


def test_empty_keypoint_sequence_is_rejected(model, tmp_path):
    faceless = tmp_path / "annotations.json"
    annotations.dump([VideoAnnotation("12001.mp4", "videos/12001.mp4",
                                      [FrameAnnotation(index=1), FrameAnnotation(index=2)])], faceless)
    with pytest.raises(GenerationError, match="no frame with a face: the keypoint sequence is empty"):
        generation.generate_from_annotations(model, faceless, "12001", tmp_path / "o.mp4", progress=False)


def test_reference_box_outside_the_image_is_rejected(model, clip):
    entry, _, frames = clip
    far = FrameAnnotation(1, entry.frames[0].bbox + np.array([1000, 0, 0, 0], np.float32), entry.frames[0].points,
                          entry.frames[0].flags)
    with pytest.raises(GenerationError, match="lies outside the 256x256 image"):
        generation.VideoGenerator(model, frames[0], far)


# --- the entry point -----------------------------------------------------------------------------------------------

def test_generate_entry_point_with_reference_image(exported, clip, real_faces_dir, tmp_path):
    entry, _, frames = clip
    reference = tmp_path / "reference.png"
    cv2.imwrite(str(reference), cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR))
    out = tmp_path / "cli.mp4"
    done = subprocess.run(
        [sys.executable, "-m", "experiments.generate", f"--model={exported.parent}",
         f"--annotations={real_faces_dir / 'annotations.json'}", f"--video={CLIP}.mp4", f"--reference={reference}",
         f"--output={out}", f"--face_output={tmp_path / 'cli_face.mp4'}", "--fusion=shift", "--border=reflect",
         "--max_frames=5", "--batch=2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "5 frames" in done.stdout
    assert video.probe(out).frame_count == 5 and video.probe(tmp_path / "cli_face.mp4").width == SIZE

    bad = subprocess.run([sys.executable, "-m", "experiments.generate", f"--model={exported.parent}",
                          f"--annotations={real_faces_dir / 'annotations.json'}", "--video=nope",
                          f"--output={tmp_path / 'bad.mp4'}"], capture_output=True, text=True)
    assert bad.returncode != 0 and "error:" in bad.stderr and "no video 'nope'" in bad.stderr
    assert "Traceback" not in bad.stderr


# --- output paths --------------------------------------------------------------------------------------------------

def test_outputs_are_checked_before_anything_is_loaded(real_faces_dir, tmp_path):
    (tmp_path / "taken.mp4").mkdir()

    def generate(output, face_output=None):
        # A model that does not exist: the output check must fail first.
        generation.generate_from_annotations(tmp_path / "no_model", real_faces_dir / "annotations.json", CLIP, output,
                                             face_output=face_output, progress=False)

    with pytest.raises(OutputPathError, match=f"^output {tmp_path / 'taken.mp4'}: is an existing folder"):
        generate(tmp_path / "taken.mp4")
    with pytest.raises(OutputPathError, match=f"^face_output {tmp_path / 'taken.mp4'}: is an existing folder"):
        generate(tmp_path / "out.mp4", tmp_path / "taken.mp4")
    with pytest.raises(OutputPathError,
                       match=r"^output .*out\.gif: cannot write \.gif files; use one of \.m4v, \.mov, \.mp4$"):
        generate(tmp_path / "out.gif")
    with pytest.raises(OutputPathError, match=r"^face_output .*face\.png: cannot write \.png files"):
        generate(tmp_path / "out.mp4", tmp_path / "face.png")
    with pytest.raises(OutputPathError, match="is the same file as output .*; one would overwrite the other"):
        generate(tmp_path / "out.mp4", tmp_path / "sub" / ".." / "out.mp4")
    assert os.listdir(tmp_path) == ["taken.mp4"] and os.listdir(tmp_path / "taken.mp4") == []


def test_face_output_equal_to_output_is_rejected_by_the_generator(model, clip, tmp_path):
    entry, _, frames = clip
    maker = generation.VideoGenerator(model, frames[0], entry.frames[0])
    with pytest.raises(OutputPathError, match="is the same file as output"):
        maker.generate_video(entry.frames[:2], tmp_path / "o.mp4", 25.0, face_output=tmp_path / "o.mp4",
                             progress=False)
    assert os.listdir(tmp_path) == []


def test_an_output_that_is_an_input_is_refused_before_any_work(clip, real_faces_dir, tmp_path):
    """The video (under --videos_dir), the reference or the annotations as an output, by the same path, a symbolic
    or hard link, or a linked folder: refused naming both, before the model is loaded (it does not exist here), and
    the input is as it was."""
    _, _, frames = clip
    videos = tmp_path / "videos"
    videos.mkdir()
    own = videos / f"{CLIP}.mp4"
    shutil.copyfile(real_faces_dir / "videos" / f"{CLIP}.mp4", own)
    reference = tmp_path / "reference.mp4"  # a PNG under a video's name: OpenCV reads images by their content
    cv2.imwrite(str(tmp_path / "reference.png"), frames[0])
    os.replace(tmp_path / "reference.png", reference)
    os.link(own, tmp_path / "hard.mp4")
    os.symlink(own, tmp_path / "soft.mp4")
    os.symlink(videos, tmp_path / "linked")
    before = {name: (tmp_path / name).read_bytes() for name in ("videos/dpe_d.mp4", "reference.mp4")}
    cases = [
        (dict(output=own), f"output {own}: is the same file as the input video {own}"),
        (dict(output=tmp_path / "hard.mp4"), f"output {tmp_path}/hard.mp4: is the same file as the input video {own}"),
        (dict(output=tmp_path / "soft.mp4"), f"output {tmp_path}/soft.mp4: is the same file as the input video {own}"),
        (dict(face_output=tmp_path / "linked" / f"{CLIP}.mp4"),
         f"face_output {tmp_path / 'linked' / f'{CLIP}.mp4'}: is the same file as the input video {own}"),
        (dict(reference_image=reference, output=reference),
         f"output {reference}: is the same file as the input reference {reference}"),
    ]
    for changes, message in cases:
        args = dict(model=tmp_path / "no_model", annotations_path=real_faces_dir / "annotations.json",
                    video_name=CLIP, output=tmp_path / "out.mp4", videos_dir=videos, progress=False)
        with pytest.raises(OutputPathError) as error:
            generation.generate_from_annotations(**{**args, **changes})
        assert str(error.value) == f"{message}; writing it would destroy that input"
    assert sorted(os.listdir(tmp_path)) == ["hard.mp4", "linked", "reference.mp4", "soft.mp4", "videos"]
    assert os.listdir(videos) == [f"{CLIP}.mp4"]
    assert {name: (tmp_path / name).read_bytes() for name in before} == before


def test_generate_entry_point_refuses_to_overwrite_its_video(exported, real_faces_dir, tmp_path):
    own = tmp_path / f"{CLIP}.mp4"
    shutil.copyfile(real_faces_dir / "videos" / f"{CLIP}.mp4", own)
    done = _run_generate(exported, real_faces_dir, f"--videos_dir={tmp_path}", f"--output={own}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
        f"error: output {own}: is the same file as the input video {own}; writing it would destroy that input"]
    assert os.listdir(tmp_path) == [own.name]
    assert own.read_bytes() == (real_faces_dir / "videos" / f"{CLIP}.mp4").read_bytes()


def test_max_frames_below_one_is_refused(model, real_faces_dir, exported, tmp_path):
    for max_frames in (0, -48):
        with pytest.raises(GenerationError) as error:
            generation.generate_from_annotations(model, real_faces_dir / "annotations.json", CLIP,
                                                 tmp_path / "o.mp4", max_frames=max_frames, progress=False)
        assert str(error.value) == f"max_frames must be at least 1 (or absent: every frame), got {max_frames}"
    done = _run_generate(exported, real_faces_dir, f"--output={tmp_path / 'o.mp4'}", "--max_frames=-48")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "flag --max_frames=-48: -48 is not a positive integer" in done.stderr
    assert os.listdir(tmp_path) == []


def _run_generate(exported, real_faces_dir, *flags):
    return subprocess.run([sys.executable, "-m", "experiments.generate", f"--model={exported.parent}",
                           f"--annotations={real_faces_dir / 'annotations.json'}", f"--video={CLIP}", *flags],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("flags, message", [
    (["--output={d}/taken"], "error: output {d}/taken: is an existing folder; give the path of a file to write"),
    (["--output={d}/notes/out.mp4"], "error: output {d}/notes/out.mp4: {d}/notes is a file, not a folder"),
    (["--output={d}/out.mp4", "--face_output={d}/out.mp4"],
     "error: face_output {d}/out.mp4: is the same file as output {d}/out.mp4; one would overwrite the other"),
], ids=["output_is_a_folder", "parent_is_a_file", "face_output_is_output"])
def test_generate_entry_point_rejects_bad_outputs(exported, real_faces_dir, tmp_path, flags, message):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "old.mp4").write_bytes(b"kept")
    (tmp_path / "notes").write_text("kept")
    done = _run_generate(exported, real_faces_dir, *(flag.format(d=tmp_path) for flag in flags))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [message.format(d=tmp_path)]
    assert sorted(os.listdir(tmp_path)) == ["notes", "taken"] and os.listdir(tmp_path / "taken") == ["old.mp4"]
    assert (tmp_path / "taken" / "old.mp4").read_bytes() == b"kept" and (tmp_path / "notes").read_text() == "kept"


@pytest.mark.parametrize("flag, message", [
    ("--batch=0", "error: batch must be an integer of at least 1, got 0"),
    ("--copy_threshold=nan", "error: copy_threshold must be a finite number, got NaN"),
], ids=["batch", "copy_threshold"])
def test_generate_entry_point_rejects_bad_settings_before_any_work(exported, real_faces_dir, tmp_path, flag, message):
    done = _run_generate(exported, real_faces_dir, f"--output={tmp_path / 'o.mp4'}", flag)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [message]
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("flags, message", [
    (["--annotations={d}/clips"], "error: {d}/clips: is a folder, not an annotation file (the BIGO layout's "
                                  "annotations.json)"),
    (["--output={d}/loop/o.mp4"], "error: output {d}/loop/o.mp4: {d}/loop is a symbolic link loop: it cannot be "
                                  "resolved"),
    (["--fps=1e9"], "error: fps must be a frame rate above 0 and at most 1000, got 1000000000.0"),
], ids=["annotations_folder", "output_in_a_link_loop", "fps_too_high"])
def test_generate_entry_point_says_what_is_wrong_before_any_work(exported, real_faces_dir, tmp_path, flags, message):
    (tmp_path / "clips").mkdir()
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    done = _run_generate(exported, real_faces_dir, f"--output={tmp_path / 'o.mp4'}",
                         *(flag.format(d=tmp_path) for flag in flags))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [message.format(d=tmp_path)]
    assert sorted(os.listdir(tmp_path)) == ["clips", "loop"] and os.listdir(tmp_path / "clips") == []


def test_generate_killed_by_sigterm_leaves_no_temporary_video(exported, real_faces_dir, tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "experiments.generate", f"--model={exported.parent}",
         f"--annotations={real_faces_dir / 'annotations.json'}", f"--video={CLIP}", f"--output={tmp_path / 'o.mp4'}",
         f"--face_output={tmp_path / 'face.mp4'}", "--copy_threshold=0", "--batch=1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not os.listdir(tmp_path) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        seen = os.listdir(tmp_path)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert seen and all(name.startswith(".") for name in seen), seen  # caught while the videos were being written
    assert process.returncode == 128 + signal.SIGTERM and "Traceback" not in stderr
    assert os.listdir(tmp_path) == []


def test_generate_entry_point_under_xla(exported, real_faces_dir, tmp_path):
    """`--xla` runs the export's compiled network: the face crops of the plain run (5 frames in batches of 2, the
    last padded to 2), up to the float rounding XLA orders its own way and the video encoding; an export written
    before compiled inference is refused in one line."""
    faces = {}
    for flag in ("--noxla", "--xla"):
        done = _run_generate(exported, real_faces_dir, f"--output={tmp_path}/{flag}.mp4", "--max_frames=5",
                             f"--face_output={tmp_path}/{flag}_face.mp4", "--batch=2", "--copy_threshold=0", flag)
        assert done.returncode == 0, done.stderr[-3000:]
        faces[flag] = video.read_all(tmp_path / f"{flag}_face.mp4").astype(int)
    assert faces["--xla"].shape == faces["--noxla"].shape == (5, SIZE, SIZE, 3)
    assert np.abs(faces["--xla"] - faces["--noxla"]).mean() < 1.0
    assert np.abs(faces["--xla"][0] - faces["--xla"][4]).mean() > 1.0  # the faces do move

    older = older_copy(exported, tmp_path / "older" / "1", without=("compiled",))
    done = subprocess.run([sys.executable, "-m", "experiments.generate", f"--model={older.parent}", "--xla",
                           f"--annotations={real_faces_dir / 'annotations.json'}", f"--video={CLIP}",
                           f"--output={tmp_path}/old.mp4"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {older}: this export predates compiled inference; export its model_dir again (python -m "
        f"experiments.export) to run it under XLA"]
    assert not (tmp_path / "old.mp4").exists()
