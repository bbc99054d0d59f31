"""The written data set: videos in the BIGO release layout with their annotations, several videos per identity, in
different tiers."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from bigo_facegen import annotations, video
from bigo_facegen.bigo_folder import ANNOTATIONS_FILE, TIERS
from bigo_facegen.synthetic.people import random_identity
from bigo_facegen.synthetic.plan import plan_video, render_video

TIER_ID_BASE = {"easy": 10000, "medium": 11000, "hard": 12000}
FPS = 25.0


def video_ids(num_videos: int) -> list[tuple[str, int]]:
    """(tier, id) of each video: split evenly over the tiers (the first tiers take the remainder), ids 10000+k easy,
    11000+k medium, 12000+k hard."""
    out = []
    for i, tier in enumerate(TIERS):
        count = num_videos // 3 + (1 if i < num_videos % 3 else 0)
        out += [(tier, TIER_ID_BASE[tier] + k) for k in range(count)]
    return out


def generate(out_dir, num_videos: int = 12, frames_per_video: int = 24, frame_size=(256, 256),
             seed: int = 0) -> Path:
    """Writes `num_videos` synthetic videos to `out_dir/videos/<id>.mp4` and their annotations to
    `out_dir/annotations.json` (BIGO layout, `bigo106`, with `"tier"` and `"identity"` per video); returns the
    annotation file's path. `frame_size` is (width, height). Deterministic from `seed`.

    There are ceil(num_videos / 2) identities, each in about two videos of different tiers. In the hard tier, every
    second video (odd k) has its face leave the frame for a few frames mid-video."""
    if num_videos < 1 or frames_per_video < 1:
        raise ValueError(f"need at least one video of one frame, got num_videos={num_videos}, "
                         f"frames_per_video={frames_per_video}")
    out_dir = Path(out_dir)
    num_identities = max(1, math.ceil(num_videos / 2))
    identities = [random_identity(np.random.default_rng([seed, 1, i])) for i in range(num_identities)]
    videos = []
    for position, (tier, video_id) in enumerate(video_ids(num_videos)):
        person = position % num_identities
        k = video_id % 1000
        rng = np.random.default_rng([seed, 2, video_id])
        plan = plan_video(rng, tier, identities[person], frames_per_video, frame_size,
                          leaves_frame=tier == "hard" and k % 2 == 1)
        name = f"{video_id}.mp4"
        frames = []
        with video.VideoWriter(out_dir / "videos" / name, FPS, frame_size) as writer:
            for index, rendered in enumerate(render_video(plan), start=1):
                writer.write(rendered.image)
                frames.append(annotations.FrameAnnotation(index) if rendered.bbox is None else
                              annotations.FrameAnnotation(index, rendered.bbox, rendered.points, rendered.flags))
        videos.append(annotations.VideoAnnotation(video=name, video_path=f"videos/{name}", frames=frames, tier=tier,
                                                  identity=f"synthetic-s{seed}-{person:03d}"))
    path = out_dir / ANNOTATIONS_FILE
    annotations.dump(videos, path)
    return path
