"""Export versions as older releases wrote them, made from a fresh export: the sidecar's `spec` with the generator's
capabilities as flat flags (`reads_reference_keypoints`, `has_repaint` for the repaint and flow outputs both,
`shared_reference`, `fits_spline`, beside `compiled`), as the shipped model's sidecar has them, less the flags that
releases older still did not write."""
import json
import shutil
from pathlib import Path

from bigo_facegen import export


def flat_spec(spec: dict) -> dict:
    """A sidecar `spec` of today in the flat layout of before the capabilities record."""
    flat = dict(spec)
    capabilities = flat.pop("capabilities")
    assert capabilities["repaint"] == capabilities["flow"], "the flat layout has one flag for both outputs"
    flat.update(reads_reference_keypoints=capabilities["reads_reference_keypoints"],
                has_repaint=capabilities["repaint"], shared_reference=capabilities["shares_reference"],
                fits_spline=capabilities["fits_spline"])
    return flat


def older_copy(version_dir: Path, target: Path, without: tuple[str, ...] = ()) -> Path:
    """A copy of the export version `version_dir` at `target` whose sidecar has the flat layout, `without` those of
    its spec's keys."""
    shutil.copytree(version_dir, target)
    sidecar = json.loads((target / export.SIDECAR).read_text())
    spec = flat_spec(sidecar["spec"])
    for key in without:
        del spec[key]
    (target / export.SIDECAR).write_text(json.dumps({**sidecar, "spec": spec}))
    return target
