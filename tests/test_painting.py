"""The mouth painter: its aligned crop, what it changes in a frame and where, its training, and its shipping in an
export (generate and animate then paint; `paint=False` leaves the frames as the generator made them); the driver's
teeth it may read, measured on driving frames and handed to it by animate and the live animator."""
import dataclasses
import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from bigo_facegen import (
    animate,
    annotate,
    annotations,
    export,
    geometry,
    methods,
    painter_training,
    painting,
    pretrained,
    streaming,
    video,
)
from bigo_facegen.face_model import FaceModel
from bigo_facegen.generation import VideoGenerator
from bigo_facegen.generation_settings import GenerationSettings
from bigo_facegen.keypoints import IBUG68
from bigo_facegen.models.painter import network as network_lib
from bigo_facegen.models.painter.config import EYES, PainterConfig
from tests.real_clips import cut_folder

# Small enough to train in seconds; what is tested is the plumbing, not the painting.
TINY = PainterConfig(width=8, critic_width=8, steps=2, batch_size=2, perceptual=0.0)
TINY_EYES = dataclasses.replace(EYES, width=8, critic_width=8, steps=2, batch_size=2, perceptual=0.0)
MOUTH = IBUG68.mouth_inner


def size(annotation, part=MOUTH):
    return painting.part_size(annotation.points, IBUG68, part)


@pytest.fixture(scope="module")
def opened_mouth(real_faces_dir, read_real_frame):
    """(clip, frame, annotation) of the reference (the clip's least opened mouth) and the target (its most opened)."""
    clip = next(v for v in annotations.load(real_faces_dir / "annotations.json") if v.video == "dpe_d.mp4")
    faces = [f for f in clip.face_frames() if painting.present(f, IBUG68, MOUTH)]
    openings = [size(f) for f in faces]
    reference, target = faces[int(np.argmin(openings))], faces[int(np.argmax(openings))]
    assert size(target) - size(reference) > 0.03
    return clip, (read_real_frame(clip, reference), reference), (read_real_frame(clip, target), target)


def untrained(config):
    network = network_lib.Painter(config.width)
    network(np.zeros((1, config.crop_size, config.crop_size, network_lib.input_channels(config.teeth_cue)),
                     np.float32))
    return painting.Painter(network, config, "untrained")


@pytest.fixture(scope="module")
def untrained_painter():
    return untrained(TINY)


@pytest.fixture(scope="module")
def clips(real_faces_dir, tmp_path_factory):
    """Two real clips that open the mouth and blink, cut short."""
    return cut_folder(real_faces_dir, tmp_path_factory.mktemp("clips"), ["dpe_d", "eamm_surprised"], 60)


@pytest.fixture(scope="module")
def trained_folder(clips, tmp_path_factory):
    return painter_training.train(clips, tmp_path_factory.mktemp("painter") / "out", TINY, split="all",
                                  progress=False)


@pytest.fixture(scope="module")
def trained_eyes(clips, tmp_path_factory):
    return painter_training.train(clips, tmp_path_factory.mktemp("eyes") / "out", TINY_EYES, split="all",
                                  progress=False)


def test_the_crop_levels_the_eye_line_and_centres_the_mouth(opened_mouth):
    _, _, (frame, target) = opened_mouth
    # Turned by 25 degrees, the face's crop is the same crop.
    turn = cv2.getRotationMatrix2D((frame.shape[1] / 2, frame.shape[0] / 2), 25, 1.0)
    turned_points = geometry.apply_affine(target.points, turn)
    upright = painting.RegionCrop.around(target.points, IBUG68, MOUTH, 1.1, 96)
    turned = painting.RegionCrop.around(turned_points, IBUG68, MOUTH, 1.1, 96)
    eyes = turned.polygon(turned_points, (IBUG68.left_eye_outer, IBUG68.right_eye_outer))
    assert abs(eyes[0, 1] - eyes[1, 1]) < 1e-3 and eyes[0, 0] < eyes[1, 0]
    assert np.linalg.norm(eyes[1] - eyes[0]) == pytest.approx(96 / 1.1, rel=1e-5)
    np.testing.assert_allclose(turned.polygon(turned_points, MOUTH).mean(axis=0), (47.5, 47.5),
                               atol=1e-3)
    big = cv2.warpAffine(frame, turn, (frame.shape[1], frame.shape[0]), flags=cv2.INTER_LINEAR)
    difference = np.abs(turned.cut(big).astype(int) - upright.cut(frame).astype(int))
    assert np.median(difference) <= 3


def test_a_frame_is_painted_inside_the_opened_mouth_only(opened_mouth, untrained_painter):
    _, (reference_frame, reference), (frame, target) = opened_mouth
    mouth = untrained_painter.reference(reference_frame, reference)
    painted = untrained_painter.paint(frame, target, mouth)
    changed = np.any(painted != frame, axis=-1)
    assert changed.sum() > 50
    # Everything changed lies within the inner-lip polygon grown by the mask's reach and feathering (in frame px).
    assert not (changed & ~reach_of(target, [MOUTH], TINY, frame.shape)).any()


def reach_of(target, polygons, config, shape):
    """Where a painter of `config` may change a frame: the polygons grown by its mask's reach and feathering."""
    unit = np.linalg.norm(target.points[IBUG68.left_eye_outer] - target.points[IBUG68.right_eye_outer])
    reach = int(np.ceil((config.grow + 4) * config.span * unit / config.crop_size)) + 1
    inside = np.zeros(shape[:2], np.uint8)
    for part in polygons:
        cv2.fillPoly(inside, [np.round(target.points[list(part)]).astype(np.int32)], 1)
    return cv2.dilate(inside, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)).astype(bool)


def test_eyes_that_close_are_painted_inside_the_eyes_only(real_faces_dir, read_real_frame):
    clip = next(v for v in annotations.load(real_faces_dir / "annotations.json") if v.video == "dpe_d.mp4")
    faces = [f for f in clip.face_frames() if painting.present(f, IBUG68, IBUG68.left_eye)]
    sizes = [size(f, IBUG68.left_eye) for f in faces]
    reference, target = faces[int(np.argmax(sizes))], faces[int(np.argmin(sizes))]
    assert size(reference, IBUG68.left_eye) - size(target, IBUG68.left_eye) > EYES.min_change
    painter = untrained(TINY_EYES)
    frame = read_real_frame(clip, target)
    painted = painter.paint(frame, target, painter.reference(read_real_frame(clip, reference), reference))
    changed = np.any(painted != frame, axis=-1)
    assert changed.sum() > 20
    assert not (changed & ~reach_of(target, [IBUG68.left_eye, IBUG68.right_eye], TINY_EYES, frame.shape)).any()


def test_nothing_is_painted_where_the_mouth_opens_no_more_than_the_reference(opened_mouth, untrained_painter):
    _, (reference_frame, reference), (frame, target) = opened_mouth
    assert untrained_painter.paint(frame, reference, untrained_painter.reference(reference_frame, reference)) is frame
    # The opened mouth as the reference: the target opens no more than it.
    assert untrained_painter.paint(frame, target, untrained_painter.reference(frame, target)) is frame
    assert untrained_painter.paint(frame, target, [None]) is frame


def test_training_writes_a_painter_that_loads(trained_folder, opened_mouth):
    assert sorted(p.name for p in trained_folder.iterdir()) == sorted(painting.FILES)
    assert not [p for p in trained_folder.parent.iterdir() if p.name.startswith(".")]
    loaded = painting.Painter.load(trained_folder)
    assert loaded.config == TINY
    _, (reference_frame, reference), (frame, target) = opened_mouth
    painted = loaded.paint(frame, target, loaded.reference(reference_frame, reference))
    assert painted.shape == frame.shape and (painted != frame).any()


def test_a_folder_without_a_painter_is_named_in_one_line(tmp_path, trained_folder):
    with pytest.raises(painting.PainterError, match=f"{tmp_path}: no readable painter config"):
        painting.Painter.load(tmp_path)
    (tmp_path / painting.CONFIG).write_text((trained_folder / painting.CONFIG).read_text())
    (tmp_path / painting.WEIGHTS).write_bytes(b"not weights")
    with pytest.raises(painting.PainterError, match="not the weights of the painter"):
        painting.Painter.load(tmp_path)


def test_the_entry_point_rejects_a_bad_override_before_any_work(real_faces_dir, tmp_path):
    out = tmp_path / "painter"
    result = subprocess.run([sys.executable, "-m", "experiments.train_painter", f"--data={real_faces_dir}",
                             f"--output={out}", "--config_override=span=9"], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == ("error: painter.span must be within [0.5, 3] inter-ocular "
                                                      "distances, got 9")
    assert not out.exists()


def test_an_export_ships_its_painters_and_the_generator_paints_with_them(trained_folder, trained_eyes, opened_mouth,
                                                                          tmp_path):
    version = export.export_model("pretrained", tmp_path / "painted", painters=[trained_folder, trained_eyes])
    assert json.loads((version / export.SIDECAR).read_text())[export.PAINTERS_ENTRY] == ["painters/mouth",
                                                                                        "painters/eyes"]
    model = FaceModel.load(tmp_path / "painted")
    assert [p.config for p in model.painters] == [TINY, TINY_EYES]
    # Written again, the export keeps its painters.
    again = export.export_model(tmp_path / "painted", tmp_path / "again")
    assert [p.config for p in FaceModel.load(again).painters] == [TINY, TINY_EYES]
    _, (reference_frame, reference), (_, target) = opened_mouth
    painted = VideoGenerator(model, reference_frame, reference).generate_frame(target)[0]
    plain = VideoGenerator(model, reference_frame, reference, GenerationSettings(paint=False)).generate_frame(target)[0]
    changed = np.any(painted != plain, axis=-1)
    assert changed[reach_of(target, [MOUTH], TINY, plain.shape)].sum() > 50
    eyes = reach_of(target, [IBUG68.left_eye, IBUG68.right_eye], TINY_EYES, plain.shape)
    assert not (changed & ~reach_of(target, [MOUTH], TINY, plain.shape) & ~eyes).any()


@pytest.mark.parametrize("painters, message", [("empty", "no readable painter config"),
                                               ("twice", "more than one paints the same region")])
def test_bad_painters_fail_the_export_before_anything_is_written(trained_folder, tmp_path, painters, message):
    folders = [tmp_path] if painters == "empty" else [trained_folder, trained_folder]
    with pytest.raises(ValueError, match=message):
        export.export_model("pretrained", tmp_path / "out", painters=folders)
    assert not (tmp_path / "out").exists()


def test_a_sidecar_naming_a_painter_outside_its_export_is_refused(tmp_path):
    shipped = tmp_path / "shipped"
    shutil.copytree(pretrained.resolve(pretrained.NAME), shipped)
    sidecar = json.loads((shipped / export.SIDECAR).read_text())
    assert sidecar[export.PAINTERS_ENTRY] == ["painters/mouth", "painters/eyes"]
    (shipped / export.SIDECAR).write_text(json.dumps({**sidecar, export.PAINTERS_ENTRY: ["../elsewhere"]}))
    with pytest.raises(export.ExportError, match="painter folder .*elsewhere is outside the export's folder"):
        FaceModel.load(shipped)


def with_inner_mouth(frame, annotation, colour, left_half=False):
    """`frame` with the inside of the annotation's inner lips filled with `colour` (its left half only)."""
    filled = frame.copy()
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(annotation.points[list(MOUTH)] * 16).astype(np.int32)], 1, shift=4)
    if left_half:
        mask[:, int(round(annotation.points[list(MOUTH), 0].mean())):] = 0
    filled[mask.astype(bool)] = colour
    return filled


def test_the_teeth_cue_is_the_share_of_the_inner_mouth_that_shows_teeth(opened_mouth):
    _, _, (frame, target) = opened_mouth
    assert painting.teeth_cue(with_inner_mouth(frame, target, (245, 245, 240)), target) == 1.0
    assert painting.teeth_cue(with_inner_mouth(frame, target, (60, 20, 25)), target) == 0.0
    half = painting.teeth_cue(with_inner_mouth(with_inner_mouth(frame, target, (60, 20, 25)), target,
                                               (245, 245, 240), left_half=True), target)
    assert 0.3 < half < 0.7
    # Pink lips are bright, but not unsaturated: no teeth.
    assert painting.teeth_cue(with_inner_mouth(frame, target, (235, 150, 160)), target) == 0.0
    assert painting.teeth_cue(frame, annotations.FrameAnnotation(index=1)) is None


CUED = dataclasses.replace(TINY, teeth_cue=True)


def test_a_painter_given_the_cue_starts_from_one_without_it_and_paints_as_it_did(trained_folder, opened_mouth):
    """Its stem's kernel for the cue starts at zero: whatever the driver's teeth, it paints what the painter it
    started from paints, until training teaches it the cue."""
    _, (reference_frame, reference), (frame, target) = opened_mouth
    before = painting.Painter.load(trained_folder)
    network = network_lib.Painter(CUED.width)
    network(np.zeros((1, CUED.crop_size, CUED.crop_size, network_lib.input_channels(True)), np.float32))
    painter_training._take_weights(network, before.network)
    after = painting.Painter(network, CUED, "widened")
    expected = before.paint(frame, target, before.reference(reference_frame, reference))
    for teeth in (None, 0.0, 1.0):
        np.testing.assert_array_equal(after.paint(frame, target, after.reference(reference_frame, reference), teeth),
                                      expected)


def test_training_with_the_cue_from_a_painter_without_it(clips, trained_folder, trained_eyes, tmp_path, opened_mouth):
    folder = painter_training.train(clips, tmp_path / "cued", CUED, split="all", progress=False, init=trained_folder)
    loaded = painting.Painter.load(folder)
    assert loaded.config.teeth_cue and loaded.network.stem.kernel.shape[2] == network_lib.INPUT_CHANNELS + 1
    _, (reference_frame, reference), (frame, target) = opened_mouth
    assert (loaded.paint(frame, target, loaded.reference(reference_frame, reference), 0.5) != frame).any()
    # Another region's painter is no start: refused before any crop is read.
    with pytest.raises(ValueError, match="its region is 'eyes', this painter's 'mouth'"):
        painter_training.train(clips, tmp_path / "wrong", CUED, split="all", progress=False, init=trained_eyes)
    assert not (tmp_path / "wrong").exists()


@pytest.mark.parametrize("changes, message", [(dict(region="eyes", teeth_cue=True), "the eyes have no teeth"),
                                              (dict(teeth_cue=1), "teeth_cue must be true or false"),
                                              (dict(cue_dropout=1.0), "cue_dropout is a share")])
def test_the_teeth_cue_settings_are_checked(changes, message):
    with pytest.raises(ValueError, match=message):
        PainterConfig(**changes)


class Told(methods.ModelMethod):
    """A model method that keeps the driver's teeth it was told."""

    def frames(self, reference_frame, reference, targets, teeth=None):
        self.teeth = teeth
        return super().frames(reference_frame, reference, targets, teeth)


@pytest.fixture(scope="module")
def cued_model(trained_folder, tmp_path_factory):
    """The shipped generator with a mouth painter that reads the driver's teeth (untrained: the plumbing is tested)."""
    painter = painting.Painter.load(trained_folder)
    folder = tmp_path_factory.mktemp("cued") / "mouth"
    folder.mkdir()
    network = network_lib.Painter(CUED.width)
    network(np.zeros((1, CUED.crop_size, CUED.crop_size, network_lib.input_channels(True)), np.float32))
    painter_training._take_weights(network, painter.network)
    network.save_weights(folder / painting.WEIGHTS)
    (folder / painting.CONFIG).write_text(json.dumps(dataclasses.asdict(CUED)))
    export.export_model("pretrained", folder.parent / "export", painters=[folder])
    return FaceModel.load(folder.parent / "export")


def test_animate_and_the_live_animator_tell_the_painter_the_drivers_teeth(cued_model, real_faces_dir, tmp_path):
    assert methods.ModelMethod(cued_model).reads_teeth
    assert not methods.ModelMethod(cued_model, GenerationSettings(paint=False)).reads_teeth
    assert not methods.Warp().reads_teeth
    assert methods.load("pretrained").reads_teeth   # the shipped mouth painter reads the driver's teeth
    clip = next(v for v in annotations.load(real_faces_dir / "annotations.json") if v.video == "dpe_d.mp4")
    annotations.dump([clip], tmp_path / "annotations.json")
    driving = real_faces_dir / "videos" / "dpe_d.mp4"
    frames = video.read_all(driving)[:12]
    photo = real_faces_dir / "videos" / "mead_W011_neutral.mp4"
    told = Told(cued_model)
    animate.animate(told, photo, driving, tmp_path / "out.mp4", source_frame=1, max_frames=12, progress=False,
                    driving_annotations=tmp_path / "annotations.json", gaze=False)
    # Measured on each driving frame at the driver's own points (here the file's), not the photo's.
    track = clip.frames[:12]
    assert told.teeth == [painting.teeth_cue(f, a) for f, a in zip(frames, track)]
    assert sum(t is not None for t in told.teeth) >= 6
    live = streaming.LiveAnimator(told, video.read_frame(photo, 1), 25.0, tracking=annotate.DETECT, gaze=False)
    live(frames[5])
    assert told.teeth == [painting.teeth_cue(frames[5], annotate.annotate_frame(frames[5], 1))]
