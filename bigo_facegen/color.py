"""Reinhard colour transfer: give an image the colour statistics of a reference, per channel in CIE Lab.

Generated faces drift in tint and brightness from the reference they were made from; matching the mean and standard
deviation of each Lab channel to the reference's (Reinhard et al. 2001, "Color Transfer between Images") pulls them
back without touching the structure, as the original solution did before pasting a face into the frame.
Images are RGB uint8 (the library's convention); Lab is OpenCV's float Lab (L in [0, 100], a and b about [-128, 127]),
computed from [0, 1] floats so that no 8-bit quantisation happens between the two conversions.
"""
from __future__ import annotations

import cv2
import numpy as np

# A channel this flat (a grey card, a saturated patch) has no spread to match: only its mean is moved.
_MIN_STD = 1e-3


def _check_rgb(image: np.ndarray, name: str) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must be an RGB uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}")


def rgb_to_lab(image: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> float32 Lab (H, W, 3)."""
    _check_rgb(image, "image")
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """float32 Lab (H, W, 3) -> RGB uint8, out-of-gamut colours clipped."""
    rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def lab_stats(image: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each Lab channel, over the pixels where `mask` (H, W) is true (all if None)."""
    return _stats(rgb_to_lab(image), mask)


def transfer_color(image: np.ndarray, reference: np.ndarray, image_mask: np.ndarray | None = None,
                   reference_mask: np.ndarray | None = None) -> np.ndarray:
    """Returns `image` recoloured so that its Lab mean and std (over `image_mask`) equal `reference`'s (over
    `reference_mask`). The two images may differ in size. The whole image is recoloured with the statistics of the
    masked region, so a mask that covers the face alone keeps the background from steering the skin tone."""
    _check_rgb(reference, "reference")
    return match_stats(image, *lab_stats(reference, reference_mask), image_mask)


def match_stats(image: np.ndarray, mean: np.ndarray, std: np.ndarray, image_mask: np.ndarray | None = None
                ) -> np.ndarray:
    """`transfer_color` to a reference whose `lab_stats` are `mean` and `std`: many images recoloured to one
    reference need its statistics once."""
    lab = rgb_to_lab(image)
    mean_src, std_src = _stats(lab, image_mask)
    scale = np.where(std_src > _MIN_STD, std / np.maximum(std_src, _MIN_STD), 1.0)
    return lab_to_rgb((lab - mean_src) * scale + mean)


def _stats(lab: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    pixels = lab.reshape(-1, 3)
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != lab.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} does not match image shape {lab.shape[:2]}")
        if not mask.any():
            raise ValueError("mask selects no pixel")
        pixels = pixels[mask.reshape(-1)]
    return pixels.mean(axis=0), pixels.std(axis=0)
