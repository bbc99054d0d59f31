"""The painter's config: its crop, its network and how it is trained (`painter_training`), validated before any work."""
from __future__ import annotations

import dataclasses

REGIONS = ("mouth", "eyes")


@dataclasses.dataclass
class PainterConfig:
    # What it paints (`painting.parts`): the inner lips, or each eye.
    region: str = "mouth"
    # The aligned crop of a part (`painting.RegionCrop`): its side in px, and its width in inter-ocular distances. At
    # 96 px and 1.1 a speaking mouth is about 60 px wide, enough to show single teeth; `EYES` crops an eye at 0.6.
    crop_size: int = 96
    span: float = 1.1
    # How far the part's mask reaches beyond its polygon, in crop px: the polygon's edge is where a warp leaves the
    # stretched lips' inner rim (or a squeezed eye's lids), which has to be repainted too.
    grow: int = 2
    # A part is painted where its size differs from the reference's by more than this (polygon area in squared
    # inter-ocular distances): `evaluation.conditions.MOUTH_OPENING` counts an opened mouth from 0.03; an open eye is
    # about 0.02, a closed one under 0.008.
    min_change: float = 0.01
    # The mouth painter may also read how much of the driver's inner mouth shows teeth (`painting.teeth_cue`): the
    # outline alone cannot tell teeth from a tongue or a dark cavity (docs/experiments.md, "When to paint"). In
    # training it is the target's own, withheld (`network.UNKNOWN_TEETH`) from `cue_dropout` of the examples, so that
    # the painter also paints targets that come without a driver (keypoints alone).
    teeth_cue: bool = False
    cue_dropout: float = 0.25
    width: int = 32                 # the U-Net's first width, doubled at each of its three downsamplings (capped)
    critic_width: int = 32
    steps: int = 3000
    batch_size: int = 16
    learning_rate: float = 2e-4
    l1: float = 1.0                 # L1 inside the opening, averaged over its pixels
    perceptual: float = 0.5         # EfficientNet-Lite0 features of the whole crop
    adversarial: float = 0.05       # the local critic on the crop and its opening
    seed: int = 0

    def __post_init__(self):
        if self.region not in REGIONS:
            raise ValueError(f"painter.region must be one of {', '.join(REGIONS)}, got {self.region!r}")
        for field in dataclasses.fields(self)[1:]:
            value = getattr(self, field.name)
            if field.type == "bool":
                if not isinstance(value, bool):
                    raise ValueError(f"painter.{field.name} must be true or false, got {value!r}")
                continue
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or (field.type == "int" and not isinstance(value, int)):
                raise ValueError(f"painter.{field.name} must be {'an integer' if field.type == 'int' else 'a number'}, "
                                 f"got {value!r}")
        if self.crop_size % 8 or self.crop_size < 32:
            raise ValueError(f"painter.crop_size must be a multiple of 8 and at least 32, got {self.crop_size}")
        if not 0.5 <= self.span <= 3:
            raise ValueError(f"painter.span must be within [0.5, 3] inter-ocular distances, got {self.span}")
        for name in ("grow", "steps", "batch_size", "width", "critic_width"):
            if getattr(self, name) < (0 if name == "grow" else 1):
                raise ValueError(f"painter.{name} must be positive, got {getattr(self, name)}")
        for name in ("min_change", "l1", "perceptual", "adversarial"):
            if getattr(self, name) < 0:
                raise ValueError(f"painter.{name} must not be negative, got {getattr(self, name)}")
        if self.teeth_cue and self.region != "mouth":
            raise ValueError("painter.teeth_cue is the mouth painter's: the eyes have no teeth")
        if not 0 <= self.cue_dropout < 1:
            raise ValueError(f"painter.cue_dropout is a share of the examples, in [0, 1), got {self.cue_dropout}")
        if not self.learning_rate > 0:
            raise ValueError(f"painter.learning_rate must be positive, got {self.learning_rate}")


# The eye painter's settings: an eye is about 0.3 inter-ocular distances wide, and its lids reach beyond its outline.
EYES = PainterConfig(region="eyes", span=0.6, grow=4, min_change=0.005)
