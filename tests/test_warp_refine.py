"""The warp-and-refine generator on real faces: at initialisation its flow is the keypoint prior (so unmoved keypoints
give the identity), it has the promised shapes and dtypes at several sizes and under mixed precision, every weight
gets a gradient, its output is the warped reference with the painting laid over where its repaint mask says, its
learned correction of the flow stays within its bound, a training step under tf.distribute changes every weight, and
XLA computes what eager does."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from bigo_facegen import annotations, config, distribution, geometry, keypoints, train_step, video, warping
from bigo_facegen.models import registry
from bigo_facegen.models.warp_refine import network

SIZE = 32
NUM_POINTS = 68
TINY = config.ModelConfig(config.GeneratorConfig(type="warp_refine"), conv_dim=8, res_blocks=1, critic_dim=8,
                          critic_blocks=2, perceptual="none")


def tiny(**fields) -> config.ModelConfig:
    """`TINY` with these fields of its warp_refine section replaced."""
    section = dataclasses.replace(TINY.generator.warp_refine, **fields)
    return dataclasses.replace(TINY, generator=dataclasses.replace(TINY.generator, warp_refine=section))


@pytest.fixture(scope="module")
def real_batch(real_faces_dir):
    """A training batch at 48 px from one real clip: its first face as the reference of four later target frames."""
    clip = annotations.load(real_faces_dir / "annotations.json")[0]
    frames = video.read_all(annotations.resolve_video_path(clip, real_faces_dir))
    faces = []
    for frame in clip.face_frames()[:100:20]:
        crop, matrix = geometry.crop(frames[frame.index - 1], frame.bbox, 48)
        points = geometry.apply_affine(frame.points, matrix).astype(np.float32)
        faces.append((crop.astype(np.float32) / 127.5 - 1.0, points, frame.flags.astype(np.int32),
                      keypoints.draw_map(points, frame.flags, 48, radius=1.0)))
    reference, targets = faces[0], faces[1:]
    batch = {}
    for name, index in (("", 0), ("_points", 1), ("_flags", 2), ("_map", 3)):
        batch[f"reference{name}"] = np.stack([reference[index]] * len(targets))
        batch[f"target{name}"] = np.stack([target[index] for target in targets])
    return batch


def at_size(batch: dict, size: int) -> dict:
    """The batch with crops, maps and points rescaled to `size` pixels."""
    scale = size / batch["reference"].shape[1]
    resized = {}
    for key, value in batch.items():
        if key.endswith("points"):
            resized[key] = (value + 0.5) * scale - 0.5
        elif value.ndim == 4:
            resized[key] = tf.image.resize(value, [size, size]).numpy()
        else:
            resized[key] = value
    return resized


def generator_inputs(batch: dict) -> dict:
    return {key: value for key, value in batch.items() if key != "target"}


@pytest.fixture(scope="module")
def generator():
    return registry.build_generator(TINY, SIZE, NUM_POINTS)


def test_identical_keypoints_give_the_identity_at_initialisation(real_batch, generator):
    batch = at_size(real_batch, SIZE)
    inputs = {**batch, "target_points": batch["reference_points"], "target_flags": batch["reference_flags"]}
    motion = generator.motion(inputs)
    np.testing.assert_allclose(motion["flow"], np.broadcast_to(warping.identity_grid(SIZE, SIZE), (4, SIZE, SIZE, 2)),
                               atol=1e-3)
    np.testing.assert_allclose(motion["prior_warped"], batch["reference"], atol=1e-3)
    np.testing.assert_allclose(motion["warped"], batch["reference"], atol=1e-3)


@pytest.mark.parametrize("motion_downscale", [1, 2])
def test_one_reference_for_all_targets_gives_what_the_reference_repeated_gives(real_batch, motion_downscale):
    """The batch's reference side cut to its first face (all four are the same) gives every layer of `compose` as
    the reference repeated for each target does: the encoder and the reference's maps run once, for all."""
    generator = registry.build_generator(tiny(motion_downscale=motion_downscale), SIZE, NUM_POINTS)
    inputs = generator_inputs(at_size(real_batch, SIZE))
    one = {**inputs, **{key: inputs[key][:1] for key in ("reference", "reference_points", "reference_flags")}}
    repeated, shared = generator.compose(inputs), generator.compose(one)
    for name in ("flow", "mask", "warped", "painted", "repaint", "image"):
        assert shared[name].shape == repeated[name].shape == (4, SIZE, SIZE, repeated[name].shape[-1])
        np.testing.assert_allclose(shared[name], repeated[name], atol=2e-5, err_msg=name)
    assert np.ptp(repeated["flow"].numpy(), axis=0).max() > 1.0  # four different motions


def test_flow_starts_as_the_keypoint_prior_and_mask_keeps_most(real_batch, generator):
    batch = at_size(real_batch, SIZE)
    motion = generator.motion(generator_inputs(batch))
    valid = (batch["reference_flags"] > 0) & (batch["target_flags"] > 0)
    prior = warping.tps_grid(batch["reference_points"], batch["target_points"], valid, SIZE, SIZE)
    np.testing.assert_allclose(motion["flow"], prior, atol=1e-5)
    np.testing.assert_allclose(motion["warped"], motion["prior_warped"], atol=1e-5)
    # The faces really move between these frames.
    assert np.abs(motion["flow"] - warping.identity_grid(SIZE, SIZE)).mean() > 0.5
    assert 0.5 < motion["mask"].numpy().min() and motion["mask"].numpy().max() < 1.0


def test_output_is_the_warped_reference_with_the_painting_laid_over_where_the_repaint_mask_says(real_batch, generator):
    inputs = generator_inputs(at_size(real_batch, SIZE))
    layers = generator.compose(inputs)
    repaint = layers["repaint"].numpy()
    np.testing.assert_allclose(layers["image"], layers["warped"] * (1 - repaint) + layers["painted"] * repaint,
                               atol=1e-6)
    np.testing.assert_allclose(generator(inputs), layers["image"], atol=1e-6)
    # An untrained generator mostly returns the warped reference: the painting must earn its place.
    assert 0.0 < repaint.min() and repaint.mean() < 0.1 and repaint.max() < 0.2
    assert np.abs(layers["image"] - layers["warped"]).mean() < 0.05


def test_the_learned_correction_stays_within_its_bound_of_the_prior(real_batch):
    batch = at_size(real_batch, SIZE)
    generator = registry.build_generator(TINY, SIZE, NUM_POINTS)
    generator(generator_inputs(batch))
    head = generator.dense_motion.flow_head
    head.bias.assign([1e3, -1e3])  # a correction network gone wild
    motion = generator.motion(generator_inputs(batch))
    valid = (batch["reference_flags"] > 0) & (batch["target_flags"] > 0)
    correction = motion["flow"] - warping.tps_grid(batch["reference_points"], batch["target_points"], valid, SIZE,
                                                   SIZE)
    bound = TINY.generator.warp_refine.motion_correction * SIZE / 2
    np.testing.assert_allclose(correction, np.broadcast_to([bound, -bound], correction.shape), atol=1e-3)


@pytest.mark.parametrize("size", [16, 36, 48])
def test_shapes_dtypes_and_range(real_batch, size):
    batch = at_size(real_batch, size)
    generator = registry.build_generator(dataclasses.replace(TINY, res_blocks=2), size, NUM_POINTS)
    generated = generator(generator_inputs(batch), training=True)
    assert generated.shape == (4, size, size, 3) and generated.dtype == tf.float32
    assert np.all(np.abs(generated.numpy()) <= 1.0)
    layers = generator.compose(generator_inputs(batch))
    warped_features = layers.pop("warped_features")
    shapes = {"flow": 2, "mask": 1, "prior_warped": 3, "warped": 3, "painted": 3, "repaint": 1, "image": 3}
    assert {key: (value.shape, value.dtype) for key, value in layers.items()} == {
        key: ((4, size, size, channels), tf.float32) for key, channels in shapes.items()}
    assert [(value.shape, value.dtype) for value in warped_features] == [
        ((4, size // 2 ** level, size // 2 ** level, TINY.conv_dim * 2 ** level), tf.float32) for level in range(3)]


def test_a_coarser_dense_motion_network_starts_as_the_prior_keeps_its_bound_and_reads_half_resolution(real_batch):
    batch = at_size(real_batch, SIZE)
    inputs = generator_inputs(batch)
    coarse = tiny(motion_downscale=2)
    generator = registry.build_generator(coarse, SIZE, NUM_POINTS)
    valid = (batch["reference_flags"] > 0) & (batch["target_flags"] > 0)
    prior = warping.tps_grid(batch["reference_points"], batch["target_points"], valid, SIZE, SIZE)
    motion = generator.motion(inputs)
    np.testing.assert_allclose(motion["flow"], prior, atol=1e-5)
    assert motion["mask"].shape == (4, SIZE, SIZE, 1) and 0.5 < motion["mask"].numpy().min()

    # Its input: the reference and the prior-warped reference at half the side, where a half-pixel slip of the grid
    # conversion would show against pooling the full-resolution warp; the heatmaps peak at the halved keypoints.
    features = generator._motion_features(tf.constant(batch["reference"]), prior, motion["prior_warped"],
                                          batch["reference_points"], batch["target_points"],
                                          batch["reference_flags"], batch["target_flags"]).numpy()
    half = SIZE // 2
    assert features.shape == (4, half, half, 14)
    np.testing.assert_allclose(features[..., :3], tf.nn.avg_pool2d(batch["reference"], 2, 2, "VALID"), atol=1e-6)
    pooled_warp = tf.nn.avg_pool2d(motion["prior_warped"], 2, 2, "VALID").numpy()
    slipped = warping.bilinear_sample(features[..., :3], warping.downsample_grid(prior, 2) + 0.5).numpy()
    assert np.abs(features[..., 3:6] - pooled_warp).mean() < 0.5 * np.abs(slipped - pooled_warp).mean()
    # One visible target point at (20.5, 10) full-resolution pixels lies at (10, 4.75) at half the side: its heatmap
    # (channels 9-11, spots of 1 px) there is the Gaussian around that position.
    lone_points = np.zeros_like(batch["target_points"])
    lone_points[:, 0] = [20.5, 10.0]
    lone_flags = np.zeros_like(batch["target_flags"])
    lone_flags[:, 0] = 2
    lone = generator._motion_features(tf.constant(batch["reference"]), prior, motion["prior_warped"],
                                      batch["reference_points"], lone_points, batch["reference_flags"],
                                      lone_flags).numpy()[..., 9]
    rows, columns = np.mgrid[:half, :half]
    expected = np.exp(-((columns - 10.0) ** 2 + (rows - 4.75) ** 2) / 2) * 2 - 1
    np.testing.assert_allclose(lone[:, 2:8, 7:14], np.broadcast_to(expected[2:8, 7:14], (4, 6, 7)), atol=1e-4)

    generator.dense_motion.flow_head.bias.assign([1e3, -1e3])  # a correction network gone wild
    bound = coarse.generator.warp_refine.motion_correction * SIZE / 2
    np.testing.assert_allclose(generator.motion(inputs)["flow"] - prior,
                               np.broadcast_to([bound, -bound], prior.shape), atol=1e-3)
    with pytest.raises(ValueError, match="motion_downscale 2\\) needs crop sides that are multiples of 8, got 36"):
        generator(generator_inputs(at_size(real_batch, 36)))


def test_rejects_missing_inputs_and_wrong_point_counts(real_batch, generator):
    batch = at_size(real_batch, SIZE)
    with pytest.raises(ValueError, match="missing \\['reference_flags'\\]"):
        generator({key: value for key, value in batch.items() if key != "reference_flags"})
    with pytest.raises(ValueError, match="reference_points has 67 points; this generator was built for 68"):
        generator({**batch, "reference_points": batch["reference_points"][:, :67]})


def test_gradients_reach_every_weight(real_batch, generator):
    batch = at_size(real_batch, SIZE)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.abs(generator(generator_inputs(batch), training=True) - batch["target"]))
    gradients = tape.gradient(loss, generator.trainable_variables)
    assert len(gradients) == len(generator.trainable_variables) > 0
    dead = [v.path for v, g in zip(generator.trainable_variables, gradients)
            if g is None or not np.any(g.numpy())]
    assert not dead, f"no gradient for {dead}"
    assert any("flow_head" in v.path for v in generator.trainable_variables)


def test_xla_forward_matches_eager(real_batch, generator):
    inputs = generator_inputs(at_size(real_batch, SIZE))
    compiled = tf.function(lambda x: generator(x, training=False), jit_compile=True)(inputs)
    np.testing.assert_allclose(compiled, generator(inputs, training=False), atol=1e-3)


def test_mixed_bfloat16_under_xla_keeps_float32_outputs_and_motion(real_batch):
    batch = at_size(real_batch, SIZE)
    with distribution.dtype_policy("mixed_bfloat16"):
        generator = registry.build_generator(TINY, SIZE, NUM_POINTS)
    assert generator.dense_motion.down[0].compute_dtype == "bfloat16"
    inputs = generator_inputs(batch)

    @tf.function(jit_compile=True)
    def forward_and_gradients(inputs):
        with tf.GradientTape() as tape:
            generated = generator(inputs, training=True)
            loss = tf.reduce_mean(tf.abs(generated - batch["target"]))
        return generated, tape.gradient(loss, generator.trainable_variables)

    generated, gradients = forward_and_gradients(inputs)
    assert generated.dtype == tf.float32 and np.all(np.isfinite(generated.numpy()))
    assert all(np.all(np.isfinite(g.numpy())) for g in gradients)
    motion = generator.motion(generator_inputs(batch))
    valid = (batch["reference_flags"] > 0) & (batch["target_flags"] > 0)
    # Positions stay float32-exact: bfloat16 would round 30 px to a step of 0.25 px.
    np.testing.assert_allclose(
        motion["flow"], warping.tps_grid(batch["reference_points"], batch["target_points"], valid, SIZE, SIZE),
        atol=1e-5)


def test_the_decoder_reads_the_mouth_and_eyes_drawn_in_float32_under_mixed_bfloat16(real_batch):
    """Keras gives a mixed-precision generator its float inputs in bfloat16; a decoder that reads the target's mouth
    and eyes (the `real` preset's reads the mouth) draws them from the keypoints in float32 all the same, the masks
    of float32 keypoints. (It could not be built under mixed_bfloat16: the masks refused bfloat16 keypoints.)"""
    batch = at_size(real_batch, SIZE)
    with distribution.dtype_policy("mixed_bfloat16"):
        generator = registry.build_generator(tiny(decoder_mouth_mask=True, decoder_eyes_mask=True), SIZE, NUM_POINTS)
        rounded = tf.cast(tf.cast(batch["target_points"], tf.bfloat16), tf.float32)
        for mask in (keypoints.mouth_mask_tf, keypoints.eyes_mask_tf):
            np.testing.assert_array_equal(mask(tf.cast(batch["target_points"], tf.bfloat16), batch["target_flags"],
                                               SIZE), mask(rounded, batch["target_flags"], SIZE))
        generated = generator(generator_inputs(batch), training=False)
    assert generated.dtype == tf.float32 and np.all(np.isfinite(generated.numpy()))
    assert keypoints.mouth_mask_tf(batch["target_points"], batch["target_flags"], SIZE).numpy().sum() > 0


def test_train_step_under_a_distribution_strategy_changes_every_generator_weight(real_batch):
    batch = {key: tf.constant(value) for key, value in at_size(real_batch, SIZE).items()}
    experiment = config.override(config.preset("cpu"), {"data.image_size": SIZE, "data.batch_per_replica": 4})
    experiment.model = TINY
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        networks = train_step.build_networks(experiment, NUM_POINTS)
        optimizers = train_step.build_optimizers(experiment.optimizer, networks)
    assert isinstance(networks.generator, network.WarpRefineGenerator)
    step = train_step.TrainStep(networks, optimizers, experiment.loss, global_batch_size=4)
    before = [v.numpy().copy() for v in networks.generator.trainable_variables]
    result = tf.function(lambda b: strategy.run(step, args=(b,)))(batch)
    assert all(np.isfinite(value.numpy()) for value in result.values())
    unchanged = [v.path for v, old in zip(networks.generator.trainable_variables, before)
                 if np.array_equal(v.numpy(), old)]
    assert not unchanged, f"weights the step did not update: {unchanged}"


def tiny_train_step(overrides: dict) -> train_step.TrainStep:
    """The training step of a `TINY` warp_refine generator at `SIZE` px and batch 4: the cpu preset with `overrides`."""
    experiment = config.override(config.preset("cpu"), {"data.image_size": SIZE, "data.batch_per_replica": 4})
    experiment.model = TINY
    experiment = config.override(experiment, overrides)
    networks = train_step.build_networks(experiment, NUM_POINTS)
    return train_step.TrainStep(networks, train_step.build_optimizers(experiment.optimizer, networks), experiment.loss,
                                global_batch_size=4)


def test_the_flow_term_is_the_mean_distance_to_the_trusted_optical_flow(real_batch):
    batch = {key: tf.constant(value) for key, value in at_size(real_batch, SIZE).items()}
    step = tiny_train_step({"model.generator.warp_refine.flow": 10.0})
    layers = step.networks.generator.compose(train_step.inputs_of(batch))
    trusted = np.zeros((4, SIZE, SIZE, 1), np.float32)
    trusted[:, :SIZE // 2] = 1.0
    # The untrained flow is the keypoint prior; an optical flow 3 px to its right where trusted, anywhere elsewhere.
    optical = layers["flow"].numpy() + np.where(trusted > 0, np.float32([3.0, 0.0]), np.float32([50.0, -7.0]))
    _, terms = step.generator_loss({**batch, "target_flow": optical, "target_flow_valid": trusted}, layers)
    np.testing.assert_allclose(terms["flow"], (3.0 / 2) / (SIZE / 2), rtol=1e-4)
    assert set(train_step.inputs_of({**batch, "target_flow": optical, "target_flow_valid": trusted})) == set(
        train_step.inputs_of(batch))


def test_the_mouth_term_is_the_mean_distance_inside_the_target_inner_lips(real_batch):
    """Judged by OpenCV's point-in-polygon test: an image 0.5 off the target inside the inner lips and 0.1 off outside
    scores 0.5 on faces whose mouths are open and 0 on a closed one; the term is absent at weight 0."""
    import cv2

    batch = at_size(real_batch, SIZE)
    points = batch["target_points"].copy()
    lower_lip, upper_lip = [65, 66, 67], [63, 62, 61]
    points[:3, lower_lip] += np.float32([0.3, 4.0])   # three mouths opened by 4 px
    points[3, lower_lip] = points[3, upper_lip]       # one closed: the inner lips meet
    batch = {key: tf.constant(value) for key, value in {**batch, "target_points": points}.items()}
    centres = [(x, y) for y in range(SIZE) for x in range(SIZE)]
    inside = np.stack([np.array([cv2.pointPolygonTest(face[60:68], c, False) > 0 for c in centres]).reshape(SIZE, SIZE)
                       for face in points])[..., None]
    assert inside[:3].sum(axis=(1, 2, 3)).min() > 3 and inside[3].sum() == 0
    fake = batch["target"] + np.where(inside, 0.5, 0.1).astype(np.float32)
    for weight in (0.0, 2.0):
        step = tiny_train_step({"loss.mouth_l1": weight})
        layers = {**step.networks.generator.compose(train_step.inputs_of(batch)), "image": fake}
        _, terms = step.generator_loss(batch, layers)
        if weight:
            np.testing.assert_allclose(terms["mouth_l1"], [0.5, 0.5, 0.5, 0.0], atol=1e-6)
        else:
            assert "mouth_l1" not in terms


def test_the_eyes_term_is_the_mean_distance_inside_both_target_eye_outlines(real_batch):
    """Judged by OpenCV's point-in-polygon test: an image 0.5 off the target inside the image-left eye's outline, 0.3
    inside the other's and 0.1 outside scores the mean over both eyes' pixels on faces with open eyes and 0 on one
    whose eyes are shut to a line; the term is absent at weight 0."""
    import cv2

    batch = at_size(real_batch, SIZE)
    points = batch["target_points"].copy()
    upper_lids, lower_lids = [37, 38, 43, 44], [41, 40, 47, 46]
    points[:3, lower_lids] += np.float32([0.2, 3.0])  # three faces' eyes opened 3 px wider
    points[3, lower_lids] = points[3, upper_lids]     # one face's eyes shut: the lids meet
    batch = {key: tf.constant(value) for key, value in {**batch, "target_points": points}.items()}
    centres = [(x, y) for y in range(SIZE) for x in range(SIZE)]
    inside = np.stack([[np.array([cv2.pointPolygonTest(face[eye], c, False) > 0 for c in centres]).reshape(SIZE, SIZE)
                        for eye in (slice(36, 42), slice(42, 48))] for face in points])        # (B, 2, S, S)
    assert inside[:3].sum(axis=(2, 3)).min() > 3 and inside[3].sum() == 0
    offset = np.where(inside[:, 0], 0.5, np.where(inside[:, 1], 0.3, 0.1))[..., None].astype(np.float32)
    in_either = inside.any(axis=1)
    expected = [offset[i, in_either[i]].mean() if in_either[i].any() else 0.0 for i in range(len(points))]
    fake = batch["target"] + offset
    for weight in (0.0, 2.0):
        step = tiny_train_step({"loss.eyes_l1": weight})
        layers = {**step.networks.generator.compose(train_step.inputs_of(batch)), "image": fake}
        _, terms = step.generator_loss(batch, layers)
        if weight:
            np.testing.assert_allclose(terms["eyes_l1"], expected, atol=1e-6)
        else:
            assert "eyes_l1" not in terms


def test_the_feature_warp_term_is_least_where_the_flow_moves_the_reference_onto_the_target(real_batch):
    """The target is the reference moved 4 px right and 8 px down (edge pixels repeated). With the motion replaced by
    the flow that reads each pixel from where it came, the reference's warped encoder features are far closer to the
    target's than with the identity flow (not equal: the encoder's instance norms see the repeated edge pixels too).
    The term is absent at weight 0."""
    batch = at_size(real_batch, SIZE)
    reference = batch["reference"]
    moved = np.pad(reference, [(0, 0), (8, 0), (4, 0), (0, 0)], mode="edge")[:, :SIZE, :SIZE]
    batch = {key: tf.constant(value) for key, value in {**batch, "target": moved}.items()}
    identity = warping.identity_grid(SIZE, SIZE)[None].numpy().repeat(len(reference), 0)
    # An occlusion mask that keeps only the pixels whose source lies inside the crop, so that the border is not scored.
    inside = np.zeros((len(reference), SIZE, SIZE, 1), np.float32)
    inside[:, 12:-4, 8:-4] = 1.0
    for weight in (0.0, 8.0):
        step = tiny_train_step({"model.generator.warp_refine.feature_warp": weight})
        generator = step.networks.generator
        terms_by_shift = {}
        for name, flow in (("right", identity - np.float32([4.0, 8.0])), ("identity", identity)):
            generator.motion = lambda inputs, training=False, spline=None, flow=flow: {
                "flow": tf.constant(flow), "mask": tf.constant(inside),
                "prior_warped": warping.bilinear_sample(inputs["reference"], flow),
                "warped": warping.bilinear_sample(inputs["reference"], flow)}
            layers = generator.compose(train_step.inputs_of(batch))
            _, terms = step.generator_loss(batch, layers)
            terms_by_shift[name] = terms.get("feature_warp")
        if not weight:
            assert terms_by_shift == {"right": None, "identity": None}
            continue
        right, wrong = terms_by_shift["right"].numpy(), terms_by_shift["identity"].numpy()
        assert (right < wrong / 3).all(), (right, wrong)


# The target regions the decoder may read: its section's switch -> the points that open the region when moved down
# (the lower inner lip; the lower eyelids), by how many pixels, and the region's mask.
DECODER_REGIONS = {"decoder_mouth_mask": ([65, 66, 67], 5.0, keypoints.mouth_mask_tf),
                   "decoder_eyes_mask": ([41, 40, 47, 46], 3.0, keypoints.eyes_mask_tf)}


@pytest.mark.parametrize("region", sorted(DECODER_REGIONS))
@pytest.mark.parametrize("read", [False, True])
def test_the_decoder_reads_a_target_region_only_when_configured(real_batch, region, read):
    """Opening the target's mouth or eyes (their lower lip or lids moved down; the motion's keypoints unchanged)
    changes the painting, most near that region (elsewhere only through the instance norms' statistics), when the
    decoder reads the region; not at all when it does not."""
    lower, shift, region_mask = DECODER_REGIONS[region]
    generator = registry.build_generator(tiny(**{region: read}), SIZE, NUM_POINTS)
    closed = generator_inputs(at_size(real_batch, SIZE))
    generator.motion = lambda inputs, training=False, spline=None, motion=generator.motion: motion(closed, training)
    opened_points = closed["target_points"].copy()
    opened_points[:, lower] += np.float32([0.0, shift])
    opened = {**closed, "target_points": opened_points}
    change = np.abs(generator.compose(opened)["painted"] - generator.compose(closed)["painted"]).max(axis=-1)
    if not read:
        assert change.max() == 0
        return
    mask = region_mask(opened_points, closed["target_flags"], SIZE)
    assert mask.numpy().sum() > 0
    far = ndimage.distance_transform_edt(mask.numpy()[..., 0] == 0, sampling=[SIZE, 1, 1]) > 10
    assert change[~far].mean() > 3 * change[far].mean() > 0, f"the painting does not follow the opened {region}"


def test_fused_heads_give_what_each_head_gives_alone():
    # A new generator's own heads with random non-zero weights (the flow head starts at zero), on random features.
    generator = registry.build_generator(TINY, SIZE, NUM_POINTS)
    rng = np.random.default_rng(0)
    heads = [generator.head, generator.repaint_head]
    for head in heads:
        head.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in head.get_weights()])
    x = tf.constant(rng.normal(0, 1, (2, 16, 16, generator.conv_dim)), tf.float32)
    for fused, head in zip(network.fused_heads(x, heads), heads, strict=True):
        alone = head(x)
        assert fused.shape == alone.shape and fused.dtype == tf.float32
        np.testing.assert_allclose(fused.numpy(), alone.numpy(), atol=1e-5)
