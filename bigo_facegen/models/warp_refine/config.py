"""The warp-and-refine generator's config section (`model.generator.warp_refine`): its motion and decoder settings and
the weights of its own loss terms (`losses`), their rules, and what it needs from the data."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from bigo_facegen.config_rules import GeneratorSection, one_of

if TYPE_CHECKING:
    from bigo_facegen.config import ExperimentConfig


@dataclasses.dataclass
class WarpRefineConfig(GeneratorSection):
    # Largest correction of the keypoint prior by the dense-motion network, as a share of half the crop side. Learned
    # from the images alone, a correction beyond 0.1 tore faces apart for the adversarial terms; supervised by optical
    # flow (`flow`), it may be as large as the data says.
    motion_correction: float = 0.1
    # The resolution of the dense-motion network, as a divisor of the crop side (1 or 2; the crop side must then be a
    # multiple of 4 x this). The motion the keypoints imply is coarse (a true flow blurred to a 1/16 grid keeps most of
    # its gain, #14), and at 2 the network and its heatmaps cost about a quarter.
    motion_downscale: int = 1
    # Whether the decoder also reads the target's inner-mouth polygon at each of its scales: its painting otherwise
    # sees only the reference's features moved by the flow, which stretch a closed mouth's lips over an opened one and
    # say nowhere that an interior the reference does not show belongs there (#14).
    decoder_mouth_mask: bool = False
    # The same for both of the target's eye outlines: the eyelids and irises that blinks and gaze change, where the
    # reference's features, moved, only stretch. A scratch version of it gained nothing over the `real` preset on the
    # dev clips (docs/experiments.md, the ablation), which leaves it off.
    decoder_eyes_mask: bool = False
    # L1 of the painting alone to the target frame. Through the output the painting only gets gradient where the
    # repaint mask is already open, so without this it never learns a face for the mask to choose.
    painted_l1: float = 4.0
    # L1 of the flow to the pair's optical flow (which the data then holds: `data_needs`), in units of half the crop
    # side, over the pixels the forward-backward check trusts: the motion learned directly, not only through pixels.
    flow: float = 0.0
    # Thin-Plate-Spline-Motion-Model's warp loss (a gain in its ablation): the reference's encoder features moved by
    # the flow against the true target's, both masked alike. Features respond to edges and texture that the pixel L1
    # averages away, so the motion is pulled to line up the face's structure. On the dev clips two seeds put it within
    # noise of the `real` preset (docs/experiments.md, the ablation), so that preset leaves it off.
    feature_warp: float = 0.0

    RULES = {
        "motion_correction": (lambda value: 0 <= value <= 2, "must be in [0, 2] (a share of half the crop side)"),
        "motion_downscale": one_of((1, 2)),
    }
    LOSS_WEIGHTS = ("painted_l1", "flow", "feature_warp")
    LEGACY_KEYS = {
        "model.motion_correction": "motion_correction",
        "model.motion_downscale": "motion_downscale",
        "model.decoder_mouth_mask": "decoder_mouth_mask",
        "loss.painted_l1": "painted_l1",
        "loss.flow": "flow",
        "loss.feature_warp": "feature_warp",
        # Asked for the flow that `flow` learns from: the data now gives it when `data_needs` says so.
        "data.optical_flow": None,
    }

    def check(self, config: ExperimentConfig, where: str) -> None:
        multiple = 4 * self.motion_downscale
        if config.data.image_size % multiple:
            raise ValueError(f"{where}.motion_downscale={self.motion_downscale!r}: data.image_size="
                             f"{config.data.image_size} must then be a multiple of {multiple}")


def data_needs(section: WarpRefineConfig) -> frozenset[str]:
    """What the training batches must hold beyond the generator's inputs and the target (`data.make_dataset`'s
    `extras`): each pair's optical flow where the flow term learns from it."""
    return frozenset({"optical_flow"}) if section.flow > 0 else frozenset()
