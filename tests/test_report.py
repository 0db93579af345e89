"""The HTML reports: one page per subject and one for the group, self-contained and movable.

The participant and group levels run once on the example dataset; the output folder is then
moved elsewhere, and every page is checked twice: statically (every image and link resolves
relative to the page) and in headless Chromium driven over the DevTools protocol (no request
fails, every image decodes). A full-page screenshot of each page is written for a person to
look at: ``$BIDS_FIXEDFX_SCREENSHOTS`` or ``<tmp>/bids-fixedfx-screenshots``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from bids_fixedfx import report
from bids_fixedfx.cli import main

SCREENSHOTS = Path(os.environ.get("BIDS_FIXEDFX_SCREENSHOTS", Path(tempfile.gettempdir()) / "bids-fixedfx-screenshots"))


@pytest.fixture(scope="module")
def reports(example_dataset, tmp_path_factory):
    """Both levels run on the example dataset, then OUTPUT_DIR moved to another folder."""
    output = tmp_path_factory.mktemp("report") / "out"
    common = [str(example_dataset.path), str(output)]
    # sub-99 does not exist: its warning must reach every report
    assert main([*common, "participant", "--skip-bids-validation", "--nprocs", "2",
                 "--participant-label", *example_dataset.subjects, "99"]) == 0
    assert main([*common, "group"]) == 0
    moved = tmp_path_factory.mktemp("moved") / "derivatives-copy"
    shutil.move(str(output), moved)
    return moved


def pages(folder):
    return sorted(folder.glob("*.html"))


class _Links(HTMLParser):
    """Every URL a page refers to, and the ids it defines."""

    def __init__(self):
        super().__init__()
        self.urls, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for name in ("src", "href"):
            if attrs.get(name) is not None:
                self.urls.append((tag, attrs[name]))


def links_of(page):
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_a_report_per_subject_and_one_for_the_group(reports, example_dataset):
    names = {p.name for p in pages(reports)}
    assert names == {f"sub-{s}.html" for s in example_dataset.subjects} | {"group.html"}
    for subject in example_dataset.subjects:
        figures = sorted((reports / f"sub-{subject}" / "figures").glob("*.png"))
        assert figures and all(f.name.startswith(f"sub-{subject}_") for f in figures)
    assert sorted((reports / "group" / "figures").glob("task-checkerboard_*_desc-zmap_statmap.png"))


def test_every_image_and_link_resolves_relative_to_the_page(reports):
    checked = 0
    for page in pages(reports):
        found = links_of(page)
        images = [url for tag, url in found.urls if tag == "img"]
        assert images, f"{page.name} shows no figure"
        for tag, url in found.urls:
            parts = urlsplit(url)
            if url.startswith("data:"):
                continue
            assert not parts.scheme and not parts.netloc, f"{page.name} refers to {url} outside its folder"
            if not parts.path:
                assert parts.fragment in found.ids, f"{page.name}: no id {parts.fragment!r} for {url}"
                continue
            target = (page.parent / unquote(parts.path)).resolve()
            assert target.is_file(), f"{page.name}: {url} does not resolve"
            assert reports.resolve() in target.parents, f"{page.name}: {url} leaves the output folder"
            checked += 1
    assert checked > 20


def test_subject_report_shows_what_the_issue_asks(reports):
    html = (reports / "sub-01.html").read_text(encoding="utf-8")
    for expected in ("sub-01_ses-1_task-checkerboard_run-01", "sub-01_ses-2_task-checkerboard_run-02",
                     "Runs used", "Conditions", "Confounds used", "trans_x", "Warnings", "AR(1)",
                     "5 mm FWHM", "|z| &gt; 3", "Peak z", "Provenance", "bids-fixedfx", "nilearn",
                     "pybids", "nibabel", "numpy", "--nprocs 2"):
        assert expected in html, expected
    figures = [url for tag, url in links_of(reports / "sub-01.html").urls if tag == "img"]
    for kind in ("desc-design_matrix", "desc-correlation_matrix", "desc-contrasts_matrix",
                 "contrast-audio_desc-zmap_statmap", "contrast-audio_desc-glassbrain_statmap"):
        assert any(kind in f for f in figures), kind
    run_maps = [f for f in figures if "_run-" in f and "desc-zmap" in f]
    assert len(run_maps) == 2 * 4  # two contrasts, four runs


def test_warnings_reach_the_reports(reports, example_dataset):
    for subject in example_dataset.subjects:
        html = (reports / f"sub-{subject}.html").read_text(encoding="utf-8")
        assert "--participant-label 99 matches no subject and was ignored" in html


def test_report_threshold_is_the_one_asked(reports, tmp_path):
    from dataclasses import replace

    from bids_fixedfx import plan
    from bids_fixedfx.cli import parse_settings

    copy = tmp_path / "out"
    shutil.copytree(reports, copy)
    settings = replace(parse_settings([str(tmp_path), str(copy), "group"]), report_threshold=2.5)
    page = report.write_group_report(settings, plan.plan_group(settings).by_key)
    assert "|z| &gt; 2.5" in page.read_text(encoding="utf-8")
    assert "|z| &gt; 3" not in page.read_text(encoding="utf-8")


def test_group_report_lists_subjects_and_contrasts(reports, example_dataset):
    html = (reports / "group.html").read_text(encoding="utf-8")
    for subject in example_dataset.subjects:
        assert f'href="sub-{subject}.html"' in html
    for condition in example_dataset.conditions:
        assert f"Contrast {condition}" in html
    assert "One-sample t-test" in html


def test_notes_are_shown_to_the_subjects_they_name():
    from bids_fixedfx.notes import Note

    notes = [
        Note("imputed", "first value of a was n/a", subject="01", task="x", run="sub-01_task-x_run-1"),
        Note("fit", "something", subject="02", task="x"),
        Note("selection", "a general note"),
        Note("fit", "about sub-02, though it names sub-01 in its text", subject="02"),
    ]
    assert report.notes_about(notes, "01") == [notes[0], notes[2]]
    assert report.notes_about(notes, "10") == [notes[2]]


def test_boldref_is_found_beside_the_preprocessed_bold(tmp_path):
    bold = tmp_path / "sub-01_task-x_run-1_space-MNI_desc-preproc_bold.nii.gz"
    assert report.boldref_of(bold) is None
    (tmp_path / "sub-01_task-x_run-1_space-MNI_boldref.nii.gz").write_bytes(b"")
    assert report.boldref_of(bold).name == "sub-01_task-x_run-1_space-MNI_boldref.nii.gz"


def test_figures_use_the_agg_backend():
    import matplotlib

    from bids_fixedfx import figures  # noqa: F401  (choosing the backend is part of importing it)

    assert matplotlib.get_backend().lower() == "agg"


# ----------------------------------------------------------------------------
# Chromium


def chromium_binary():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "Chromium is not installed: the report test opens the pages in headless Chromium "
            "(Debian: apt-get install chromium; .ci/run installs it)."
        )
    return found


class DevTools:
    """A minimal client of Chrome's DevTools protocol over a WebSocket (standard library only)."""

    def __init__(self, url, timeout=60):
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            response += chunk
        assert response.startswith(b"HTTP/1.1 101"), response[:200]
        self.buffer = response.split(b"\r\n\r\n", 1)[1]
        self.next_id = 0
        self.events = []

    def _read(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _receive(self):
        message = b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if second & 0x80 else None
            payload = self._read(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = first & 0x0F
            if opcode == 8:
                raise ConnectionError("DevTools closed the WebSocket")
            if opcode in (9, 10):  # ping, pong
                continue
            message += payload
            if first & 0x80:
                return json.loads(message)

    def _send(self, text):
        payload = text.encode()
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(payload))
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def call(self, method, **params):
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = self._receive()
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == event for e in self.events):
                return
            self.events.append(self._receive())
        raise TimeoutError(f"no {event} within {timeout} s")

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium with its DevTools endpoint on a free local port."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen(
        [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--hide-scrollbars", "--window-size=1280,1000", f"--user-data-dir={profile}",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Chromium did not start (exit code {process.poll()}).")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def open_page(port, url):
    """Load ``url`` in a new tab; return its DevTools events, image check and a PNG screenshot."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
    with urllib.request.urlopen(request, timeout=30) as response:
        target = json.load(response)
    tab = DevTools(target["webSocketDebuggerUrl"])
    try:
        tab.call("Network.enable")
        tab.call("Page.enable")
        tab.call("Page.navigate", url=url)
        tab.wait_for("Page.loadEventFired")
        images = tab.call(
            "Runtime.evaluate", returnByValue=True,
            expression="Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])",
        )["result"]["value"]
        size = tab.call("Page.getLayoutMetrics")["cssContentSize"]
        height = min(int(size["height"]), 20000)
        shot = tab.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                        clip={"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1})
        return tab.events, images, base64.b64decode(shot["data"])
    finally:
        tab.close()


def test_pages_open_in_chromium_without_a_failed_request(reports, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for page in pages(reports) + [reports / "logs" / "CITATION.html"]:
        events, images, screenshot = open_page(browser, page.resolve().as_uri())
        failed = [e["params"] for e in events if e.get("method") == "Network.loadingFailed"]
        assert not failed, f"{page.name}: failed requests {failed}"
        requested = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
        assert requested, f"{page.name}: Chromium reported no request"
        for url in requested:
            assert url.startswith(("file://", "data:")), f"{page.name} requested {url}"
            if url.startswith("file://"):
                assert Path(unquote(urlsplit(url).path)).is_file(), url
        statuses = [e["params"]["response"].get("status", 0) for e in events
                    if e.get("method") == "Network.responseReceived"]
        assert all(s in (0, 200) for s in statuses), f"{page.name}: statuses {statuses}"
        broken = [src for src, complete, width in images if not (complete and width > 0)]
        assert not broken, f"{page.name}: images that did not load: {broken}"
        assert screenshot.startswith(b"\x89PNG")
        (SCREENSHOTS / f"{page.stem}.png").write_bytes(screenshot)
    print(f"screenshots of the reports: {SCREENSHOTS}")
