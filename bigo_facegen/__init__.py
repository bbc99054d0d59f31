"""bigo-facegen: generate a face video from one reference face and a sequence of facial keypoints."""
import os

__version__ = "0.1.0"

# TensorFlow's wheel looks for CUDA on every machine and, where no NVIDIA driver is installed, logs "failed call to
# cuInit: ... CUDA error" at ERROR level as it first lists devices: alarming and meaningless on a CPU machine. There,
# unless the user chose a level, its C++ log keeps to fatal messages (Python's exceptions say what fails). TensorFlow
# reads the level once, as it is imported, so `experiments` and `benchmarks` import this package before anything else.
if "TF_CPP_MIN_LOG_LEVEL" not in os.environ and not os.path.exists("/proc/driver/nvidia/version"):
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
