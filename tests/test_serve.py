"""``timnet serve``: a real server on 127.0.0.1, its API, malformed uploads, the page in
headless Chromium (file upload and the microphone), a load test and an overload test.

The model is trained for the test on pure tones (four classes, one frequency each;
8192-sample windows), so that a tone's label is known and survives the microphone
path (Chromium's fake capture device plays a file, resampled and looped). The server
runs as ``python -m timnet serve`` in its own process with its own TMPDIR, which must
be empty at the end. Browser tests need Debian's ``chromium`` and ``chromium-driver``:
they skip without them, except in CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from helpers import FAST, REPO_ROOT, cli_env

pytest.importorskip("fastapi", reason="timnet serve needs the serve extra (pip install 'timnet[serve]')")

LENGTH = 8192
TONES = {"angry": 300.0, "happy": 700.0, "neutral": 1500.0, "sad": 3000.0}
SR = 22050
MAX_UPLOAD_MB = 1
MAX_DURATION = 20
WORKERS, QUEUE = 2, 8


def _tone(freq: float, seconds: float, sr: int = SR, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    noise = 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    return (amp * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def _tone_corpus(path: Path) -> Path:
    """A learnable 4-class corpus: each class one tone (frequency +-5 %, random phase and level)."""
    from timnet.features import mfcc
    from timnet.features.files import write_npy_dict

    rng = np.random.default_rng(0)
    xs, ys = [], []
    t = np.arange(LENGTH) / SR
    for k, freq in enumerate(TONES.values()):
        for _ in range(12):
            sig = rng.uniform(0.1, 0.5) * np.sin(2 * np.pi * freq * rng.uniform(0.95, 1.05) * t + rng.uniform(0, 6))
            xs.append(mfcc.get_mfcc((sig + 0.01 * rng.standard_normal(LENGTH)).astype(np.float32), LENGTH))
            ys.append(k)
    return write_npy_dict(path, {"x": np.stack(xs).astype(np.float32), "y": np.eye(len(TONES), dtype=np.float32)[ys],
                                 "mean_signal_length": LENGTH, "class_labels": np.asarray(list(TONES))})


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Server:
    """A ``timnet serve`` process on 127.0.0.1 and a port it picked."""

    def __init__(self, root: Path, model: Path) -> None:
        self.tmp = root / "server_tmp"
        self.tmp.mkdir()
        self.log = root / "server.log"
        env = cli_env()
        env.update(TMPDIR=str(self.tmp), PYTHONPATH=str(REPO_ROOT / "Code"))
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "timnet", "serve", "--test_path", str(model), "--port", "0",
                 "--workers", str(WORKERS), "--queue", str(QUEUE), "--max_upload_mb", str(MAX_UPLOAD_MB),
                 "--max_duration", str(MAX_DURATION)], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        self.port = 0
        while time.monotonic() < deadline and self.proc.poll() is None:
            text = self.log.read_text()
            if "Application startup complete" in text and "http://127.0.0.1:" in text:
                self.port = int(text.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])
                break
            time.sleep(0.2)
        if not self.port:
            self.stop()
            raise AssertionError(f"the server did not start:\n{self.log.read_text()[-3000:]}")
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # what a service manager sends; Ctrl-C ends the same way
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            res = conn.getresponse()
            data = res.read()
            kind = res.getheader("content-type", "")
            return res.status, {k.lower(): v for k, v in res.getheaders()}, json.loads(data) if "json" in kind else data
        finally:
            conn.close()

    def classify(self, data: bytes, multipart: bool = True, name: str = "a.wav") -> tuple[int, dict[str, str], Any]:
        if not multipart:
            return self.request("POST", "/api/classify", data, {"Content-Type": "audio/wav"})
        body, kind = _multipart({"file": (name, data)})
        return self.request("POST", "/api/classify", body, {"Content-Type": kind})


def _multipart(fields: dict[str, tuple[str | None, bytes]]) -> tuple[bytes, str]:
    boundary = "timnet-test-boundary-7d1f"
    parts = []
    for name, (filename, data) in fields.items():
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        parts.append(f"--{boundary}\r\nContent-Disposition: {disp}\r\nContent-Type: application/octet-stream\r\n\r\n"
                     .encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _wav(signal: np.ndarray, sr: int = SR, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, signal, sr, subtype=subtype, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("serve")
    data = _tone_corpus(root / "TONES.npy")
    from timnet.cli import legacy

    # In this process (TensorFlow is loaded by the suite anyway), as `make demo` trains: a run folder.
    assert legacy.main(["--mode", "train", "--data", str(data), "--model_path", str(root / "Test_Models"),
                        "--result_path", str(root / "Results"), "--log_dir", str(root / "log"), "--loss", "ce",
                        "--protocol", "holdout", "--epoch", "15", "--dilation_size", "2", "--no_figures", *FAST]) == 0
    (run,) = (root / "Test_Models").iterdir()
    wavs = root / "wavs"
    wavs.mkdir()
    for name, freq in TONES.items():
        sf.write(wavs / f"{name}.wav", _tone(freq, 1.5, seed=len(name)), SR)
    # A recording that changes class every 1.2 s, at 16 kHz: several windows, resampled.
    sf.write(wavs / "changing.flac", np.concatenate([_tone(f, 1.2, 16000) for f in (700.0, 3000.0, 300.0)]), 16000)
    server = Server(root, run)
    yield {"root": root, "run": run, "wavs": wavs, "server": server}
    server.stop()


# --- the API --------------------------------------------------------------------------


def test_health_model_card_and_labels(served: dict) -> None:
    server: Server = served["server"]
    status, _, health = server.request("GET", "/healthz")
    assert status == 200 and health["status"] == "ok"
    status, _, card = server.request("GET", "/api/model")
    assert status == 200
    assert card["classes"] == list(TONES) and card["corpus"] == "TONES" and card["score_kind"] == "probability"
    assert card["preprocessing"]["window_samples"] == LENGTH and card["preprocessing"]["sample_rate"] == SR
    metrics = json.loads((served["root"] / "Results" / served["run"].name / "metrics.json").read_text())
    assert card["metrics"]["WAR"] == metrics["WAR"] and card["metrics"]["UAR"] == metrics["UAR"]
    assert card["metrics"]["protocol"] == "holdout"
    assert card["limits"]["max_duration"] == MAX_DURATION
    for name in TONES:  # each tone is its class, sent as multipart and as the raw body
        data = (served["wavs"] / f"{name}.wav").read_bytes()
        status, _, out = server.classify(data)
        assert status == 200, out
        assert out["label"] == name, out["scores"]
        assert set(out["scores"]) == set(TONES) and sum(out["scores"].values()) == pytest.approx(1, abs=1e-4)
        assert out["duration"] == pytest.approx(1.5) and out["model"]["file"].endswith(".keras")
        status, _, raw = server.classify(data, multipart=False)
        assert status == 200 and raw["scores"] == pytest.approx(out["scores"], abs=1e-6)


def test_windows_over_time(served: dict) -> None:
    status, _, out = served["server"].classify((served["wavs"] / "changing.flac").read_bytes(), name="changing.flac")
    assert status == 200, out
    windows = out["windows"]
    assert out["duration"] == pytest.approx(3.6) and out["sample_rate"] == 16000
    window_s = LENGTH / SR
    assert len(windows) == int(np.ceil(3.6 / window_s))
    assert windows[0]["start"] == 0 and windows[-1]["end"] == pytest.approx(3.6, abs=1e-3)
    assert all(w["end"] - w["start"] == pytest.approx(window_s, abs=1e-3) for w in windows)
    first = [w["label"] for w in windows if w["end"] < 1.1]
    middle = [w["label"] for w in windows if w["start"] > 1.3 and w["end"] < 2.3]
    last = [w["label"] for w in windows if w["start"] > 2.5]
    assert set(first) == {"happy"} and set(middle) == {"sad"} and set(last) == {"angry"}
    mean = {c: np.mean([w["scores"][c] for w in windows]) for c in TONES}
    assert out["scores"] == pytest.approx(mean, abs=1e-5)


def test_backend_scores_windows_as_predict_does(served: dict) -> None:
    """The adapter's preprocessing (decoded in memory, mono, soxr to 22 050 Hz, windows of
    the model's length) gives the scores of ``timnet predict --window_hop <window>``."""
    from timnet.inference.predictor import Predictor
    from timnet.serving import uploads
    from timnet.serving.backend import find_run_metrics, load_backend

    backend = load_backend(served["run"])
    path = served["wavs"] / "changing.flac"
    wave = uploads.decode(path.read_bytes(), MAX_DURATION)
    got = backend.score_windows(wave.signal, wave.sample_rate)
    (row,) = Predictor.load(served["run"]).predict_files([path], window_hop=LENGTH / SR, progress=False)
    assert len(row.windows) == len(got.scores) and not got.silent.any()
    np.testing.assert_allclose(got.starts, [w.start_s for w in row.windows], atol=1e-6)
    np.testing.assert_allclose(got.ends, [w.end_s for w in row.windows], atol=1e-6)
    np.testing.assert_allclose(got.scores, np.stack([w.scores for w in row.windows]), atol=1e-5)
    assert backend.card()["metrics"]["WAR"] is not None and backend.labels == tuple(TONES)
    lone = served["root"] / "elsewhere" / "model.keras"  # a model file outside its run: metrics unknown
    lone.parent.mkdir()
    shutil.copyfile(served["run"] / "weights_best.keras", lone)
    assert find_run_metrics(lone) is None and find_run_metrics(served["run"] / "weights_best.keras") is not None


def test_serves_an_exported_onnx_file_without_tensorflow(served: dict) -> None:
    """The run's model exported with the MFCC front end inside (``--input waveform``): the server
    runs it on ONNX Runtime, never loads TensorFlow, and gives the scores of the Keras model."""
    from timnet.modelfiles.deploy_export import export_artifact

    root = served["root"] / "onnx"
    root.mkdir()
    onnx_file = root / "model.onnx"
    export_artifact(served["run"] / "weights_best.keras", onnx_file, "onnx", "waveform", "TONES", None, 46)
    server = Server(root, onnx_file)
    try:
        maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
        assert "tensorflow" not in maps and "_pywrap_tf" not in maps, "the ONNX server loaded TensorFlow"
        status, _, card = server.request("GET", "/api/model")
        assert status == 200 and card["classes"] == list(TONES) and card["file"].endswith("model.onnx")
        for name in TONES:
            data = (served["wavs"] / f"{name}.wav").read_bytes()
            status, _, out = server.classify(data)
            assert status == 200 and out["label"] == name, out
            _, _, reference = served["server"].classify(data)
            assert out["scores"] == pytest.approx(reference["scores"], abs=1e-4)
    finally:
        assert server.stop() == 0, server.log.read_text()[-3000:]


def _malformed(served: dict) -> dict[str, tuple[bytes, bool, int, str]]:
    """name -> (body, as multipart, status, error kind)."""
    silent = np.zeros(SR, np.float32)
    nan = _tone(700, 0.5)
    nan[100] = np.nan
    return {
        "text": (b"this is not audio at all\n" * 40, True, 415, "not_audio"),
        "webm": (bytes.fromhex("1a45dfa3") + b"\x00" * 400, False, 415, "not_audio"),
        "empty raw body": (b"", False, 400, "empty"),
        "empty file": (b"", True, 400, "empty"),
        "wav without samples": (_wav(np.zeros(0, np.float32)), True, 400, "empty"),
        "silent": (_wav(silent), True, 422, "silent"),
        "nan": (_wav(nan, subtype="FLOAT"), True, 422, "not_finite"),
        "too long": (_wav(_tone(700, MAX_DURATION + 1, 8000), 8000), False, 422, "too_long"),
        "too large": (b"\x00" * (MAX_UPLOAD_MB * 1024 * 1024 + 10), False, 413, "too_large"),
    }


def test_malformed_uploads_get_4xx_json(served: dict) -> None:
    server: Server = served["server"]
    for name, (body, multipart, status, kind) in _malformed(served).items():
        got, _, out = server.classify(body, multipart=multipart)
        assert (got, out["error"]) == (status, kind), (name, out)
        assert isinstance(out["detail"], str) and len(out["detail"]) > 10, name
    body, kind = _multipart({"comment": (None, b"hello"), "other": (None, b"x")})
    got, _, out = server.request("POST", "/api/classify", body, {"Content-Type": kind})
    assert (got, out["error"]) == (400, "no_file")
    got, _, out = server.request("POST", "/api/classify", b"--x\r\n", {"Content-Type": "multipart/form-data"})
    assert (got, out["error"]) == (400, "bad_multipart")
    got, _, out = server.request("GET", "/api/classify")
    assert got == 405 and "detail" in out
    assert server.request("GET", "/healthz")[0] == 200 and server.proc.poll() is None


def _reply(sock: socket.socket) -> str:
    """One HTTP response read off a raw socket: the head, then Content-Length bytes of body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode("latin-1")


def test_large_upload_refused_before_it_is_read(served: dict) -> None:
    """A Content-Length over the limit is answered at once, without the body; a chunked
    upload without one is answered as soon as it passes the limit."""
    server: Server = served["server"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(b"POST /api/classify HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                     b"Content-Length: 104857600\r\n\r\n" + b"RIFF" + b"\x00" * 1000)
        reply = _reply(sock)
    assert reply.startswith("HTTP/1.1 413") and "too_large" in reply
    limit = MAX_UPLOAD_MB * 1024 * 1024
    chunk = b"\x01" * 65536
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(b"POST /api/classify HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        while sent <= limit:  # just past the limit, then stop sending and read the answer
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
        reply = _reply(sock)
    assert reply.startswith("HTTP/1.1 413") and "too_large" in reply, reply[:300]
    assert server.request("GET", "/healthz")[0] == 200


def test_docs_are_served_offline(served: dict) -> None:
    server: Server = served["server"]
    status, _, page = server.request("GET", "/docs")
    assert status == 200
    html = page.decode()
    assert "cdn." not in html and "https://" not in html
    for asset in ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"):
        assert asset in html
        assert server.request("GET", asset)[0] == 200
    status, _, spec = server.request("GET", "/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.0")
    assert {"/api/classify", "/api/model", "/healthz"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/api/classify"]["post"]["requestBody"]["content"]
    status, _, index = server.request("GET", "/")
    assert status == 200 and b"https://" not in index and b"/static/app.js" in index
    for asset in ("/static/app.js", "/static/style.css", "/static/recorder-worklet.js"):
        assert server.request("GET", asset)[0] == 200


def _serve_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = cli_env()
    env["PYTHONPATH"] = str(REPO_ROOT / "Code")
    return subprocess.run([sys.executable, "-m", "timnet", "serve", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_command_line_errors_are_one_line(served: dict) -> None:
    """A missing model, a bad setting and a taken port: exit 2, one line, before the model loads."""
    from timnet.serving.server import is_loopback

    root = served["root"]
    out = _serve_cli("--test_path", str(root / "missing"), cwd=root)
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0 and "--test_path" in out.stderr
    out = _serve_cli("--test_path", str(served["run"]), "--workers", "0", cwd=root)
    assert out.returncode == 2 and out.stderr.startswith("error: --workers 0")
    out = _serve_cli("--test_path", str(served["run"]), "--port", str(served["server"].port), cwd=root)
    assert out.returncode == 2 and "--port" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")


# --- the page in headless Chromium ----------------------------------------------------------


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", browser), ("chromium-driver", driver)) if not path]
    reason = (f"headless browser tests need Debian's {' and '.join(missing)} "
              f"(apt-get install -y chromium chromium-driver)")
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI: {reason}")
        pytest.skip(reason)
    pytest.importorskip("selenium", reason="browser tests need selenium (requirement-dev.txt)")
    return str(browser), str(driver)


@pytest.fixture(scope="module")
def browser(served: dict) -> Any:
    browser_path, driver_path = _chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    mic = served["root"] / "mic.wav"  # what the fake microphone plays (looped): the "sad" tone at 48 kHz
    sf.write(mic, _tone(TONES["sad"], 2.0, 48000), 48000, subtype="PCM_16")
    options = webdriver.ChromeOptions()
    options.binary_location = browser_path
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1200",
                "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-audio-capture={mic}", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=DriverService(driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(driver: Any, condition: Any, timeout: float = 60) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)


def test_page_uploads_a_file_and_draws_the_charts(served: dict, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    server: Server = served["server"]
    browser.get(server.url + "/")
    _wait(browser, lambda d: "WAR" in d.find_element(By.ID, "card").text)
    card = browser.find_element(By.ID, "card").text
    assert "angry, happy, neutral, sad" in card and "TONES" in card and "22050 Hz" in card
    browser.find_element(By.ID, "file-input").send_keys(str(served["wavs"] / "changing.flac"))
    _wait(browser, lambda d: d.find_element(By.ID, "label").text != "")
    assert browser.find_element(By.ID, "label").text.lower() in TONES
    bars = browser.find_elements(By.CSS_SELECTOR, "#bars rect.bar")
    assert [b.get_attribute("data-class") for b in bars] == list(TONES)
    _, _, expected = server.classify((served["wavs"] / "changing.flac").read_bytes())
    shown = {b.get_attribute("data-class"): float(b.get_attribute("data-score")) for b in bars}
    assert shown == pytest.approx(expected["scores"], abs=1e-6)
    widths = {b.get_attribute("data-class"): float(b.get_attribute("width")) for b in bars}
    assert max(widths, key=widths.get) == expected["label"]
    assert browser.find_element(By.ID, "timeline-box").is_displayed()
    lines = browser.find_elements(By.CSS_SELECTOR, "#timeline polyline.series")
    assert {line.get_attribute("data-class") for line in lines} == set(TONES)
    shot = served["root"] / "serve.png"
    browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("TIMNET_SCREENSHOT"):  # README figure: TIMNET_SCREENSHOT=Fig/serve.png pytest ...
        target = Path(os.environ["TIMNET_SCREENSHOT"])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
    # A file the server refuses: the page shows the message, not a crash.
    bad = served["root"] / "notes.wav"
    bad.write_text("not audio")
    browser.find_element(By.ID, "file-input").send_keys(str(bad))
    _wait(browser, lambda d: d.find_element(By.ID, "error").text != "")
    assert "not audio the server can decode" in browser.find_element(By.ID, "error").text


def test_microphone_recording_gives_the_files_label(served: dict, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    server: Server = served["server"]
    _, _, direct = server.classify((served["root"] / "mic.wav").read_bytes())
    assert direct["label"] == "sad"
    browser.get(server.url + "/")
    _wait(browser, lambda d: d.find_element(By.ID, "card").text != "")
    browser.find_element(By.ID, "record").click()
    _wait(browser, lambda d: float((d.find_element(By.ID, "rec-time").text or "0 s").split()[0]) >= 1.5)
    browser.find_element(By.ID, "stop").click()
    _wait(browser, lambda d: d.find_element(By.ID, "label").text != "" or d.find_element(By.ID, "error").text)
    assert browser.find_element(By.ID, "error").text == ""
    assert browser.find_element(By.ID, "label").text.lower() == direct["label"]
    assert "recording.wav" in browser.find_element(By.ID, "status").text


def test_docs_page_renders_offline(served: dict, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(served["server"].url + "/docs")
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")) >= 3)
    paths = {e.text.replace("\u200b", "") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/api/classify", "/api/model", "/healthz"} <= paths


# --- load --------------------------------------------------------------------------------------


def _hammer(server: Server, bodies: list[bytes], clients: int, per_client: int) -> tuple[list[int], list[float]]:
    """``clients`` threads, each sending ``per_client`` requests back to back; statuses and latencies."""
    statuses: list[int] = []
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client(i: int) -> None:
        start.wait()
        for j in range(per_client):
            t0 = time.perf_counter()
            try:
                status = server.classify(bodies[(i + j) % len(bodies)], multipart=False)[0]
            except OSError:
                status = -1
            with lock:
                statuses.append(status)
                latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses, latencies


# RSS may grow while caches and allocator pools fill; a leak of the uploads (~130 kB
# each, 400 of them: 52 MB) or of their MFCCs would pass this bound.
RSS_GROWTH_BOUND_MB = 40


@pytest.mark.slow
def test_load_8_clients_400_requests(served: dict) -> None:
    server: Server = served["server"]
    bodies = [(served["wavs"] / f"{name}.wav").read_bytes() for name in TONES]
    _hammer(server, bodies, 8, 5)  # warm-up: threads, allocator pools
    rss_before = _rss_kb(server.proc.pid)
    t0 = time.perf_counter()
    statuses, latencies = _hammer(server, bodies, 8, 50)
    wall = time.perf_counter() - t0
    rss_after = _rss_kb(server.proc.pid)
    assert len(statuses) == 400 and statuses.count(200) == 400, {s: statuses.count(s) for s in set(statuses)}
    q = statistics.quantiles(latencies, n=100)
    growth = (rss_after - rss_before) / 1024
    print(f"\nload: 8 clients, 400 requests of 1.5 s WAV in {wall:.1f} s ({400 / wall:.1f} req/s); latency p50 "
          f"{q[49] * 1000:.0f} ms, p95 {q[94] * 1000:.0f} ms; server RSS {rss_before / 1024:.0f} -> "
          f"{rss_after / 1024:.0f} MB (growth {growth:+.1f} MB, bound {RSS_GROWTH_BOUND_MB} MB)")
    assert growth < RSS_GROWTH_BOUND_MB


@pytest.mark.slow
def test_overload_gets_503_and_no_crash(served: dict) -> None:
    server: Server = served["server"]
    body = _wav(_tone(700, 12.0))  # long enough to keep a worker busy
    clients = 3 * (WORKERS + QUEUE)
    statuses, _ = _hammer(server, [body], clients, 1)
    assert statuses.count(503) > 0 and statuses.count(200) >= WORKERS, statuses
    assert set(statuses) <= {200, 503}, statuses
    status, headers, out = server.classify(body, multipart=False)
    assert status == 200 and server.proc.poll() is None
    status, _, health = server.request("GET", "/healthz")
    assert status == 200 and health["refused_busy"] == statuses.count(503)


def test_busy_answer_has_retry_after(served: dict) -> None:
    """Fill every slot with uploads that never finish, then one more request: 503 + Retry-After."""
    server: Server = served["server"]
    socks = []
    try:
        for _ in range(WORKERS + QUEUE):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=20)
            s.sendall(b"POST /api/classify HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                      b"Content-Length: 1000\r\n\r\nRIFF")
            socks.append(s)
        deadline = time.monotonic() + 20
        while server.request("GET", "/healthz")[2]["in_flight"] < WORKERS + QUEUE and time.monotonic() < deadline:
            time.sleep(0.05)
        status, headers, out = server.classify(_wav(_tone(700, 0.5)))
        assert status == 503 and out["error"] == "busy" and int(headers["retry-after"]) >= 1
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 20
    while server.request("GET", "/healthz")[2]["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.classify(_wav(_tone(700, 0.5)))[0] == 200


def test_stops_cleanly_and_leaves_no_temporary_file(served: dict) -> None:
    server: Server = served["server"]
    assert server.stop() == 0, server.log.read_text()[-2000:]
    assert "Traceback" not in server.log.read_text()
    assert list(server.tmp.iterdir()) == []
