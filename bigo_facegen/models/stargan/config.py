"""The StarGAN-style generator's config section (`model.generator.stargan`): it has no field of its own; its widths
are the model's (`model.conv_dim`, `model.res_blocks`)."""
from __future__ import annotations

import dataclasses

from bigo_facegen.config_rules import GeneratorSection


@dataclasses.dataclass
class StarGANConfig(GeneratorSection):
    pass
