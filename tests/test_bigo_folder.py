"""The BIGO folder rules on ../shared/data/real_faces/dev, and the same answers from the builder and the evaluation
protocol that apply them."""
import csv
import dataclasses

import pytest

from bigo_facegen import annotations, bigo_folder
from bigo_facegen.evaluation import protocol
from bigo_facegen.keypoints import IBUG68

# Tiers of the dev folder (by head-pose spread) and its test clips, as the builder and the protocol gave them before
# the rules were gathered here: a change of either moves persons and videos between experiments.
DEV_TIERS = {
    "easy": ["eamm_disgusted", "eamm_fear", "eamm_surprised", "lp_d0", "lp_d13", "lp_d19", "lp_d8", "mead_W009_angry",
             "mead_W009_happy", "mead_W009_neutral", "mead_W011_happy", "mead_W011_neutral", "vexpress_RD_Radio10"],
    "medium": ["dpe_d", "dpe_s", "lp_d10", "lp_d5", "lp_d6", "lp_d9", "mead_W011_angry", "pcavs_517600055",
               "pcavs_681100216", "retalk_2", "retalk_4", "vasahack_1eKufUP5XQ_4", "xportrait_driving"],
    "hard": ["lp_d12", "lp_d3", "pcavs_00086", "pcavs_00098", "pcavs_00104", "pcavs_620900105", "pcavs_741400163",
             "retalk_3", "sadtalker_AlexandriaOcasioCortez", "sadtalker_BobMenendez", "sadtalker_RD_Radio34",
             "vasahack_M2Ohb0FAaJU_1", "vexpress_AOC"],
}
DEV_TEST_CLIPS = ["eamm_disgusted", "lp_d0", "lp_d12", "lp_d5", "pcavs_00098", "vasahack_M2Ohb0FAaJU_1",
                  "xportrait_driving"]


@pytest.fixture(scope="module")
def dev_videos(real_faces_dir):
    return annotations.load(real_faces_dir / bigo_folder.ANNOTATIONS_FILE)


@pytest.fixture(scope="module")
def manifest(real_faces_dir) -> dict[str, str]:
    with (real_faces_dir / bigo_folder.MANIFEST_FILE).open(newline="", encoding="utf-8") as f:
        return {row["clip"]: row["person"] for row in csv.DictReader(f, delimiter="\t")}


def test_identities_come_from_the_manifest(real_faces_dir, dev_videos, manifest):
    identities = bigo_folder.identities(dev_videos, real_faces_dir)
    assert {bigo_folder.video_id(v): identities[v.video] for v in dev_videos} == manifest
    assert len(manifest) == 39 and len(set(manifest.values())) == 30
    assert identities["lp_d0.mp4"] == identities["lp_d12.mp4"] == "anon_lp_d0"


def test_identity_key_then_manifest_then_video_id(tmp_path, dev_videos):
    lp_d0, dpe_d = (next(v for v in dev_videos if v.video == name) for name in ("lp_d0.mp4", "dpe_d.mp4"))
    videos = [dataclasses.replace(lp_d0, identity="someone"), dpe_d]
    (tmp_path / bigo_folder.MANIFEST_FILE).write_text("clip\tperson\nlp_d0\tanon\ndpe_d\tanon_dpe\n")
    assert bigo_folder.identities(videos, tmp_path) == {"lp_d0.mp4": "someone", "dpe_d.mp4": "anon_dpe"}
    (tmp_path / bigo_folder.MANIFEST_FILE).write_text("clip\tperson\ndpe_d\t\n")
    assert bigo_folder.identities(videos, tmp_path)["dpe_d.mp4"] == "dpe_d"
    (tmp_path / bigo_folder.MANIFEST_FILE).unlink()
    assert bigo_folder.identities(videos, tmp_path)["dpe_d.mp4"] == "dpe_d"
    (tmp_path / bigo_folder.MANIFEST_FILE).write_text("video\tperson\ndpe_d\tx\n")
    with pytest.raises(ValueError, match=r"MANIFEST.tsv: needs `clip` and `person` columns, has \['person', 'video'\]"):
        bigo_folder.identities(videos, tmp_path)


def test_video_id_is_the_file_stem():
    assert bigo_folder.video_id(annotations.VideoAnnotation("lp_d0.mp4", "videos/x/lp_d0.mp4", [])) == "lp_d0"
    assert bigo_folder.video_id(annotations.VideoAnnotation("12008", "videos/12008", [])) == "12008"


def test_tier_from_name():
    assert bigo_folder.tier_from_name("10001.mp4") == "easy"
    assert bigo_folder.tier_from_name("11999.mp4") == "medium"
    assert bigo_folder.tier_from_name("12008.mp4") == "hard"
    assert bigo_folder.tier_from_name("13008.mp4") is None
    assert bigo_folder.tier_from_name("dpe_d.mp4") is None


def test_tiers_follow_head_pose_spread(dev_videos):
    tiers = bigo_folder.assign_tiers(dev_videos, IBUG68)
    assert {tier: sorted(bigo_folder.video_id(v) for v in dev_videos if tiers[v.video] == tier)
            for tier in bigo_folder.TIERS} == DEV_TIERS
    spread = {v.video: bigo_folder.pose_spread(v, IBUG68) for v in dev_videos}
    by_tier = {tier: [spread[name] for name, t in tiers.items() if t == tier] for tier in bigo_folder.TIERS}
    assert max(by_tier["easy"]) <= min(by_tier["medium"]) and max(by_tier["medium"]) <= min(by_tier["hard"])
    # A video's own tier is kept.
    videos = [dataclasses.replace(dev_videos[0], tier="hard"), *dev_videos[1:]]
    assert bigo_folder.assign_tiers(videos, IBUG68)[videos[0].video] == "hard"


def test_test_split_holds_six_of_thirty_persons(real_faces_dir, dev_videos, manifest):
    persons = set(manifest.values())
    test_persons = {p for p in persons if bigo_folder.is_test_identity(p)}
    assert len(persons) == 30 and len(test_persons) == 6
    identities = bigo_folder.identities(dev_videos, real_faces_dir)
    test_clips = sorted(bigo_folder.video_id(v) for v in dev_videos if identities[v.video] in test_persons)
    assert test_clips == DEV_TEST_CLIPS
    assert {tier for tier, clips in DEV_TIERS.items() if set(clips) & set(test_clips)} == set(bigo_folder.TIERS)


def test_protocol_applies_the_rules(real_faces_dir, manifest):
    tier_of = {clip: tier for tier, clips in DEV_TIERS.items() for clip in clips}
    for split, clips in (("all", sorted(manifest)), ("test", DEV_TEST_CLIPS),
                         ("train", sorted(set(manifest) - set(DEV_TEST_CLIPS)))):
        cases = protocol.load_cases(real_faces_dir, split)
        assert sorted(bigo_folder.video_id(c.video) for c in cases) == clips
        for case in cases:
            assert (case.identity, case.tier) == (manifest[bigo_folder.video_id(case.video)],
                                                   tier_of[bigo_folder.video_id(case.video)])


def test_protocol_ranks_tiers_over_every_video_with_a_face(tmp_path, dev_videos):
    """A video with one face frame is not evaluated, but takes its place in the tiers, as in the training data (the
    cases are made without reading a video)."""
    one_face = dataclasses.replace(dev_videos[0], frames=dev_videos[0].face_frames()[:1])
    videos = [one_face, *dev_videos[1:]]
    annotations.dump(videos, tmp_path / bigo_folder.ANNOTATIONS_FILE)
    expected = bigo_folder.assign_tiers(videos, IBUG68)
    cases = protocol.load_cases(tmp_path)
    assert one_face.video not in {c.video.video for c in cases}
    assert {c.video.video: c.tier for c in cases} == {name: t for name, t in expected.items() if name != one_face.video}
