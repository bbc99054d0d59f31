"""The StarGAN-style expression generator, all of it: its config section (`config`, no TensorFlow) and the network
(`network`); registered in `models.registry`."""
