"""Shared helpers of the benchmark scripts (data location, JSON output)."""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED_DATA = Path(os.environ.get("REROUTE_SHARED_DATA", REPO.parent / "shared" / "data"))


def require(path: Path) -> Path:
    """Exit with a one-line reason (code 0, JSON) when benchmark data is absent."""
    if not path.exists():
        print(json.dumps({"skipped": f"{path} is absent"}))
        sys.exit(0)
    return path


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def emit(obj) -> None:
    """Print ``obj`` as JSON with the machine's load (timings on a busy CPU are slower)."""
    if isinstance(obj, dict):
        obj = dict(obj, host={"cpus": os.cpu_count(),
                              "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]})  # fmt: skip
    print(json.dumps(obj, indent=1))


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall time (s, 4 decimals) of ``repeats`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times), 4)
