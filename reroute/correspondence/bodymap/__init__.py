"""BodyMap correspondence network (Ianina et al., CVPR 2022): network, losses, decoding."""
