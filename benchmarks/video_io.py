"""Video writing and reading speed by library, on real frames: the measurement that picked PyAV for
`bigo_facegen.video`.

    python -m benchmarks.video_io [--clip lp_d10] [--frames 100] [--sizes 64x64,256x256,1280x720] [--rounds 3]
        [--x264_preset veryfast] [--json]

The first `--frames` frames of a development clip, resized to each size (64x64 is the size of a face crop, 1280x720
an HD frame, upscaled and stretched from the clip), are written by each writer and read back by each reader,
alternating the order every round; each figure is the best of `--rounds`. Writers: OpenCV's `mp4v` (what the project
wrote before), H.264 through PyAV (FFmpeg's libraries in process) and through imageio-ffmpeg (an FFmpeg executable fed
by a pipe), both with the x264 settings of `bigo_facegen.video` (its preset replaced by `--x264_preset`, if given),
and `bigo_facegen.video.write_video` itself (PyAV plus its checks, padding and atomic rename, its own settings).
Readers, on the H.264 file: OpenCV, PyAV and imageio-ffmpeg. Speeds are frames/s and ratios to OpenCV (mp4v for
writing), measured in the same run; PSNR and size say the H.264 writers encode alike. imageio-ffmpeg is needed only
here (`pip install -e ".[bench]"`).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import re
import tempfile
import time
from pathlib import Path

from absl import app, flags

from benchmarks.common import REPO

FLAGS = flags.FLAGS
flags.DEFINE_string("clip", "lp_d10", "development clip (in ../shared/data/real_faces/dev/videos) the frames come from")
flags.DEFINE_integer("frames", 100, "frames written and read per measurement", lower_bound=1)
flags.DEFINE_list("sizes", ["64x64", "256x256", "1280x720"], "frame sizes WIDTHxHEIGHT")
flags.DEFINE_integer("rounds", 3, "rounds; each figure is the best", lower_bound=1)
flags.DEFINE_string("x264_preset", None, "x264 preset of the PyAV and imageio-ffmpeg H.264 writers (default: "
                    "that of bigo_facegen.video)")
flags.DEFINE_bool("json", False, "print one JSON line instead of the table")


def _even_sizes(sizes: list[str]) -> bool:
    """Whether each size is WIDTHxHEIGHT with both sides even and positive: the library writers here feed x264
    directly, and its 4:2:0 input has even sides only."""
    matches = [re.fullmatch(r"([0-9]+)x([0-9]+)", size) for size in sizes]
    return all(match and all(int(side) > 0 and int(side) % 2 == 0 for side in match.groups()) for match in matches)


flags.register_validator("sizes", _even_sizes, "each size is WIDTHxHEIGHT, both sides even and positive, e.g. 256x256")

FPS = 25.0
DEV_VIDEOS = REPO.parent / "shared" / "data" / "real_faces" / "dev" / "videos"


def write_opencv_mp4v(path: Path, frames, fps: float) -> None:
    import cv2

    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def write_pyav(path: Path, frames, fps: float, codec) -> None:
    import av

    from bigo_facegen import video

    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", container_options=video.MP4_OPTIONS) as container:
        stream = container.add_stream(codec.encoder, rate=video.frame_rate(fps), options=dict(codec.options))
        stream.width, stream.height, stream.pix_fmt = width, height, codec.pixel_format
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


def write_imageio_ffmpeg(path: Path, frames, fps: float, codec) -> None:
    import imageio_ffmpeg

    from bigo_facegen import video

    height, width = frames[0].shape[:2]
    options = [arg for key, value in {**codec.options, **video.MP4_OPTIONS}.items() for arg in (f"-{key}", value)]
    writer = imageio_ffmpeg.write_frames(str(path), (width, height), fps=fps, codec=codec.encoder,
                                         pix_fmt_out=codec.pixel_format, quality=None, macro_block_size=1,
                                         output_params=options)
    writer.send(None)
    for frame in frames:
        writer.send(frame)
    writer.close()


def write_bigo_facegen(path: Path, frames, fps: float) -> None:
    from bigo_facegen import video

    video.write_video(path, frames, fps)


def read_opencv(path: Path) -> list:
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def read_pyav(path: Path) -> list:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]


def read_imageio_ffmpeg(path: Path) -> list:
    import imageio_ffmpeg
    import numpy as np

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    return [np.frombuffer(data, np.uint8).reshape(height, width, 3) for data in reader]


READERS = {"opencv": read_opencv, "pyav": read_pyav, "imageio-ffmpeg": read_imageio_ffmpeg}
READ_FILE = "pyav h264"  # the writer whose file the readers decode


def source_frames(clip: str, count: int, size: tuple[int, int]):
    import cv2
    import numpy as np

    from bigo_facegen import video

    path = DEV_VIDEOS / f"{clip}.mp4"
    try:
        picked = list(itertools.islice(video.read_frames(path), count))
    except video.VideoError as e:
        raise app.UsageError(str(e)) from e
    if len(picked) < count:
        raise app.UsageError(f"{path} has {len(picked)} frames, fewer than --frames={count}")
    return [np.ascontiguousarray(cv2.resize(frame, size, interpolation=cv2.INTER_AREA)) for frame in picked]


def writers(x264_preset: str | None) -> dict:
    """The writers by name, each `(path, frames, fps) -> None`."""
    from bigo_facegen import video

    h264 = video.CODECS["h264"]
    if x264_preset:
        h264 = dataclasses.replace(h264, options={**h264.options, "preset": x264_preset})
    return {"opencv mp4v": write_opencv_mp4v, "pyav h264": functools.partial(write_pyav, codec=h264),
            "imageio-ffmpeg h264": functools.partial(write_imageio_ffmpeg, codec=h264),
            "bigo_facegen.video h264": write_bigo_facegen}


def measure(frames, writer_of: dict, rounds: int, folder: Path) -> dict:
    import cv2
    import numpy as np

    best = {name: float("inf") for name in [*writer_of, *READERS]}
    paths = {name: folder / f"{index}.mp4" for index, name in enumerate(writer_of)}
    for round_index in range(rounds):
        order = list(writer_of) if round_index % 2 == 0 else list(reversed(writer_of))
        for name in order:
            paths[name].unlink(missing_ok=True)
            start = time.perf_counter()
            writer_of[name](paths[name], frames, FPS)
            best[name] = min(best[name], time.perf_counter() - start)
        order = list(READERS) if round_index % 2 == 0 else list(reversed(READERS))
        for name in order:
            start = time.perf_counter()
            decoded = READERS[name](paths[READ_FILE])
            best[name] = min(best[name], time.perf_counter() - start)
            if len(decoded) != len(frames):
                raise RuntimeError(f"{name} read {len(decoded)} of {len(frames)} frames")
    height, width = frames[0].shape[:2]
    psnr = {name: float(np.mean([cv2.PSNR(a, b[:height, :width]) for a, b in zip(frames, read_opencv(path))]))
            for name, path in paths.items()}
    return {"frames_per_s": {name: len(frames) / seconds for name, seconds in best.items()}, "psnr": psnr,
            "bytes": {name: path.stat().st_size for name, path in paths.items()}}


def main(argv):
    del argv
    writer_of = writers(FLAGS.x264_preset)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for size in FLAGS.sizes:
            width, height = (int(side) for side in size.split("x"))
            results[size] = measure(source_frames(FLAGS.clip, FLAGS.frames, (width, height)), writer_of,
                                    FLAGS.rounds, Path(folder))
    if FLAGS.json:
        print(json.dumps({"clip": FLAGS.clip, "frames": FLAGS.frames, "rounds": FLAGS.rounds,
                          "x264_preset": FLAGS.x264_preset, "results": results}))
        return
    print(f"{FLAGS.frames} frames of {FLAGS.clip}, best of {FLAGS.rounds} rounds, x264 preset of pyav/imageio-ffmpeg: "
          f"{FLAGS.x264_preset or 'as bigo_facegen.video'}; ratios to OpenCV in this run")
    print(f"{'size':>9s} {'what':29s} {'frames/s':>9s} {'ratio':>6s} {'PSNR dB':>8s} {'kB':>7s}")
    for size, result in results.items():
        speed = result["frames_per_s"]
        for name in writer_of:
            print(f"{size:>9s} write {name:23s} {speed[name]:9.0f} {speed[name] / speed['opencv mp4v']:6.2f} "
                  f"{result['psnr'][name]:8.2f} {result['bytes'][name] / 1000:7.0f}")
        for name in READERS:
            print(f"{size:>9s} read  {name:23s} {speed[name]:9.0f} {speed[name] / speed['opencv']:6.2f}")


if __name__ == "__main__":
    app.run(main)
