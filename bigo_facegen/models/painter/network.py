"""The region painter: a U-Net from (the crop with its opening blanked, the opening, the reference's crop and opening)
to a painting of the crop, and the local critic that judges a crop with its opening."""
from __future__ import annotations

import keras

from bigo_facegen.models.critics import SNResNetCritic

# Channels of the painter's input (`painter_input`): 8, and 1 more for the driver's teeth (`PainterConfig.teeth_cue`).
INPUT_CHANNELS = 8
# The teeth cue of a target whose driver is not seen (keypoints alone): the painter guesses as one without the cue.
UNKNOWN_TEETH = -1.0
# The cue's plane is the share of teeth over this, capped at 1, from -1 to 1: most opened mouths show a few per cent
# (the test split's median 0.07), and as a plain share no teeth (0) and the judge's teeth (0.15) barely differed; a
# painter fine-tuned on the plain share painted teeth as often whatever it was told (scratch, 2026-12-08: a share
# > 0.15 painted in 0.34 of 120 test-split openings told 0, 0.38 told 0.6). Unknown is the plane's 0, the judge's
# threshold: there the painter hedges.
TEETH_FULL = 0.3


def input_channels(teeth_cue: bool) -> int:
    return INPUT_CHANNELS + int(teeth_cue)


def painter_input(crop, crop_alpha, reference, reference_alpha, teeth=None):
    """The painter's (B, S, S, 8 or 9) input from crops (B, S, S, 3) in [-1, 1] and their parts' alphas
    (B, S, S, 1): the crop with its part blanked, that alpha, the reference's crop and its alpha; with `teeth` (B,),
    the share of the driver's inner mouth that shows teeth (or `UNKNOWN_TEETH`), a ninth channel: that share over
    `TEETH_FULL`, capped, from -1 to 1 (0 where unknown)."""
    planes = [crop * (1.0 - crop_alpha), crop_alpha, reference, reference_alpha]
    if teeth is not None:
        teeth = keras.ops.cast(teeth, "float32")
        level = keras.ops.where(teeth < 0, 0.0, keras.ops.minimum(teeth / TEETH_FULL, 1.0) * 2.0 - 1.0)
        planes.append(keras.ops.ones_like(crop_alpha) * keras.ops.reshape(level, (-1, 1, 1, 1)))
    return keras.ops.concatenate(planes, axis=-1)


def _conv(filters: int, strides: int = 1, name: str | None = None) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(filters, 3, strides=strides, padding="same", activation="leaky_relu", name=name)


class Painter(keras.Model):
    """(B, S, S, 8 or 9) in [-1, 1] (masks in [0, 1]) -> (B, S, S, 3) painting in [-1, 1]. Three stride-2 levels with
    skip connections: the opening's interior (teeth, tongue, cavity) is read from the reference and the lips around
    it."""

    def __init__(self, width: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        widths = [width, 2 * width, 3 * width, 4 * width]
        self.stem = _conv(widths[0], name="stem")
        self.downs = [_conv(w, 2, name=f"down{i}") for i, w in enumerate(widths[1:])]
        self.middle = [_conv(widths[-1], name=f"middle{i}") for i in range(2)]
        self.ups = [_conv(w, name=f"up{i}") for i, w in enumerate(reversed(widths[:-1]))]
        self.head = keras.layers.Conv2D(3, 3, padding="same", activation="tanh", name="head")

    def call(self, x):
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for layer in self.middle:
            x = x + layer(x)
        for up in self.ups:
            x = up(keras.ops.concatenate([keras.ops.repeat(keras.ops.repeat(x, 2, axis=1), 2, axis=2),
                                          skips.pop()], axis=-1))
        return self.head(x)

    def get_config(self):
        return {**super().get_config(), "width": self.width}


class LocalCritic(SNResNetCritic):
    """Logit that a crop (B, S, S, 3) in [-1, 1] with its opening (B, S, S, 1) is a real mouth: called on the pair
    `(crop, opening)`."""

    def __init__(self, critic_dim: int = 32, **kwargs):
        kwargs.pop("in_channels", None)
        super().__init__(4, critic_dim, 3, **kwargs)

    def call(self, pair, training=False):
        crop, opening = pair
        return super().call(keras.ops.concatenate([crop, opening * 2.0 - 1.0], axis=-1), training=training)
