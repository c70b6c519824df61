"""Load test: 8 concurrent pose-transfer requests through gradio_client to one local server.

Starts ``python launch.py`` on a free port (or uses ``--url``), sends N
requests at once from N threads, and checks that every one succeeded and that
none got another request's images: each target photo is padded to a size no
other request has (the result must have its own target's size), and each
source photo carries a colour patch of its own in its top-left corner, far from
the person; the result is composited over the source's background, so its
corner must show its own source's colour (the nearest of the N). Prints JSON with p50 / p95
latency (submit to result, seconds) and the server's peak resident memory
(VmHWM, MiB; ``null`` with ``--url``). Then request 0 is sent once more, alone:
its photos come from the app's analysis cache (``repeat_of_request_0``).

With ``--bursts K`` the same server takes K bursts one after another, each with
photos changed in one corner pixel (new content hashes: the analysis cache
misses, as for new photos); ``latency_s`` is the median over the bursts of each
figure and ``per_burst`` lists them, so one server start gives several samples of a
machine whose speed drifts by 20-30 % from minute to minute. ``server_cpu_s`` is
the CPU time the server used during each burst, and ``client_cpu_s`` this
script's own (it shares the two cores with the server).

Photos: 8 DeepFashion pairs with distinct people from ../shared/data when
present, else synthetic anny renders with different colours.

    python benchmarks/app_load.py [--requests 8] [--bursts 1] [--concurrency N] [--compile-fit] [--url http://127.0.0.1:7860/]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from _common import REPO, SHARED_DATA, emit


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(log_path: Path, concurrency: int | None,
                  compile_fit: bool = False) -> tuple[subprocess.Popen, str]:  # fmt: skip
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    extra = [] if concurrency is None else ["--concurrency", str(concurrency)]
    extra += ["--compile-fit"] if compile_fit else []
    proc = subprocess.Popen([sys.executable, "launch.py", "--port", str(port), *extra], cwd=REPO,
                            env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: launch.py exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        time.sleep(1)
    proc.kill()
    raise SystemExit(f"error: the server did not start in 300 s; see {log_path}")


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _inputs(n: int, folder: Path, variant: int = 0):
    """n (source, target) paths; targets padded to unique sizes; a description of the data.
    ``variant`` k > 0 changes the bottom-right pixel of every photo (new content, same picture)."""
    import numpy as np
    from PIL import Image

    pairs = []
    listing = SHARED_DATA / "deepfashion" / "pairs.csv"
    if listing.exists():
        seen = set()
        with open(listing) as f:
            for row in csv.DictReader(f):
                person = row["from"].rsplit("_", 1)[0]
                if person in seen:
                    continue
                seen.add(person)
                img = SHARED_DATA / "deepfashion" / "images"
                pairs.append(
                    tuple(img / Path(row[k]).with_suffix(".png").name for k in ("from", "to"))
                )
        data = "DeepFashion pairs (distinct people)"
    if len(pairs) < n:
        from reroute.synth.engine import render_synthetic_person
        from reroute.synth.pose import EXAMPLE_POSES

        poses = list(EXAMPLE_POSES)
        pairs = []
        for i in range(n):
            s = render_synthetic_person(EXAMPLE_POSES[poses[i % len(poses)]], seed=i, size=256)
            t = render_synthetic_person(
                EXAMPLE_POSES[poses[(i + 1) % len(poses)]], seed=i, size=256
            )
            pairs.append((s.image, t.image))
        data = "synthetic anny renders"
    out = []
    for i, (s, t) in enumerate(pairs[:n]):
        src = np.asarray(Image.open(s).convert("RGB")) if isinstance(s, Path) else s
        src = src.copy()
        src[:20, :20] = MARKERS[i % len(MARKERS)]  # this request's source, seen in the result
        tgt = np.asarray(Image.open(t).convert("RGB")) if isinstance(t, Path) else t
        pad = 8 * (i + 1)  # a unique target size per request
        tgt = np.pad(tgt, ((0, pad), (pad, 0), (0, 0)), constant_values=255)
        if variant:
            src[-1, -1] = tgt[-1, -1] = (variant * 37) % 256
        sp, tp = folder / f"source_{variant}_{i}.png", folder / f"target_{variant}_{i}.png"
        Image.fromarray(src).save(sp)
        Image.fromarray(tgt).save(tp)
        out.append((sp, tp))
    return out, data


#: corner colours that tell the sources apart (RGB)
MARKERS = (
    (230, 20, 20), (20, 200, 20), (20, 20, 230), (230, 220, 20),
    (220, 20, 220), (20, 210, 220), (240, 130, 10), (110, 20, 160),
)  # fmt: skip


def _corner(path: Path):
    """Mean colour of the result's top-left corner, where its source's patch lands."""
    import numpy as np
    from PIL import Image

    px = np.asarray(Image.open(path).convert("RGB")).astype(float)
    return px[3:12, 3:12].reshape(-1, 3).mean(0)


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds used so far by process ``pid`` (``None`` if unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _burst(client, inputs: list, timeout: float, server_pid: int | None) -> dict:
    """All requests at once, one thread each: their results, the wall time, and the CPU
    seconds this client and the server used meanwhile."""
    from gradio_client import handle_file

    results: list[dict] = [{} for _ in inputs]

    def one(i: int) -> None:
        s, t = inputs[i]
        t0 = time.perf_counter()
        try:
            job = client.submit(handle_file(str(s)), handle_file(str(t)), api_name="/transfer")
            out = job.result(timeout=timeout)
            results[i] = {"latency": time.perf_counter() - t0, "image": out[0], "status": out[1]}
        except Exception as exc:  # noqa: BLE001 - reported in the JSON
            results[i] = {"latency": time.perf_counter() - t0, "image": None,
                          "status": f"exception: {type(exc).__name__}: {exc}"}  # fmt: skip

    server0 = None if server_pid is None else _cpu_s(server_pid)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t_all = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(inputs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t_all
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    server1 = None if server_pid is None else _cpu_s(server_pid)
    server = None if server0 is None or server1 is None else round(server1 - server0, 2)
    client_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {"results": results, "wall_s": round(wall, 2), "client_cpu_s": round(client_cpu, 2),
            "server_cpu_s": server}  # fmt: skip


def _checks(results: list[dict], inputs: list) -> list[dict]:
    """Per request: succeeded, got its own target's size and its own source's patch."""
    import numpy as np
    from PIL import Image

    markers = np.array(MARKERS[: len(inputs)], float)
    checks = []
    for i, r in enumerate(results):
        ok = r["status"].startswith("ok:") and r["image"] is not None
        size_ok = own_source = False
        if ok:
            with Image.open(r["image"]) as im, Image.open(inputs[i][1]) as tgt:
                size_ok = im.size == tgt.size
            dist = np.abs(markers - _corner(Path(r["image"]))).sum(1)
            own_source = bool(int(np.argmin(dist)) == i % len(MARKERS) and dist.min() < 60)
        checks.append({"request": i, "ok": ok, "own_target_size": size_ok,
                       "own_source_patch": own_source,
                       "latency_s": round(r["latency"], 2), "status": r["status"][:160]})  # fmt: skip
    return checks


def _latencies(results: list[dict]) -> dict:
    import numpy as np

    lat = np.array([r["latency"] for r in results])
    return {"p50": round(float(np.percentile(lat, 50)), 2),
            "p95": round(float(np.percentile(lat, 95)), 2), "max": round(float(lat.max()), 2)}  # fmt: skip


def _run(args, url: str, tmp: Path, server_pid: int | None) -> dict:
    """``args.bursts`` bursts on the server at ``url``, then request 0 of the first again."""
    import numpy as np
    from gradio_client import Client, handle_file

    # A plain-HTTP URL needs no certificates, and the client makes a new httpx
    # client for every upload, stream and download: with verification on, each one
    # loads the CA bundle (50 ms of CPU), 1.9 CPU-s per 8-request burst on the
    # server's own two cores.
    client = Client(url, verbose=False, ssl_verify=not url.startswith("http://"))
    bursts, checks, data = [], [], ""
    for k in range(args.bursts):
        inputs, data = _inputs(args.requests, tmp, variant=k)
        b = _burst(client, inputs, args.timeout, server_pid)
        checks += [dict(c, burst=k) for c in _checks(b["results"], inputs)]
        bursts.append({"latency_s": _latencies(b.pop("results")), **b})
        if k == 0:  # the first request again, alone: both photos come from the analysis cache
            t_rep = time.perf_counter()
            rep = client.submit(handle_file(str(inputs[0][0])), handle_file(str(inputs[0][1])),
                                api_name="/transfer").result(timeout=args.timeout)  # fmt: skip
            repeat = {"latency_s": round(time.perf_counter() - t_rep, 2), "status": rep[1][:160]}
    med = {k: round(float(np.median([b["latency_s"][k] for b in bursts])), 2)
           for k in ("p50", "p95", "max")}  # fmt: skip
    return {
        "url": url, "data": data, "requests": args.requests, "bursts": len(bursts),
        "compile_fit": args.compile_fit,
        "all_succeeded": all(c["ok"] for c in checks),
        "no_mix_up": all(c["own_target_size"] and c["own_source_patch"] for c in checks),
        "latency_s": med, "per_burst": bursts, "repeat_of_request_0": repeat,
        "server_peak_rss_mb": None if server_pid is None else _peak_rss_mb(server_pid),
        "cpu_cores": os.cpu_count(), "checks": checks,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--bursts", type=int, default=1,
                    help="bursts on the same server, each with new photos (median reported)")  # fmt: skip
    ap.add_argument("--url", default=None, help="use a running server instead of starting one")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per request")
    ap.add_argument("--concurrency", type=int, default=None,
                    help="the started server's --concurrency (default: launch.py's)")
    ap.add_argument("--compile-fit", action="store_true",
                    help="start the server with --compile-fit (compiled at start-up, untimed)")
    args = ap.parse_args()
    if args.bursts < 1:
        ap.error(f"--bursts must be at least 1, got {args.bursts}")
    tmp = Path(tempfile.mkdtemp(prefix="reroute-load-"))
    proc = None
    url = args.url
    if url is None:
        proc, url = _start_server(tmp / "server.log", args.concurrency, args.compile_fit)
    try:
        emit(_run(args, url, tmp, None if proc is None else proc.pid))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
