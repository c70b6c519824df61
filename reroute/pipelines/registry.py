"""Every method name reroute offers, spelled once.

The CLI, the batch evaluation and the app all take their choices from here:

* :data:`TEXTURE_COMPLETIONS`: how a partial UV texture is completed
  (``classical`` mirror fill + push-pull, ``network`` the texture completion
  U-Net of :mod:`texture`);
* :data:`METHODS`: pose-transfer methods for ``evaluate --method`` and the
  app (``identity`` baseline, ``warp`` the classical pipeline, ``bodymap`` and
  ``dpt`` the trained pipelines), each a :class:`MethodInfo`; a trained
  method plugs in with :func:`register_method` once its checkpoint exists;
* :data:`APP_METHODS`: the app's labels for the methods it offers;
* :data:`CORRESPONDENCES`: how a photo's correspondences are made (``fit`` the
  rendered template fit, ``bodymap`` the fit refined by the BodyMap network of
  :mod:`reroute.correspondence.bodymap`), and :data:`APP_CORRESPONDENCES` the
  app's labels for them;
* :data:`TRYON_REGIONS`: what try-on can swap (keys of
  :data:`reroute.pipelines.tryon.REGIONS`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from renderer import DEFAULT_CHECKPOINT as RERENDER_CHECKPOINT
from renderer import RERENDER_METHODS
from renderer.dpt import DEFAULT_CHECKPOINT as DPT_CHECKPOINT
from reroute.correspondence.bodymap.predict import DEFAULT_CHECKPOINT as BODYMAP_CHECKPOINT
from reroute.correspondence.cache import AnalysisCache
from reroute.metrics.image import sha256_file
from reroute.pipelines.correspondences import CORRESPONDENCES, DEFAULT_CORRESPONDENCE
from reroute.pipelines.dpt import DensePoseTransferPipeline
from reroute.pipelines.pose_transfer import PoseTransferPipeline
from reroute.pipelines.tryon import REGIONS
from texture import TEXTURE_METHODS

__all__ = [
    "TEXTURE_COMPLETIONS",
    "RERENDERINGS",
    "MethodInfo",
    "METHODS",
    "register_method",
    "APP_METHODS",
    "CORRESPONDENCES",
    "APP_CORRESPONDENCES",
    "TRYON_REGIONS",
]

#: texture completion name -> one-line description (owned by :mod:`texture`)
TEXTURE_COMPLETIONS: dict[str, str] = TEXTURE_METHODS

#: re-rendering name -> one-line description (owned by :mod:`renderer`)
RERENDERINGS: dict[str, str] = RERENDER_METHODS

# CORRESPONDENCES (imported above): correspondence method name -> one-line description
# (owned by reroute.correspondence.analyse)

#: try-on region names, in the order the app lists them
TRYON_REGIONS: tuple[str, ...] = tuple(REGIONS)


@dataclass
class MethodInfo:
    """A registered pose-transfer method.

    Attributes:
        name: CLI name.
        description: one line for ``metrics.json`` and ``--help``.
        factory: ``factory(config, size) -> callable(source, target, target_keypoints) -> image``
            (``config`` has ``texture_size``, e.g. an ``EvalConfig``; ``size`` is (H, W))
            where images are ``(H, W, 3)`` uint8 RGB at the evaluation size and
            ``target_keypoints`` is ``(18, 2)`` (y, x) or None; the callable may
            have a ``checkpoints`` dict (path -> sha256). None when unavailable.
        unavailable: why the method cannot run yet (None when it can).
    """

    name: str
    description: str
    factory: Callable | None = None
    unavailable: str | None = None


METHODS: dict[str, MethodInfo] = {}


def register_method(name: str, description: str, factory: Callable | None = None,
                    unavailable: str | None = None) -> None:  # fmt: skip
    """Add or replace a method in :data:`METHODS` (trained networks plug in here).

    Raises:
        ValueError: neither a factory nor a reason why the method is unavailable.
    """
    if factory is None and unavailable is None:
        raise ValueError("a method needs a factory or a reason why it is unavailable")
    METHODS[name] = MethodInfo(name, description, factory, unavailable)


class _Identity:
    """Returns the source photo unchanged: the baseline every method must beat."""

    checkpoints: dict[str, str] = {}

    def __call__(self, source, target, target_keypoints=None):
        return source


#: analyses an evaluation run keeps in memory (~2 MB each at 256x176)
_EVAL_CACHE_ITEMS = 64


def _mediapipe_checkpoints() -> dict[str, str]:
    """sha256 of the mediapipe pose models every fitted method runs (relative path -> hash)."""
    out = {}
    try:
        import mediapipe

        d = Path(mediapipe.__file__).parent / "modules"
        for rel in ("pose_detection/pose_detection.tflite",
                    "pose_landmark/pose_landmark_full.tflite"):  # fmt: skip
            if (d / rel).is_file():
                out[f"mediapipe/modules/{rel}"] = sha256_file(d / rel)
    except ImportError:
        pass
    return out


def _correspondence_options(config) -> dict:
    """``correspondence`` and ``bodymap_checkpoint`` of an evaluation config (default: the fit)."""
    return {"correspondence": getattr(config, "correspondence", None) or DEFAULT_CORRESPONDENCE,
            "bodymap_checkpoint": getattr(config, "bodymap_checkpoint", None)}  # fmt: skip


def _bodymap_checkpoints(how: dict) -> dict[str, str]:
    """``{checkpoints/<name>: sha256}`` of the BodyMap network when ``how`` uses it, else ``{}``."""
    if how["correspondence"] == DEFAULT_CORRESPONDENCE:
        return {}
    ck = Path(how["bodymap_checkpoint"]) if how["bodymap_checkpoint"] else BODYMAP_CHECKPOINT
    return {f"checkpoints/{ck.name}": sha256_file(ck)}


def _eval_cache(config) -> AnalysisCache:
    """Each distinct photo analysed once per run (64 analyses in memory), and once across
    runs when ``config.analysis_cache`` names a folder."""
    return AnalysisCache(_EVAL_CACHE_ITEMS, getattr(config, "analysis_cache", None))


class _Warp:
    """reroute's pose transfer (fit both photos, warp the completed UV texture), optionally
    followed by the neural re-renderer (``rerender="network"``: the ``bodymap`` method).

    Photos are analysed through one :class:`~reroute.correspondence.cache.AnalysisCache`
    per run (:func:`_eval_cache`), with ``config.correspondence`` (``fit`` or ``bodymap``,
    ``config.bodymap_checkpoint``) when the config has it.
    """

    def __init__(self, config, size: tuple[int, int], rerender: str = "none"):
        self.cache = _eval_cache(config)
        how = _correspondence_options(config)
        self.pipe = PoseTransferPipeline(size=max(size), texture_size=config.texture_size,
                                         rerender=rerender, cache=self.cache, **how)  # fmt: skip
        self.checkpoints = {}
        if rerender == "network":
            self.checkpoints[f"checkpoints/{RERENDER_CHECKPOINT.name}"] = sha256_file(RERENDER_CHECKPOINT)
        self.checkpoints |= _bodymap_checkpoints(how) | _mediapipe_checkpoints()

    def __call__(self, source, target, target_keypoints=None):
        return self.pipe(source, target).image


class _DPT(_Warp):
    """Dense Pose Transfer (:class:`~reroute.pipelines.dpt.DensePoseTransferPipeline`), its
    photos analysed once per run as for ``warp`` (:func:`_eval_cache`).

    ``checkpoint``: a ``dpt`` checkpoint (default :data:`renderer.dpt.DEFAULT_CHECKPOINT`);
    the Table 4 variants are evaluated by passing theirs.
    """

    def __init__(self, config, size: tuple[int, int], checkpoint=None):
        self.cache = _eval_cache(config)
        ck = Path(checkpoint) if checkpoint else DPT_CHECKPOINT
        how = _correspondence_options(config)
        self.pipe = DensePoseTransferPipeline(size=max(size), checkpoint=str(ck), cache=self.cache, **how)
        self.checkpoints = ({f"checkpoints/{ck.name}": sha256_file(ck)} | _bodymap_checkpoints(how)
                            | _mediapipe_checkpoints())  # fmt: skip


register_method("identity", "the source photo unchanged (baseline)", lambda cfg, size: _Identity())
register_method(
    "warp",
    "reroute classical pose transfer: mediapipe + anny fit of both photos, UV texture lift, "
    "mirror + push-pull completion, warp to the target's correspondences, composite over the "
    "inpainted source background (PoseTransferPipeline); reads the target photo only for its pose "
    "and person mask",
    lambda cfg, size: _Warp(cfg, size),
)
register_method(
    "bodymap",
    "BodyMap re-rendering (Ianina et al. CVPR 2022, supp. C.1.2): the warp method's composite "
    "re-rendered by the neural re-renderer (renderer/, checkpoints/rerenderer_cpu256.pt)",
    (lambda cfg, size: _Warp(cfg, size, rerender="network")) if RERENDER_CHECKPOINT.is_file() else None,
    unavailable=None if RERENDER_CHECKPOINT.is_file() else
    f"the neural re-renderer is not trained yet (no {RERENDER_CHECKPOINT.name} in checkpoints/)",
)
register_method(
    "dpt",
    "Dense Pose Transfer (Neverova et al. ECCV 2018): predictive stream + warping stream through "
    "the 24-part atlas with its inpainting autoencoder + blending, on reroute's IUV "
    "(renderer/dpt/, checkpoints/dpt_cpu256.pt)",
    (lambda cfg, size: _DPT(cfg, size, getattr(cfg, "dpt_checkpoint", None))) if DPT_CHECKPOINT.is_file()
    else None,
    unavailable=None if DPT_CHECKPOINT.is_file() else
    f"the Dense Pose Transfer network is not trained yet (no {DPT_CHECKPOINT.name} in checkpoints/)",
)


#: the app's method labels -> names in :data:`METHODS`
APP_METHODS: dict[str, str] = {"BodyMap re-rendering": "warp", "Dense Pose Transfer": "dpt"}

#: the app's correspondence labels -> names in :data:`CORRESPONDENCES` (the first is the default)
APP_CORRESPONDENCES: dict[str, str] = {"fit": "fit", "BodyMap network": "bodymap"}
assert set(APP_CORRESPONDENCES.values()) == set(CORRESPONDENCES)
assert APP_CORRESPONDENCES[next(iter(APP_CORRESPONDENCES))] == DEFAULT_CORRESPONDENCE
