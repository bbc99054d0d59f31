"""The networks: shapes and ranges, instance norm on each image's own statistics, detector noise, spectral norm, the
perceptual registry and weight loading, the generator factory."""
import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from bigo_facegen import annotations, geometry, keypoints, video
from bigo_facegen.checkpoints import check_checkpointable, unsaved_weights
from bigo_facegen.config import GeneratorConfig, ModelConfig
from bigo_facegen.models import blocks, perceptual, registry

TINY = ModelConfig(conv_dim=8, res_blocks=2, critic_dim=8, critic_blocks=2, perceptual="none")


@pytest.fixture(scope="module")
def real_faces(real_faces_dir):
    """Eight 48-px face crops of one real clip, in [-1, 1], and their keypoint maps."""
    clip = annotations.load(real_faces_dir / "annotations.json")[0]
    frames = video.read_all(annotations.resolve_video_path(clip, real_faces_dir))
    faces, maps = [], []
    for frame in clip.face_frames()[::25][:8]:
        crop, matrix = geometry.crop(frames[frame.index - 1], frame.bbox, 48)
        faces.append(crop.astype(np.float32) / 127.5 - 1.0)
        maps.append(keypoints.draw_map(geometry.apply_affine(frame.points, matrix), frame.flags, 48, radius=1.0))
    return np.stack(faces), np.stack(maps)


def resized(images, size):
    return tf.image.resize(images, [size, size]).numpy()


@pytest.mark.parametrize("size", [16, 32, 48])
def test_generator_and_detector_shapes_and_range(real_faces, size):
    faces, maps = (resized(x, size) for x in real_faces)
    generator = registry.build_generator(TINY, size, num_points=68)
    detector = registry.build_keypoint_detector(TINY, size)
    generated = generator({"reference": faces[:3], "target_map": maps[:3]}, training=True)
    detected = detector(faces[:3], training=True)
    for out in (generated, detected):
        assert out.shape == (3, size, size, 3) and out.dtype == tf.float32
        assert np.all(np.abs(out.numpy()) <= 1.0)


@pytest.mark.parametrize("size", [16, 32, 64])
def test_critic_shapes(size):
    model_cfg = ModelConfig(critic_dim=8, critic_blocks=3)
    critic, identity_critic = registry.build_critics(model_cfg, size)
    faces = np.random.default_rng(0).uniform(-1, 1, (5, size, size, 3)).astype(np.float32)
    assert critic(faces, training=True).shape == (5, 1)
    assert identity_critic((faces, faces[::-1]), training=True).shape == (5, 1)
    # The pair is stacked on channels, so its order matters.
    a = identity_critic((faces, faces[::-1])).numpy()
    b = identity_critic((faces[::-1], faces)).numpy()
    assert not np.allclose(a, b, rtol=0, atol=1e-6)


def test_instance_norm_uses_each_images_own_statistics(real_faces):
    """No running statistics: the same output in training and inference, whatever else is in the batch."""
    faces, maps = real_faces
    generator = registry.build_generator(TINY, 48, num_points=68)
    full = generator({"reference": faces, "target_map": maps}, training=False).numpy()
    trained = generator({"reference": faces, "target_map": maps}, training=True).numpy()
    alone = generator({"reference": faces[2:3], "target_map": maps[2:3]}, training=False).numpy()
    np.testing.assert_allclose(full, trained, atol=1e-6)
    np.testing.assert_allclose(full[2:3], alone, atol=1e-5)
    norms = [layer for layer in generator._flatten_layers() if isinstance(layer, keras.layers.GroupNormalization)]
    assert norms and all(layer.groups == layer.gamma.shape[0] for layer in norms)


def test_head_convolution_is_the_direct_convolution(real_faces):
    """`HeadConv2D` (the trunk's output head) computes what a Conv2D with its weights computes, forward and backward,
    on the features of real faces, with a kernel whose every tap matters (no symmetric or zero columns)."""
    faces, maps = real_faces
    generator = registry.build_generator(TINY, 48, num_points=68)
    trunk = generator.trunk
    head = trunk.get_layer("head")
    assert isinstance(head, blocks.HeadConv2D)
    features = keras.Sequential(trunk.layers[:trunk.layers.index(head)])(np.concatenate([faces, maps], -1))
    kernel = tf.random.stateless_normal(head.kernel.shape, seed=(1, 2)) * 0.05
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([features, kernel])
        ours = blocks.head_conv2d(features, kernel)
        direct = tf.nn.conv2d(features, kernel, 1, "SAME")
        weights = tf.random.stateless_normal(direct.shape, seed=(3, 4))
        losses = [tf.reduce_sum(tf.tanh(out) * weights) for out in (ours, direct)]
    scale = float(tf.reduce_max(tf.abs(direct)))
    assert scale > 0.1
    np.testing.assert_allclose(ours.numpy(), direct.numpy(), rtol=0, atol=1e-5 * scale)
    for ours_gradient, direct_gradient in zip(*(tape.gradient(loss, [features, kernel]) for loss in losses)):
        gradient_scale = float(tf.reduce_max(tf.abs(direct_gradient)))
        np.testing.assert_allclose(ours_gradient.numpy(), direct_gradient.numpy(), rtol=0, atol=1e-4 * gradient_scale)
    # Columns summed in the wrong order would compute the mirrored kernel's convolution, which differs.
    mirrored = blocks.head_conv2d(features, kernel[:, ::-1])
    assert float(tf.reduce_max(tf.abs(mirrored - direct))) > 0.1 * scale


@pytest.mark.parametrize("settings", [{"kernel_size": 4}, {"kernel_size": 3, "strides": 2},
                                      {"kernel_size": 3, "padding": "valid"}, {"kernel_size": (3, 5)}])
def test_head_convolution_refuses_what_it_does_not_compute(settings):
    with pytest.raises(ValueError, match="square odd kernels at stride 1"):
        blocks.HeadConv2D(3, **settings)


def test_detector_noise_only_while_training(real_faces):
    faces, _ = real_faces
    detector = registry.build_keypoint_detector(ModelConfig(conv_dim=8, res_blocks=1, detector_noise_std=0.4), 48)
    clean = detector(faces, training=False).numpy()
    np.testing.assert_array_equal(clean, detector(faces, training=False).numpy())
    noisy = detector(faces, training=True).numpy()
    assert np.abs(noisy - clean).mean() > 1e-3
    noise = detector._noise(tf.constant([4, 48, 48, 3])).numpy()
    assert abs(noise.std() - 0.4) < 0.01 and abs(noise.mean()) < 0.01


def _normalised_layers(model):
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.SpectralNormalization)]


def _largest_singular_values(model):
    return np.array([np.linalg.svd(layer.kernel.numpy().reshape(-1, layer.kernel.shape[-1]), compute_uv=False)[0]
                     for layer in _normalised_layers(model)])


def test_spectral_norm_bounds_every_critic_layer():
    critic, identity_critic = registry.build_critics(TINY, 32)
    faces = np.random.default_rng(1).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    # Every convolution and the final dense layer: (first block 3 + 3 per later block) + 1.
    assert len(_normalised_layers(critic)) == 3 + 3 * TINY.critic_blocks + 1
    assert _largest_singular_values(critic).max() > 1.1
    before = [w.numpy() for w in critic.trainable_weights]
    for _ in range(40):
        critic(faces, training=True)
        identity_critic((faces, faces), training=True)
    # One power iteration per call converges at a rate set by each kernel's spectral gap.
    for model in (critic, identity_critic):
        np.testing.assert_allclose(_largest_singular_values(model), 1.0, atol=0.05)
    # In inference mode the kernels are left alone.
    after = [w.numpy() for w in critic.trainable_weights]
    critic(faces, training=False)
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(after, critic.trainable_weights))
    assert not all(np.array_equal(a, b) for a, b in zip(before, after))


def test_mixed_precision_outputs_float32_and_keeps_spectral_norm_in_float32():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        generator = registry.build_generator(TINY, 16, num_points=68)
        critic, identity_critic = registry.build_critics(TINY, 16)
    finally:
        keras.config.set_dtype_policy(previous)
    faces = np.random.default_rng(2).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    generated = generator({"reference": faces, "target_map": faces}, training=True)
    assert generated.dtype == tf.float32
    assert critic(generated, training=True).dtype == tf.float32
    assert identity_critic((faces, generated), training=True).dtype == tf.float32
    # The normalised kernel is written back at float32 precision, not rounded through bfloat16.
    kernel = critic.blocks[1].conv2.kernel.numpy()
    assert kernel.dtype == np.float32
    assert np.mean(tf.cast(tf.cast(kernel, tf.bfloat16), tf.float32).numpy() == kernel) < 0.1


def test_build_generator_rejects_unknown_names_and_sizes():
    with pytest.raises(ValueError, match=r"^model.generator.type='nope': must be one of .*stargan"):
        registry.build_generator(ModelConfig(generator=GeneratorConfig(type="nope")), 32, 68)
    # The rule of `data.image_size`, also for networks built without a config.
    for build in (lambda: registry.build_generator(TINY, 30, 68), lambda: registry.build_keypoint_detector(TINY, 30)):
        with pytest.raises(ValueError, match=r"^image_size=30: must be a positive multiple of 4"):
            build()


def test_every_weight_is_saved_by_tf_checkpoints():
    """tf.train.Checkpoint follows attributes only, so a sublayer kept in a list would silently not be saved."""
    networks = {name: registry.build_generator(ModelConfig(GeneratorConfig(type=name), conv_dim=4, res_blocks=1), 16,
                                               68) for name in registry.GENERATORS}
    networks["keypoint_detector"] = registry.build_keypoint_detector(TINY, 16)
    networks["critic"], networks["identity_critic"] = registry.build_critics(TINY, 16)
    for name, model in networks.items():
        assert unsaved_weights(model) == [], name
    critic = networks["critic"]
    assert len(tf.train.TrackableView(critic).descendants()) > len(critic.weights)

    class ListHolder(keras.Model):
        def __init__(self):
            super().__init__()
            self.convs = [keras.layers.Conv2D(2, 1)]

        def call(self, x):
            return self.convs[0](x)

    holder = ListHolder()
    holder(np.zeros((1, 4, 4, 1), np.float32))
    assert len(unsaved_weights(holder)) == 2
    with pytest.raises(ValueError, match="would not be saved"):
        check_checkpointable({"holder": holder})


def test_perceptual_off_without_weights_says_so(tmp_path, monkeypatch, caplog):
    assert registry.build_perceptual(ModelConfig(perceptual="none"), 32) is None
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with caplog.at_level(logging.WARNING):
        assert registry.build_perceptual(ModelConfig(perceptual="resnet50"), 32) is None
    assert "Perceptual loss OFF" in caplog.text and str(tmp_path) in caplog.text
    with pytest.raises(FileNotFoundError, match="perceptual_weights"):
        registry.build_perceptual(ModelConfig(perceptual_weights=str(tmp_path / "missing.h5")), 32)
    with pytest.raises(ValueError, match="unknown perceptual backbone 'vgg'"):
        registry.build_perceptual(ModelConfig(perceptual="vgg"), 32)


def test_resnet50_perceptual_loads_weights_and_is_frozen(tmp_path, real_faces):
    source = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg")
    path = tmp_path / "resnet50.weights.h5"
    source.save_weights(str(path))
    network = registry.build_perceptual(ModelConfig(perceptual="resnet50", perceptual_weights=str(path)), 32)
    for loaded, saved in zip(network.backbone.weights, source.weights):
        np.testing.assert_array_equal(loaded.numpy(), saved.numpy())
    assert network.trainable_weights == []
    faces = resized(real_faces[0], 32)[:2]
    features = network(faces, training=True)
    assert features.shape == (2, 2048) and features.dtype == tf.float32
    expected = source(keras.applications.resnet50.preprocess_input((faces + 1.0) * 127.5), training=False)
    np.testing.assert_allclose(features.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)


def test_perceptual_registry_accepts_new_backbones():
    @perceptual.register("test_pool")
    def pooled(model_cfg, image_size):
        backbone = keras.Sequential([keras.layers.GlobalAveragePooling2D()])
        return perceptual.PerceptualNetwork(backbone, lambda x: x / 255.0)

    try:
        network = registry.build_perceptual(ModelConfig(perceptual="test_pool"), 16)
        faces = np.full((1, 16, 16, 3), 0.5, np.float32)
        np.testing.assert_allclose(network(faces).numpy(), [[0.75, 0.75, 0.75]], rtol=1e-6)
        with pytest.raises(ValueError, match="already registered"):
            perceptual.register("test_pool")(pooled)
    finally:
        perceptual.BACKBONES.pop("test_pool")
