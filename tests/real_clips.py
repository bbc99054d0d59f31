"""Small BIGO-layout folders cut from the real development clips, for tests that need a data set of real faces."""
import dataclasses
from pathlib import Path

from bigo_facegen import annotations, video


def cut_folder(source: Path, out: Path, clips, frames: int) -> Path:
    """A BIGO-layout copy of `clips` of `source`, each cut to its first `frames` frames, with their MANIFEST rows."""
    by_name = {v.video: v for v in annotations.load(source / "annotations.json")}
    kept = []
    for clip in clips:
        entry = by_name[f"{clip}.mp4"]
        reader = video.read_frames(source / entry.video_path)
        video.write_video(out / entry.video_path, [next(reader) for _ in range(frames)], fps=25)
        reader.close()
        kept.append(dataclasses.replace(entry, frames=entry.frames[:frames]))
    annotations.dump(kept, out / "annotations.json")
    with (source / "MANIFEST.tsv").open(encoding="utf-8") as f:
        lines = f.read().splitlines()
    (out / "MANIFEST.tsv").write_text(
        "\n".join([lines[0]] + [line for line in lines[1:] if line.split("\t")[0] in clips]) + "\n", encoding="utf-8")
    return out
