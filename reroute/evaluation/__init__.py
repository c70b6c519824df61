"""Batch evaluation of pose transfer on the DeepFashion and MVC protocols.

* :mod:`reroute.evaluation.pose_transfer`: ``python -m reroute evaluate``:
  resumable, torchrun-sharded, per-pair CSV, set metrics and an HTML report;
* :mod:`reroute.evaluation.datasets`: pair-list readers (DeepFashion, MVC,
  folders) and the evaluation crop.
"""

from reroute.evaluation.pose_transfer import EvalConfig, EvalSummary, run_evaluation

__all__ = ["EvalConfig", "EvalSummary", "run_evaluation"]
