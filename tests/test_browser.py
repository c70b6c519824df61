"""The app in a real browser: headless Chromium (Debian's) driven through Selenium.

A ``python launch.py`` server is started for the module (the fixture of
``test_app.py``). Each test uploads photos through the page's file inputs,
presses the tab's button, waits for the status line, and checks the result
the page shows: the result image, or the MP4 the video element plays (H.264,
the asked number of frames). Screenshots go to pytest's temporary folder.

Photos: two real DeepFashion photos from ``../shared/data`` when that folder
is there, else the app's synthetic examples. Screenshots of real photos are
never written into the repository; ``test_docs_screenshots`` (slow) makes the
committed ``docs/screenshot_*.png`` from the synthetic examples only.

Skips with a reason when Chromium, chromedriver or Selenium are absent
(``.ci/run`` installs Debian's ``chromium`` and ``chromium-driver``).
"""

from __future__ import annotations

import csv
import shutil
import time
import urllib.request
from pathlib import Path

import pytest
from test_app import ROOT, server  # noqa: F401  (the module's server fixture)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHARED = ROOT.parent / "shared" / "data" / "deepfashion"
EXAMPLES = ROOT / "app" / "examples"
RESULT_TIMEOUT_S = 420

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.skipif(
        not Path(CHROMEDRIVER).exists(), reason=f"no chromedriver at {CHROMEDRIVER}"
    ),
]
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")


def _real_pair() -> tuple[Path, Path] | None:
    """The first DeepFashion pair of ``pairs.csv`` (same person, two poses), or None."""
    pairs = SHARED / "pairs.csv"
    if not pairs.is_file():
        return None
    with open(pairs) as f:
        row = next(csv.DictReader(f))
    a, b = (SHARED / "images" / Path(row[k]).with_suffix(".png").name for k in ("from", "to"))
    return (a, b) if a.is_file() and b.is_file() else None


@pytest.fixture(scope="module")
def photos() -> dict[str, Path]:
    """Photos for the flows: real ones when ``../shared/data`` has them."""
    real = _real_pair()
    if real is not None:
        other = SHARED / "images" / "fashionMENShirts_Polosid0000186605_1front.png"
        return {"source": real[0], "target": real[1], "donor": other if other.is_file()
                else real[1], "wearer": real[0], "real": True}  # fmt: skip
    return {"source": EXAMPLES / "synthetic_arms_down.png",
            "target": EXAMPLES / "synthetic_arm_raised.png",
            "donor": EXAMPLES / "synthetic_turned.png",
            "wearer": EXAMPLES / "synthetic_arms_down.png", "real": False}  # fmt: skip


@pytest.fixture(scope="module")
def driver():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1500", "--force-device-scale-factor=1"):  # fmt: skip
        opts.add_argument(arg)
    # an explicit driver path: Selenium Manager downloads nothing
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(120)
    yield d
    d.quit()


class Page:
    """The app page in the browser, addressed by the components' ``elem_id``."""

    def __init__(self, driver, url: str):
        self.d = driver
        self.d.get(url)
        self.wait(lambda: self.d.find_elements("css selector", "button[role=tab]"), 120)

    def wait(self, cond, timeout: float):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.d, timeout, poll_frequency=0.5).until(lambda _: cond())

    def tab(self, name: str) -> None:
        for b in self.d.find_elements("css selector", "button[role=tab]"):
            if b.text.strip() == name:
                self.click(b)
                time.sleep(0.5)
                return
        raise AssertionError(f"no tab {name!r}")

    def upload(self, elem_id: str, path: Path) -> None:
        inp = self.wait(
            lambda: self.d.find_elements("css selector", f"#{elem_id} input[type=file]"), 30
        )
        inp[0].send_keys(str(path))
        self.wait(lambda: self.d.find_elements("css selector", f"#{elem_id} img"), 60)

    def run(self, button_id: str, status_id: str, timeout: float = RESULT_TIMEOUT_S) -> str:
        before = self.text(status_id)
        self.click(self.d.find_element("css selector", f"#{button_id}"))

        def done():
            t = self.text(status_id)
            return t if t != before and t.startswith(("ok:", "error:")) else None

        return self.wait(done, timeout)

    def click(self, element) -> None:
        """Click through JavaScript (Gradio's overlays intercept WebDriver's pointer clicks)."""
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();",
                              element)  # fmt: skip

    def text(self, elem_id: str) -> str:
        els = self.d.find_elements("css selector", f"#{elem_id}")
        return els[0].text.strip() if els else ""

    def image_src(self, elem_id: str) -> str:
        img = self.wait(lambda: self.d.find_elements("css selector", f"#{elem_id} img"), 60)[0]
        return img.get_attribute("src")

    def shot(self, path: Path, elem_id: str | None = None) -> Path:
        if elem_id:  # scroll the result into view first
            el = self.d.find_element("css selector", f"#{elem_id}")
            self.d.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
            time.sleep(0.5)
        self.d.save_screenshot(str(path))
        return path


def _fetch(url: str, dest: Path) -> Path:
    with urllib.request.urlopen(url, timeout=60) as r:
        dest.write_bytes(r.read())
    return dest


def _pose_transfer(page: Page, photos, shots: Path) -> str:
    page.tab("Pose transfer")
    page.upload("pt-source", photos["source"])
    page.upload("pt-target", photos["target"])
    status = page.run("pt-run", "pt-status")
    page.shot(shots / "screenshot_pose_transfer.png", "pt-result")
    return status


def _try_on(page: Page, photos, shots: Path) -> str:
    page.tab("Try-on")
    page.upload("to-donor", photos["donor"])
    page.upload("to-wearer", photos["wearer"])
    status = page.run("to-run", "to-status")
    page.shot(shots / "screenshot_try_on.png", "to-result")
    return status


def _novel_view(page: Page, photo: Path, shots: Path) -> tuple[str, str]:
    page.tab("Novel view")
    page.upload("nv-photo", photo)
    status = page.run("nv-run", "nv-status")
    video = page.wait(lambda: page.d.find_elements("css selector", "#nv-video video"), 60)[0]
    src = page.wait(lambda: video.get_attribute("src"), 60)
    page.shot(shots / "screenshot_novel_view.png", "nv-video")
    return status, src


def _texture(page: Page, photo: Path, shots: Path) -> str:
    page.tab("Texture")
    page.upload("tx-photo", photo)
    status = page.run("tx-run", "tx-status")
    page.shot(shots / "screenshot_texture.png", "tx-atlas")
    return status


def _decode(src: str, tmp: Path) -> Path:
    from PIL import Image

    path = _fetch(src, tmp / "result.png")
    with Image.open(path) as im:
        im.load()
    return path


def test_pose_transfer_in_the_browser(driver, server, photos, tmp_path):  # noqa: F811
    from PIL import Image

    page = Page(driver, server)
    status = _pose_transfer(page, photos, tmp_path)
    assert status.startswith("ok: pose transferred"), status
    result = _decode(page.image_src("pt-result"), tmp_path)
    with Image.open(result) as im, Image.open(photos["target"]) as tgt:
        assert im.size == tgt.size
    assert (tmp_path / "screenshot_pose_transfer.png").stat().st_size > 10_000


def test_try_on_and_novel_view_video_in_the_browser(driver, server, photos, tmp_path):  # noqa: F811
    from reroute.io.video import probe_video

    page = Page(driver, server)
    status = _try_on(page, photos, tmp_path)
    assert status.startswith("ok: top swapped"), status
    _decode(page.image_src("to-result"), tmp_path)

    # 24 frames (the slider's default), of the wearer: analysed already, so only render + encode
    status, src = _novel_view(page, photos["wearer"], tmp_path)
    assert status.startswith("ok: 24 frames"), status
    info = probe_video(_fetch(src, tmp_path / "video.mp4"))
    assert (info.codec, info.frames, info.pix_fmt) == ("h264", 24, "yuv420p")
    playing = page.d.execute_script(
        "const v = document.querySelector('#nv-video video');"
        "return [v.readyState, v.videoWidth, v.duration];"
    )
    assert playing[0] >= 1 and playing[1] == info.width, playing  # Chromium decoded it
    assert abs(playing[2] - 1.0) < 0.1, playing  # 24 frames at 24 fps

    status = _texture(page, photos["wearer"], tmp_path)
    assert status.startswith("ok: completed"), status
    for name in ("try_on", "novel_view", "texture"):
        assert (tmp_path / f"screenshot_{name}.png").stat().st_size > 10_000


@pytest.mark.slow
def test_docs_screenshots(driver, server):  # noqa: F811
    """Refresh ``docs/screenshot_*.png`` (synthetic examples only: safe to commit)."""
    docs = ROOT / "docs"
    synthetic = {"source": EXAMPLES / "synthetic_arms_down.png",
                 "target": EXAMPLES / "synthetic_arm_raised.png",
                 "donor": EXAMPLES / "synthetic_turned.png",
                 "wearer": EXAMPLES / "synthetic_arms_down.png"}  # fmt: skip
    page = Page(driver, server)
    assert _pose_transfer(page, synthetic, docs).startswith("ok:")
    assert _try_on(page, synthetic, docs).startswith("ok:")
    assert _novel_view(page, synthetic["wearer"], docs)[0].startswith("ok:")
    assert _texture(page, synthetic["wearer"], docs).startswith("ok:")
