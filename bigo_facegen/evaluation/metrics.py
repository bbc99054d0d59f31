"""Image and keypoint metrics of generated frames against the true ones.

Settings, fixed so that numbers are comparable across runs and with scikit-image:

- PSNR: uint8 RGB, data range 255, the mean squared error over all pixels and channels; `inf` for identical images.
  Equals `skimage.metrics.peak_signal_noise_ratio(truth, generated, data_range=255)`.
- SSIM: per RGB channel, then averaged over the channels; 7x7 uniform window, sample covariance, K1 = 0.01,
  K2 = 0.03, data range 255, the window-radius border left out of the mean. Equals
  `skimage.metrics.structural_similarity(truth, generated, channel_axis=-1, data_range=255)` (its defaults),
  computed with OpenCV box filters, about 20x faster.
- The face crop is the square of side max(w, h) centred on the *target* bbox, resampled to `FACE_SIZE` (128) px with the
  border replicated (`geometry.crop`); generated and true frames are cropped by the same box.
- Keypoint NME: the mean point-to-point distance over the points divided by the distance between the two outer eye
  corners of the target (ibug68 36 and 45), and the share of frames whose NME is under `NME_THRESHOLD`.

The same PSNR and SSIM around the target's mouth and eyes, a perceptual distance, teeth and eye opening: `regions`.
"""
from __future__ import annotations

import cv2
import numpy as np

from bigo_facegen import geometry

FACE_SIZE = 128
NME_THRESHOLD = 0.05
SSIM_WINDOW = 7
_K1, _K2 = 0.01, 0.03
_DATA_RANGE = 255.0


def _check_pair(truth: np.ndarray, generated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth, generated = np.asarray(truth), np.asarray(generated)
    if truth.shape != generated.shape:
        raise ValueError(f"images differ in shape: {truth.shape} vs {generated.shape}")
    if truth.dtype != np.uint8 or generated.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {truth.dtype} and {generated.dtype}")
    return truth, generated


def psnr(truth: np.ndarray, generated: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images; `inf` when they are identical."""
    truth, generated = _check_pair(truth, generated)
    mse = np.mean((truth.astype(np.float64) - generated.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(_DATA_RANGE ** 2 / mse))


# Kept rather than scikit-image's structural_similarity, which it equals: OpenCV's box filters make it ~20x faster.
def ssim(truth: np.ndarray, generated: np.ndarray) -> float:
    """Structural similarity of two uint8 images (H, W) or (H, W, C), averaged over channels (see module doc)."""
    truth, generated = _check_pair(truth, generated)
    if truth.ndim == 2:
        truth, generated = truth[..., None], generated[..., None]
    if min(truth.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} px, got {truth.shape[:2]}")
    return float(np.mean([_ssim_channel(truth[..., c], generated[..., c]) for c in range(truth.shape[2])]))


def _ssim_channel(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x.astype(np.float64), y.astype(np.float64)

    def mean(image):
        return cv2.boxFilter(image, cv2.CV_64F, (SSIM_WINDOW, SSIM_WINDOW), borderType=cv2.BORDER_REFLECT_101)

    n = SSIM_WINDOW * SSIM_WINDOW
    cov_norm = n / (n - 1)
    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (_K1 * _DATA_RANGE) ** 2, (_K2 * _DATA_RANGE) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    # Windows that reach past the image are padding-dependent; like scikit-image, leave them out.
    pad = (SSIM_WINDOW - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean())


def face_crop(frame: np.ndarray, bbox, size: int = FACE_SIZE) -> np.ndarray:
    """The face square of `bbox` resampled to size x size, border replicated: where face metrics are measured."""
    return geometry.crop(frame, bbox, size)[0]


def keypoint_nme(predicted: np.ndarray, target: np.ndarray, eye_corners: tuple[int, int]) -> float:
    """Mean point error normalised by the target's outer-eye-corner distance (`eye_corners` = their indices)."""
    predicted, target = np.asarray(predicted, np.float64), np.asarray(target, np.float64)
    if predicted.shape != target.shape:
        raise ValueError(f"keypoint arrays differ in shape: {predicted.shape} vs {target.shape}")
    interocular = np.linalg.norm(target[eye_corners[0]] - target[eye_corners[1]])
    if interocular <= 0:
        raise ValueError(f"target outer eye corners {eye_corners} coincide; NME is undefined")
    return float(np.linalg.norm(predicted - target, axis=1).mean() / interocular)


def keypoint_jitter(before_previous: np.ndarray, previous: np.ndarray, current: np.ndarray,
                    interocular: float) -> float:
    """Mean norm of the points' second difference over three consecutive frames (their acceleration), as a fraction
    of the inter-ocular distance: how much the points shake beyond any steady motion."""
    acceleration = (np.asarray(current, np.float64) - 2.0 * np.asarray(previous, np.float64)
                    + np.asarray(before_previous, np.float64))
    if interocular <= 0:
        raise ValueError("the inter-ocular distance must be positive")
    return float(np.linalg.norm(acceleration, axis=-1).mean() / interocular)


def nearest_identity(descriptor: np.ndarray, references: np.ndarray, labels: list[str]) -> tuple[str, np.ndarray]:
    """The label of the reference descriptor nearest to `descriptor` (euclidean), and all distances (R,)."""
    distances = np.linalg.norm(np.asarray(references, np.float64) - np.asarray(descriptor, np.float64), axis=1)
    return labels[int(np.argmin(distances))], distances
