"""Bad input through the real CLI: one ``error:`` line on stderr, exit code 2, no output file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reroute", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    good = REPO / "app" / "examples" / "synthetic_arms_down.png"
    files = {"good": good}
    (d / "text.png").write_text("this is not an image")
    files["not an image"] = d / "text.png"
    (d / "empty.png").write_bytes(b"")
    files["empty"] = d / "empty.png"
    raw = good.read_bytes()
    (d / "trunc.png").write_bytes(raw[: len(raw) // 2])
    files["truncated"] = d / "trunc.png"
    Image.new("RGB", (40, 40), "white").save(d / "tiny.png")
    files["tiny"] = d / "tiny.png"
    Image.fromarray(np.full((256, 256, 3), 128, np.uint8)).save(d / "flat.png")
    files["no person"] = d / "flat.png"
    files["missing"] = d / "missing.png"
    return files


@pytest.mark.parametrize(
    "case, expect",
    [("not an image", "not a readable image"), ("empty", "empty"),
     ("truncated", "readable"), ("tiny", "at least 64"), ("missing", "not found"),
     ("no person", "no person")],
)  # fmt: skip
def test_bad_source_exits_2_with_one_line(inputs, tmp_path, case, expect):
    out = tmp_path / "out.png"
    r = _run("transfer", "--source", str(inputs[case]), "--target", str(inputs["good"]),
             "--out", str(out))  # fmt: skip
    assert r.returncode == 2, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and expect in errors[0].lower(), r.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_bad_output_extension(inputs, tmp_path):
    out = tmp_path / "out.gif"
    r = _run("correspond", str(inputs["good"]), "--out", str(out))
    assert r.returncode == 2 and r.stderr.strip().startswith("error:")
    assert not out.exists()
