"""The Gradio app: a real server (``python launch.py``) driven through ``gradio_client``.

One server is started for the module. The fast tests at the top exercise the
callback with a stand-in pipeline and need no server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reroute.errors import NoPersonError

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 180


# ------------------------------------------------------------ no server needed


class _RefusingPipeline:
    def __call__(self, source, target):
        raise NoPersonError("no person found in target photo")


def test_callback_reports_input_errors_as_status():
    from app.ui import N_OUTPUTS, run_transfer

    img = np.full((96, 96, 3), 128, np.uint8)
    out = run_transfer(_RefusingPipeline(), img, img)
    assert len(out) == N_OUTPUTS
    assert out[1] == "error: no person found in target photo."
    assert all(v is None for i, v in enumerate(out) if i != 1)

    out = run_transfer(_RefusingPipeline(), None, img)
    assert out[1] == "error: upload a source photo."


def test_examples_use_package_photos(tmp_path):
    from app.ui import example_images

    bundled = tmp_path / "bundled"
    bundled.mkdir()
    for name in ("synthetic_a.png", "synthetic_b.png"):
        Image.new("RGB", (64, 64)).save(bundled / name)
    pairs = example_images(tmp_path / "written", bundled=bundled)
    names = [[Path(p).name for p in pair] for pair in pairs]
    assert ["astronaut.png", "astronaut.png"] in names
    assert ["synthetic_a.png", "synthetic_b.png"] in names
    assert all(Path(p).is_file() for pair in pairs for p in pair)
    assert not any("shared" in p for pair in pairs for p in pair)


# ------------------------------------------------------------ the real server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """URL of a ``python launch.py`` server; killed at the end of the module."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "launch.py", "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"launch.py exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not up after {START_TIMEOUT_S} s:\n{log_path.read_text()}")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """An upper-body photo (scikit-image's astronaut, 512x512) and a flat gray image."""
    import skimage.data

    d = tmp_path_factory.mktemp("photos")
    person = d / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(person)
    gray = d / "gray.png"
    Image.new("RGB", (128, 128), (128, 128, 128)).save(gray)
    return person, gray


def test_api_endpoint_is_named_transfer(client):
    assert "/transfer" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]


def test_no_person_is_reported_then_a_valid_request_succeeds(client, photos):
    from gradio_client import handle_file

    person, gray = photos
    out = client.predict(handle_file(str(person)), handle_file(str(gray)), api_name="/transfer")
    result, status = out[0], out[1]
    assert result is None
    assert status.startswith("error:") and "no person" in status, status
    assert "target photo" in status

    # the server stays up and the next (valid) request works
    out = client.predict(handle_file(str(person)), handle_file(str(person)), api_name="/transfer")
    result, status, *maps = out
    assert status.startswith("ok:"), status
    assert result is not None and Path(result).is_file()
    with Image.open(result) as im:
        assert im.size == (512, 512)  # the target photo's size
    assert len(maps) == 6
    for m in maps:
        assert m is not None and Path(m).is_file()
