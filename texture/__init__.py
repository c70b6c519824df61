"""BodyMap texture-completion network (Ianina et al., CVPR 2022, supplementary C.1.1).

This package will hold the texture-completion U-Net that fills the unseen parts
of a partial UV texture, its losses (hinge GAN with a multi-scale
discriminator, VGG perceptual L1, total variation) and its trainer. Until it
lands, reroute completes textures with the classical method in
:mod:`reroute.completion`.
"""
