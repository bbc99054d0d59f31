"""Where TensorFlow runs: the distribution strategy over devices and workers for training, the numeric precision of
the layers, and the CPU threads of processes that only generate."""
from __future__ import annotations

import contextlib

import keras
import tensorflow as tf
from absl import logging


def configure_cpu_devices(count: int) -> None:
    """Splits the CPU into `count` logical devices (for `mirrored` without GPUs). Must run before TensorFlow
    initialises its devices, i.e. before any op runs in the process."""
    if count <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as error:
        raise RuntimeError(
            f"train.num_cpu_devices={count}: TensorFlow's devices are already initialised in this process "
            f"({len(tf.config.list_logical_devices('CPU'))} logical CPU device(s)); create the Trainer before "
            "running any TensorFlow op, e.g. in a fresh process") from error


def configure_cpu_threads() -> None:
    """One inter-op thread where TensorFlow has no GPU, for processes that only generate (`experiments.generate`,
    `experiments.evaluate`). A generator is a chain of ops: a second executor thread has nothing of its own to run and
    only competes with the intra-op threads of each convolution (generator images/s at batch 8, cpu preset, 2 cores:
    +6%; the paper's sizes: unchanged). Training keeps TF's default: its four updates do run side by side (a third
    slower with one thread). Call before TensorFlow runs its first op; afterwards the pools are fixed and this only
    logs."""
    if tf.config.list_physical_devices("GPU"):
        return
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        logging.info("TensorFlow already runs: its inter-op threads stay at %d",
                     tf.config.threading.get_inter_op_parallelism_threads())


def make_strategy(name: str) -> tf.distribute.Strategy:
    """`default` (one device), `mirrored` (every local GPU, else every logical CPU device) or `multi_worker`
    (MultiWorkerMirroredStrategy, cluster from TF_CONFIG)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown train.strategy {name!r}; choose default, mirrored or multi_worker")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = strategy.cluster_resolver
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return (resolver.task_type == "worker" and resolver.task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict())


def precision_policy(mixed_precision: bool) -> str:
    """float32, or mixed_float16 on GPU / mixed_bfloat16 on CPU."""
    if not mixed_precision:
        return "float32"
    return "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"


@contextlib.contextmanager
def dtype_policy(name: str):
    """Builds layers under `name` without leaving the process-wide Keras policy changed."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
