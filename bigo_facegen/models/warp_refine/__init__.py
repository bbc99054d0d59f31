"""The warp-and-refine generator, all of it: its config section (`config`, no TensorFlow), the network (`network`) and
its own loss terms (`losses`); registered in `models.registry`."""
