"""BodyMap neural re-renderer (Ianina et al., CVPR 2022, supplementary C.1.2).

This package will hold the neural re-renderer that turns a warped texture into
the final image (texture encoder into the bottleneck), its losses (adding
feature matching and face-region reconstruction to the texture network's) and
its trainer. Until it lands, reroute does no re-rendering: outputs are the
warped, completed texture composited as is.
"""
