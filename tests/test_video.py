"""Video reading and writing: round trips, real footage, H.264 files that browsers play (codec, pixel format, index
first), and clear VideoErrors for missing, non-video, truncated and half-written files."""
import itertools
import os
import re
import resource
import signal
import stat
import struct
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import ExifTags, Image

from bigo_facegen import synthetic, video
from bigo_facegen.video import VideoError
from tests import bad_images

REPO = Path(__file__).resolve().parents[1]

REPO = Path(__file__).resolve().parents[1]
# The least per-frame PSNR of real frames through the H.264 setting (CRF 18) was 39.9-40.7 dB on three development
# clips (dpe_s, lp_d10, eamm_fear), 38.7-43.5 on their odd-sized crops, 41.3-41.7 through mp4v; the bound leaves room
# for x264's choices on other CPUs and thread counts.
MIN_PSNR_DB = 36.0


def _frames(count=12, height=48, width=64):
    """A moving smooth gradient: compresses well, so a lossy round trip stays close."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([np.stack([(x * 3 + t * 5) % 256, (y * 4 + t * 3) % 256, np.full_like(x, 40 + 10 * t)], axis=-1)
                     for t in range(count)]).astype(np.uint8)


def _real_frames(real_faces_dir, count=25, clip="dpe_s"):
    return np.stack(list(itertools.islice(video.read_frames(real_faces_dir / "videos" / f"{clip}.mp4"), count)))


def _stream_info(path):
    with av.open(str(path)) as container:
        context = container.streams.video[0].codec_context
        return context.name, context.pix_fmt, context.width, context.height, int(context.colorspace)


def _top_level_boxes(path):
    """The types of an MP4 file's top-level boxes in file order (ISO/IEC 14496-12: 32-bit size and type, a 64-bit
    size after them when the first is 1, 0 for the rest of the file)."""
    data, offset, types = path.read_bytes(), 0, []
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8:offset + 16])[0]
        types.append(kind.decode("ascii"))
        offset += size if size else len(data)
    return types


def test_write_read_round_trip(tmp_path):
    frames = _frames()
    path = tmp_path / "clip.mp4"
    video.write_video(path, frames, fps=12.5)
    assert os.listdir(tmp_path) == ["clip.mp4"]
    info = video.probe(path)
    assert (info.frame_count, info.width, info.height) == (12, 64, 48)
    assert info.fps == pytest.approx(12.5)
    decoded = video.read_all(path)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    # The codec is lossy; channel order survives (a BGR/RGB swap would give errors near 100).
    assert np.abs(decoded.astype(int) - frames).mean() < 8


@pytest.mark.parametrize("suffix", video.SUFFIXES)
def test_written_videos_are_h264_yuv420p_with_the_index_first(real_faces_dir, tmp_path, suffix):
    frames = _real_frames(real_faces_dir)
    path = tmp_path / f"clip{suffix}"
    video.write_video(path, frames, fps=25)
    # yuv420p, BT.601 tagged (AVCOL_SPC_SMPTE170M): what browsers decode, with the matrix the colours were made with.
    assert _stream_info(path) == ("h264", "yuv420p", 256, 256, 6)
    boxes = _top_level_boxes(path)
    assert boxes[0] == "ftyp" and boxes.index("moov") < boxes.index("mdat")
    decoded = video.read_all(path)
    assert decoded.shape == frames.shape
    assert min(cv2.PSNR(a, b) for a, b in zip(frames, decoded)) > MIN_PSNR_DB


def test_mp4v_only_when_asked(real_faces_dir, tmp_path):
    frames = _real_frames(real_faces_dir, count=10)
    video.write_video(tmp_path / "clip.mp4", frames, fps=25, codec="mp4v")
    assert _stream_info(tmp_path / "clip.mp4")[:2] == ("mpeg4", "yuv420p")
    assert min(cv2.PSNR(a, b) for a, b in zip(frames, video.read_all(tmp_path / "clip.mp4"))) > MIN_PSNR_DB
    with pytest.raises(VideoError, match=f"^{tmp_path / 'x.mp4'}: unknown codec 'vp9'; use one of h264, mp4v$"):
        video.VideoWriter(tmp_path / "x.mp4", 25, (64, 48), codec="vp9")
    assert os.listdir(tmp_path) == ["clip.mp4"]


def test_odd_sizes_are_padded_by_repeating_the_last_row_and_column(real_faces_dir, tmp_path):
    crops = np.ascontiguousarray(_real_frames(real_faces_dir, count=10)[:, 60:109, 90:153])  # 63 wide, 49 high
    path = tmp_path / "odd.mp4"
    video.write_video(path, crops, fps=25)
    assert _stream_info(path)[:4] == ("h264", "yuv420p", 64, 50)
    decoded = video.read_all(path)
    assert min(cv2.PSNR(a, b[:49, :63]) for a, b in zip(crops, decoded)) > MIN_PSNR_DB
    # The added column and row repeat the last ones: they decode as close to them as the picture does to its source.
    added_column, added_row = decoded[:, :49, 63].astype(int), decoded[:, 49, :63].astype(int)
    assert np.abs(added_column - crops[:, :, 62]).mean() < 4 and np.abs(added_row - crops[:, 48]).mean() < 4
    assert np.abs(added_column - crops[:, :, 0]).mean() > 10  # the far side, which a wrong padding would repeat


def test_frame_rates_are_stored_as_fractions(tmp_path):
    assert video.frame_rate(12.5) == Fraction(25, 2) and video.frame_rate(30000 / 1001) == Fraction(30000, 1001)
    video.write_video(tmp_path / "ntsc.mp4", _frames(3), fps=30000 / 1001)
    with av.open(str(tmp_path / "ntsc.mp4")) as container:
        assert container.streams.video[0].average_rate == Fraction(30000, 1001)


def test_the_same_frames_make_the_same_file(tmp_path):
    """Encoding is reproducible, also between other encodes in the same process, so that a data set or a batch of
    videos built twice is the same. The frames are the synthetic data set's flat-coloured cartoons: x264's AVX-512
    code encoded them differently from run to run on an AMD EPYC (`video.X264_CPU_CAP`), real footage not."""
    synthetic.generate(tmp_path / "synthetic", num_videos=2, frames_per_video=8, frame_size=(96, 96), seed=5)
    first, second = (video.read_all(path) for path in sorted((tmp_path / "synthetic" / "videos").iterdir()))
    contents = set()
    for attempt in range(6):
        video.write_video(tmp_path / "same.mp4", second, 25.0)
        contents.add((tmp_path / "same.mp4").read_bytes())
        video.write_video(tmp_path / "other.mp4", first[:, :, : 96 - 8 * attempt], 25.0)
    assert len(contents) == 1


def test_real_footage(real_faces_dir):
    path = real_faces_dir / "videos" / "dpe_s.mp4"
    info = video.probe(path)
    assert info == video.VideoInfo(fps=25.0, width=256, height=256, frame_count=228)
    first = next(video.read_frames(path))
    assert first.shape == (256, 256, 3) and first.dtype == np.uint8 and first.std() > 10


def test_missing_file(tmp_path):
    with pytest.raises(VideoError, match=f"{tmp_path / 'absent.mp4'}: no such file"):
        video.probe(tmp_path / "absent.mp4")
    # read_frames opens at the call, not at the first next().
    with pytest.raises(VideoError, match="no such file"):
        video.read_frames(tmp_path / "absent.mp4")


def test_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are not frames\n" * 50)
    with pytest.raises(VideoError, match=f"{path}: cannot be opened as a video"):
        video.read_all(path)
    with pytest.raises(VideoError, match="not a file"):
        video.probe(tmp_path)


def test_mp4_cut_inside_its_index(tmp_path):
    path = tmp_path / "clip.mp4"
    video.write_video(path, _frames(), fps=25)
    data = path.read_bytes()
    assert _top_level_boxes(path)[:2] == ["ftyp", "moov"]
    moov_start = struct.unpack(">I", data[:4])[0]  # the size of ftyp
    path.write_bytes(data[:moov_start + 100])
    with pytest.raises(VideoError, match=f"{path}: cannot be opened as a video"):
        video.read_all(path)


def test_truncated_own_mp4_reports_missing_frames(real_faces_dir, tmp_path):
    # Written with the index first (faststart), a cut file still claims all its frames.
    path = tmp_path / "clip.mp4"
    video.write_video(path, _real_frames(real_faces_dir), fps=25)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 5])
    assert video.probe(path).frame_count == 25
    with pytest.raises(VideoError, match=f"^{path}: truncated or corrupt: only [0-9]+ of the 25 frames"):
        video.read_all(path)


def test_truncated_streamable_mp4_reports_missing_frames(tmp_path, real_faces_dir):
    # The real clips keep their index at the start (faststart), so a cut file still claims all its frames.
    data = (real_faces_dir / "videos" / "dpe_s.mp4").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) * 2 // 5])
    assert video.probe(path).frame_count == 228
    frames = video.read_frames(path)
    with pytest.raises(VideoError) as info:
        for _ in frames:
            pass
    message = str(info.value)
    assert str(path) in message and "truncated or corrupt" in message and "of the 228 frames" in message


def test_whole_files_are_told_from_cut_ones_without_decoding(real_faces_dir, tmp_path):
    path = tmp_path / "clip.mp4"
    video.write_video(path, _frames(), fps=25)
    assert video.is_whole(path) and video.is_whole(real_faces_dir / "videos" / "dpe_s.mp4")
    data = path.read_bytes()
    for name, content in [("empty", b""), ("header", data[:10]), ("index", data[:len(data) // 3]),
                          ("last_byte", data[:-1]), ("appended", data + b"\0"), ("text", b"not a video at all")]:
        (tmp_path / f"{name}.mp4").write_bytes(content)
        assert not video.is_whole(tmp_path / f"{name}.mp4"), name
    assert not video.is_whole(tmp_path / "missing.mp4") and not video.is_whole(tmp_path)


def test_a_killed_writers_temporary_video_goes_with_the_next_writer(tmp_path):
    """`kill -9` in the middle of a video leaves its temporary file (no clean-up runs); the next writer of the same
    target removes it."""
    path = tmp_path / "clip.mp4"
    code = ("import sys, numpy as np; from bigo_facegen import video\n"
            f"with video.VideoWriter({str(path)!r}, 25, (64, 48)) as writer:\n"
            "    writer.write(np.zeros((48, 64, 3), np.uint8)); print('writing', flush=True); sys.stdin.read()\n")
    writer = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert writer.stdout.readline() == "writing\n"
    finally:
        writer.kill()
        writer.communicate(timeout=60)
    [left] = os.listdir(tmp_path)
    assert re.fullmatch(r"\.clip\.mp4\.[0-9a-f]{8}\.mp4", left)
    video.write_video(path, _frames(3), fps=25)
    assert os.listdir(tmp_path) == ["clip.mp4"] and video.probe(path).frame_count == 3


def test_writer_leaves_nothing_on_exception(tmp_path):
    path = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError):
        with video.VideoWriter(path, 25, (64, 48)) as writer:
            writer.write(_frames(1)[0])
            raise RuntimeError("generation failed")
    assert os.listdir(tmp_path) == []


def test_writer_keeps_previous_file_on_failure(tmp_path):
    path = tmp_path / "clip.mp4"
    video.write_video(path, _frames(3), fps=25)
    before = path.read_bytes()
    with pytest.raises(VideoError, match="frame 2 is uint8 \\(48, 32, 3\\), expected uint8 \\(48, 64, 3\\)"):
        video.write_video(path, [_frames(1)[0], np.zeros((48, 32, 3), np.uint8)], fps=25)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["clip.mp4"]


def test_writer_rejects_bad_arguments(tmp_path):
    with pytest.raises(VideoError, match="cannot write .gif files; use one of .m4v, .mov, .mp4$"):
        video.VideoWriter(tmp_path / "clip.gif", 25, (64, 48))
    with pytest.raises(VideoError, match="cannot write .avi"):  # no browser plays AVI
        video.VideoWriter(tmp_path / "clip.avi", 25, (64, 48))
    for fps in (0, float("nan"), float("inf"), 1e-6, 1000.5, 1e9, 2.0 ** 32):  # 1e9: no duration; 2^32: overflow
        with pytest.raises(VideoError, match="need a frame rate above 0 and at most 1000 fps and a positive size"):
            video.VideoWriter(tmp_path / "clip.mp4", fps, (64, 48))
    with pytest.raises(VideoError, match="no frames to write"):
        video.write_video(tmp_path / "clip.mp4", [], fps=25)
    with pytest.raises(VideoError, match="no frames were written"):
        with video.VideoWriter(tmp_path / "clip.mp4", 25, (64, 48)):
            pass
    assert os.listdir(tmp_path) == []


def test_written_videos_get_the_mode_open_gives(tmp_path):
    previous = os.umask(0o027)  # neither mkstemp's 0600 nor a fixed 0644
    try:
        video.write_video(tmp_path / "clip.mp4", _frames(2), fps=25)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(tmp_path / "clip.mp4").st_mode) == 0o640


def test_writer_rejects_unwritable_targets_before_writing(tmp_path):
    (tmp_path / "taken.mp4").mkdir()
    (tmp_path / "notes").write_text("x")
    with pytest.raises(VideoError, match=f"^video {tmp_path / 'taken.mp4'}: is an existing folder"):
        video.VideoWriter(tmp_path / "taken.mp4", 25, (64, 48))
    with pytest.raises(VideoError, match=f"^video {tmp_path / 'notes' / 'clip.mp4'}: {tmp_path / 'notes'} is a file"):
        video.VideoWriter(tmp_path / "notes" / "clip.mp4", 25, (64, 48))
    assert sorted(os.listdir(tmp_path)) == ["notes", "taken.mp4"] and os.listdir(tmp_path / "taken.mp4") == []


def test_writer_discards_the_video_when_it_cannot_be_moved_into_place(tmp_path):
    path = tmp_path / "clip.mp4"
    with pytest.raises(VideoError, match=f"^{path}: cannot move the finished video into place: Is a directory$"):
        with video.VideoWriter(path, 25, (64, 48)) as writer:
            writer.write(_frames(1)[0])
            path.mkdir()  # the target turns into a folder while the video is being written
    assert os.listdir(tmp_path) == ["clip.mp4"] and os.listdir(path) == []


def test_a_failing_encoder_leaves_nothing_and_keeps_the_previous_file(real_faces_dir, tmp_path):
    path = tmp_path / "clip.mp4"
    video.write_video(path, _frames(3), fps=25)
    before = path.read_bytes()
    # A file-size limit makes the muxer's writes fail as a full disk would (EFBIG rather than ENOSPC); ignoring
    # SIGXFSZ turns the signal into that error.
    frames = _real_frames(real_faces_dir, count=50, clip="lp_d10")  # 512x512: well over the limit as H.264
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, limit[1]))
    try:
        with pytest.raises(VideoError) as error:
            video.write_video(path, frames, fps=25)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, handler)
    assert re.fullmatch(f"{path}: cannot (write frame [0-9]+|finish the video): File too large", str(error.value))
    assert os.listdir(tmp_path) == ["clip.mp4"] and path.read_bytes() == before


def test_images_are_read_upright_as_rgb_and_damaged_ones_are_refused(real_faces_dir, tmp_path):
    frame = _real_frames(real_faces_dir, count=1, clip="mead_W011_neutral")[0]
    jpegs = bad_images.damaged_jpegs(frame, tmp_path)
    read = video.read_image(jpegs["good"])
    assert read.shape == frame.shape and read.dtype == np.uint8 and np.abs(read.astype(int) - frame).mean() < 3
    # A phone's portrait photo: landscape pixels and an EXIF orientation that turns them (6: 90 degrees clockwise).
    turned = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    Image.fromarray(frame[:, :200]).save(turned, exif=exif, quality=95)
    assert np.abs(video.read_image(turned).astype(int) - np.rot90(frame[:, :200], k=-1)).mean() < 3
    # Scaled down as it is decoded, upright too; its size as `read_image` gives it whole.
    height = frame.shape[0]
    assert video.image_size(turned) == (height, 200) and video.image_size(jpegs["good"]) == frame.shape[1::-1]
    small = video.read_image(turned, max_side=height // 4)
    assert small.shape == (50, height // 4, 3)
    assert np.abs(small.astype(int) - video.scale_down(np.rot90(frame[:, :200], k=-1), height // 4)).mean() < 3
    for name in ("truncated", "zeroed", "garbled"):
        # libjpeg-turbo's words: "Premature end of JPEG file", "Corrupt JPEG data: ...", "Unsupported marker type ...".
        for max_side in (None, 32):  # decoded whole, or at 1/8 of its size: the damage is found all the same
            with pytest.raises(video.ImageError, match=rf"^{jpegs[name]}: the image is damaged \(truncated or "
                                                       r"corrupt\): \w.+$"):
                video.read_image(jpegs[name], max_side)
    png = tmp_path / "cut.png"
    cv2.imwrite(str(png), frame)
    png.write_bytes(png.read_bytes()[:-5000])
    with pytest.raises(video.ImageError, match=rf"^{png}: the image is damaged \(truncated or corrupt\): image file is "
                                               r"truncated"):
        video.read_image(png)
    (tmp_path / "notes.png").write_text("not an image\n")
    with pytest.raises(video.ImageError, match=rf"^{tmp_path / 'notes.png'}: not a readable image"):
        video.read_image(tmp_path / "notes.png")
    with pytest.raises(video.ImageError, match=rf"^{tmp_path / 'absent.png'}: no such image file$"):
        video.read_image(tmp_path / "absent.png")


def test_images_over_the_pixel_limit_are_refused_from_their_header(tmp_path):
    # Both decode to gigabytes (the second is the probe's 30000 x 30000): a process that read them holds little more
    # than it held before.
    over = bad_images.blank_png(tmp_path / "over.png", 12000, 12000)
    bomb = bad_images.blank_png(tmp_path / "bomb.png", 30000, 30000)
    assert over.stat().st_size < 1_000_000 and bomb.stat().st_size < 3_000_000
    script = f"""
import resource
from bigo_facegen import video
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for path in {[str(over), str(bomb)]!r}:
    try:
        video.read_image(path)
    except video.ImageError as e:
        print(e)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr
    over_line, bomb_line, grown_mb = done.stdout.splitlines()
    assert over_line == f"{over}: 12000x12000 pixels, over the 100,000,000 an image may have; scale it down first"
    assert bomb_line.startswith(f"{bomb}: over the 100,000,000 pixels an image may have (Image size (900000000 pixels)")
    assert int(grown_mb) < 100, f"reading grew the process by {grown_mb} MB"
    assert "Warning" not in done.stderr
    assert sorted(os.listdir(tmp_path)) == ["bomb.png", "over.png"]


def test_a_jpeg_to_be_scaled_down_is_never_decoded_whole(real_faces_dir, tmp_path):
    """The demo's probe: a 2 MB JPEG of 8000 x 8000 pixels (within the pixel limit) to be scaled down to 1024 took a
    request from 0.9 to 2.0 GB. Decoded at libjpeg's reduced scale, the process never holds the full size's pixels."""
    frame = _real_frames(real_faces_dir, count=1)[0]
    path = tmp_path / "big.jpg"
    big = cv2.resize(frame, (8000, 8000), interpolation=cv2.INTER_CUBIC)
    assert cv2.imwrite(str(path), cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    whole = video.scale_down(big, 1024)
    del big
    script = f"""
import resource
import numpy as np
from bigo_facegen import video
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image = video.read_image({str(path)!r}, max_side=1024)
grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024
np.save({str(tmp_path / "read.npy")!r}, image)
print(grown_mb)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr
    full_size_mb = 8000 * 8000 * 3 // 2**20  # one copy of the pixels decoded whole: 183 MB
    assert int(done.stdout) < full_size_mb, f"reading grew the process by {done.stdout.strip()} MB"
    read = np.load(tmp_path / "read.npy")
    assert read.shape == (1024, 1024, 3) and np.abs(read.astype(int) - whole).mean() < 1
    assert sorted(os.listdir(tmp_path)) == ["big.jpg", "read.npy"]


def test_an_image_is_not_a_video(real_faces_dir, tmp_path):
    frame = _real_frames(real_faces_dir, count=1)[0]
    jpeg = bad_images.damaged_jpegs(frame, tmp_path)["good"]
    png = tmp_path / "frame.png"
    cv2.imwrite(str(png), frame)
    # OpenCV opens a JPEG as a video of one frame.
    assert cv2.VideoCapture(str(jpeg)).get(cv2.CAP_PROP_FRAME_COUNT) == 1
    for path, kind in ((jpeg, "JPEG"), (png, "PNG")):
        for read in (video.probe, video.read_frames):
            with pytest.raises(VideoError, match=f"^{path}: is a {kind} image, not a video$"):
                read(path)


def test_videos_with_frames_over_8k_are_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.mp4"
    video.write_video(path, [np.zeros((4352, 8704, 3), np.uint8)], fps=25)
    for read in (video.probe, video.read_frames):
        with pytest.raises(VideoError, match=f"^{path}: frames of 8704x4352 pixels, over the 35,389,440 a video frame "
                                             r"may have \(8192x4320, DCI 8K\)$"):
            read(path)
    assert os.listdir(tmp_path) == ["huge.mp4"]
