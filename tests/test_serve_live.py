"""The detection service as users run it: ``deepfake-detect serve`` in a subprocess on loopback,
under a short bounded load, and its page in a real headless browser (Chromium)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")
httpx = pytest.importorskip("httpx", reason="the load test's client is httpx (dev extra)")

from conftest import face_like  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "images"
LOAD_CLIENTS = 8
LOAD_SECONDS = 4.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process (Linux /proc), None elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@contextlib.contextmanager
def running_server(log: Path, *args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """``deepfake-detect serve ARGS`` (the built-in default detector) on a free loopback port."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deepfake_detect", "serve", "--port", str(port), "--no-access-log", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer within 120 s:\n{log.read_text()}")
            time.sleep(0.2)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(
        tmp_path_factory.mktemp("serve") / "server.log", "--max-batch", "32", "--max-wait-ms", "10"
    ) as running:
        yield running


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def run_load(
    url: str, images: list[tuple[str, bytes]], clients: int, seconds: float
) -> tuple[list[tuple[int, int, float]], list[str], bool]:
    """``clients`` threads posting one image at a time for ``seconds``: (image index, status,
    p_fake) per answer, the transport errors, and whether every client finished."""
    records: list[tuple[int, int, float]] = []
    failures: list[str] = []
    deadline = time.monotonic() + seconds

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            i = k
            while time.monotonic() < deadline:
                name, data = images[i % len(images)]
                try:
                    r = c.post("/v1/predict", files={"file": (name, data, "image/png")})
                except httpx.HTTPError as e:
                    failures.append(f"{type(e).__name__}: {e}")
                    continue
                score = r.json()["results"][0]["p_fake"] if r.status_code == 200 else float("nan")
                records.append((i % len(images), r.status_code, score))
                i += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 120)
    return records, failures, not any(t.is_alive() for t in threads)


def test_load_on_loopback(server):
    """8 clients for 4 s: every request answered, no 5xx, the scores of a direct predict, flat memory."""
    import deepfake_detect as dd

    url, proc = server
    images = [(f"load_{i}.png", png(face_like(i, size=64, fake=bool(i % 2)))) for i in range(8)]
    runtime = httpx.get(url + "/v1/models").json()["backend"].split(" ", 1)[0]  # "openvino (fp32)" -> "openvino"
    expected = dd.load_detector().predict([d for _, d in images], backend=runtime)  # what the server scores with
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            value = rss_mib(proc.pid)
            if value is not None:
                samples.append(value)
            stop.wait(0.1)

    # a short warm-up at full concurrency first, so that every batch size has run once before
    # memory is sampled (the allocator's high-water mark is reached then)
    warm, warm_failures, _ = run_load(url, images, LOAD_CLIENTS, 2.0)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    records, failures, finished = run_load(url, images, LOAD_CLIENTS, LOAD_SECONDS)
    stop.set()
    sampler.join()

    assert finished, "a client never got its answer"
    assert not warm_failures and not failures, (warm_failures + failures)[:5]
    records += warm
    assert len(records) >= 2 * LOAD_CLIENTS
    statuses = [s for _, s, _ in records]
    assert statuses.count(200) == len(records), {s: statuses.count(s) for s in set(statuses)}
    got = np.array([p for _, _, p in records])
    np.testing.assert_allclose(got, expected[[i for i, _, _ in records]], rtol=0, atol=1e-5)
    stats = httpx.get(url + "/healthz").json()
    assert stats["largest_batch"] > 1, stats  # concurrent clients were batched together
    if len(samples) >= 9:  # Linux: resident memory of the server, first third vs last third
        third = len(samples) // 3
        first, last = max(samples[:third]), max(samples[-third:])
        # peaks, not means: RSS swings by some 100 MiB between and during batches (the allocator
        # keeps and returns batch-sized blocks), while its high-water mark stays within a few MiB
        # once every batch size has run; memory that is never freed raises it
        assert last - first < 64, f"peak resident memory grew from {first:.0f} to {last:.0f} MiB under load"


# -- the page in a real browser ------------------------------------------------------------------
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
)


def find_browser() -> tuple[str, str]:
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver") or next(
        (p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if os.path.exists(p)), None
    )
    if browser is None or driver is None:
        pytest.skip(
            "no Chromium and chromedriver on this machine (apt-get install chromium chromium-driver); "
            ".ci/run installs them where apt-get works"
        )
    return browser, driver


def test_page_in_a_headless_browser(tmp_path):
    """Load the page, pick two example images, wait for the verdicts, face boxes and heatmaps;
    download the CSV. The server crops faces (when OpenCV is there), so the page draws the boxes."""
    pytest.importorskip("selenium.webdriver", reason="selenium is not installed (dev extra)")
    browser, driver_path = find_browser()
    crop = importlib.util.find_spec("cv2") is not None
    with running_server(tmp_path / "server.log", *(["--crop-faces"] if crop else [])) as (url, _):
        shot = check_page(url, browser, driver_path, tmp_path, crop)
    target = os.environ.get("DEEPFAKE_DETECT_SCREENSHOT")
    if target:  # for the docs: DEEPFAKE_DETECT_SCREENSHOT=docs/images/serve-page.png pytest -k page
        shutil.copyfile(shot, target)


def check_page(url: str, browser: str, driver_path: str, tmp_path: Path, crop: bool) -> Path:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = Options()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    files = [EXAMPLES / "astronaut.jpg", EXAMPLES / "grace_hopper_selfblend.jpg"]
    expected = {}
    for f in files:
        r = httpx.post(url + "/v1/predict", files={"file": (f.name, f.read_bytes())}, timeout=60).json()["results"][0]
        expected[f.name] = r

    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        driver.set_page_load_timeout(60)
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        driver.get(url + "/")
        WebDriverWait(driver, 30).until(lambda d: "parameters" in d.find_element(By.ID, "model").text)
        driver.find_element(By.ID, "file").send_keys("\n".join(str(f) for f in files))
        WebDriverWait(driver, 120).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card.explained")) == 2)
        cards = driver.find_elements(By.CSS_SELECTOR, ".card")
        assert len(cards) == 2
        for card in cards:
            name = card.find_element(By.TAG_NAME, "h2").text
            verdict = card.find_element(By.CSS_SELECTOR, ".verdict").text.lower()
            assert verdict == expected[name]["label"], (name, verdict)
            assert float(card.get_attribute("data-pfake")) == pytest.approx(expected[name]["p_fake"], abs=1e-9)
            heat = card.find_element(By.CSS_SELECTOR, "img.heatmap")
            assert driver.execute_script("return arguments[0].naturalWidth", heat) == 256  # the PNG decoded
            fill = card.find_element(By.CSS_SELECTOR, ".bar > .fill")
            width = driver.execute_script("return parseFloat(arguments[0].style.width)", fill)
            assert width == pytest.approx(100 * expected[name]["p_fake"], abs=0.1)
            assert expected[name]["label"] in fill.get_attribute("class").split()  # the bar has the verdict's colour
            colours = driver.execute_script(
                "return [getComputedStyle(arguments[0]).backgroundColor, getComputedStyle(arguments[1]).color]",
                fill,
                card.find_element(By.CSS_SELECTOR, ".verdict"),
            )
            assert colours[0] == colours[1]  # bar and label agree
            boxes = card.find_elements(By.CSS_SELECTOR, ".facebox")
            assert len(boxes) == (1 if crop else 0) and (expected[name]["face_box"] is not None) == crop
        rows = driver.find_elements(By.CSS_SELECTOR, "#results tbody tr")
        assert sorted(r.find_element(By.TAG_NAME, "td").text for r in rows) == sorted(f.name for f in files)
        shot = tmp_path / "serve-page.png"
        assert driver.save_screenshot(str(shot))
        driver.find_element(By.ID, "csv").click()
        csv_file = downloads / "predictions.csv"
        deadline = time.monotonic() + 20
        while not csv_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        lines = csv_file.read_text().splitlines()
        assert lines[0] == "img_name,y_pred,verdict"
        assert {line.split(",")[2] for line in lines[1:]} <= {"real", "suspicious", "fake"}
        got = {line.split(",")[0]: float(line.split(",")[1]) for line in lines[1:]}
        assert got == pytest.approx({n: expected[n]["p_fake"] for n in got}, abs=1e-6)
        assert sorted(got) == sorted(f.name for f in files)
    finally:
        driver.quit()
    assert Image.open(shot).size[0] >= 800
    return shot
