"""The networks. Each generator is a package of its own (`stargan`, `warp_refine`: its config section, network and
loss terms), known to the rest through its entry in `registry` (what `contract.GeneratorSpec` declares); `registry`
also builds the keypoint detector, the critics and the perceptual network.

Importing this package imports no TensorFlow, so that `bigo_facegen.config` can name the generators' config sections.
"""
