"""Metrics, checked against reference implementations in the tests.

* :mod:`reroute.metrics.image`: SSIM (scikit-image's and the PATN/GFLA
  variants), MS-SSIM, masked SSIM, PSNR, L1, and LPIPS/FID/IS/DS when their
  network weights are found locally (otherwise reported as unavailable);
* :mod:`reroute.metrics.correspondence`: geodesic distances on the template,
  GPS, COCO-style AP/AR, 2-D accuracy, IUV agreement;
* :mod:`reroute.metrics.temporal`: consistency of correspondences over frames.
"""

from reroute.metrics.image import ms_ssim, psnr, ssim, ssim_patn

__all__ = ["ssim", "ssim_patn", "ms_ssim", "psnr"]
