"""A real headless Chromium driven over the Chrome DevTools Protocol, for tests of rendered HTML.

Debian's ``chromium`` package is the browser (no browser download, no driver binary to match): it is
started with ``--remote-debugging-port=0`` and a fresh profile, the port it picked is read from the
profile's ``DevToolsActivePort`` file, and one page is driven over a WebSocket (``websocket-client``).

    with Chromium() as browser:
        page = browser.open(Path("report.html"))
        page.evaluate("document.title")
        page.screenshot(Path("shot.png"))
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "install it with: apt-get update && apt-get install -y chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
    "--remote-debugging-port=0", "--remote-allow-origins=*",
]


def find_chromium() -> str | None:
    env = os.environ.get("TRANSFERKIT_CHROMIUM")
    if env:
        return env
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class BrowserError(RuntimeError):
    pass


class Page:
    def __init__(self, ws):
        self.ws = ws
        self._id = 0
        self.events: list[dict] = []

    def send(self, method: str, timeout: float = 60, **params) -> dict:
        self._id += 1
        my_id = self._id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)
        raise BrowserError(f"{method}: no answer within {timeout} s")

    def wait_for_event(self, method: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        for i, ev in enumerate(self.events):
            if ev["method"] == method:
                return self.events.pop(i)
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if msg.get("method") == method:
                return msg
            if "method" in msg:
                self.events.append(msg)
        raise BrowserError(f"no {method} event within {timeout} s")

    def evaluate(self, expression: str, timeout: float = 60):
        """The value of a JavaScript expression (promises are awaited); JS exceptions raise."""
        res = self.send("Runtime.evaluate", timeout=timeout, expression=expression,
                        returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise BrowserError(f"JavaScript error: {res['exceptionDetails']}")
        return res["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        params = {"format": "png"}
        if full_page:
            metrics = self.send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params.update(
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 16000), "scale": 1},
            )
        data = self.send("Page.captureScreenshot", **params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def console_errors(self) -> list[str]:
        out = []
        for ev in self.events:
            if ev["method"] == "Runtime.exceptionThrown":
                out.append(json.dumps(ev["params"]["exceptionDetails"])[:500])
            elif ev["method"] == "Runtime.consoleAPICalled" and ev["params"].get("type") == "error":
                out.append(json.dumps(ev["params"]["args"])[:500])
        return out

    def requested_urls(self) -> list[str]:
        return [ev["params"]["request"]["url"] for ev in self.events if ev["method"] == "Network.requestWillBeSent"]


class Chromium:
    """A headless Chromium with a throw-away profile; use as a context manager."""

    def __init__(self, binary: str | None = None, width: int = 1366, height: int = 900):
        self.binary = binary or find_chromium()
        if not self.binary:
            raise BrowserError(f"Chromium not found (looked for {', '.join(CANDIDATES)} on PATH); {INSTALL_HINT}")
        self.width, self.height = width, height
        self.proc = None
        self.profile = None
        self.pages = []

    def __enter__(self) -> "Chromium":
        self.profile = tempfile.mkdtemp(prefix="transferkit-chromium-")
        self.log = open(Path(self.profile) / "chromium.log", "wb")  # a file, not a pipe: it cannot fill up
        self.proc = subprocess.Popen(
            [
                self.binary,
                *FLAGS,
                f"--user-data-dir={self.profile}",
                f"--window-size={self.width},{self.height}",
                "about:blank",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None:
                err = (Path(self.profile) / "chromium.log").read_text(errors="replace")[-2000:]
                raise BrowserError(f"{self.binary} exited with status {self.proc.returncode}: {err}")
            if time.monotonic() > deadline:
                self.close()
                raise BrowserError(f"{self.binary} did not open its debugging port within 60 s")
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])
        return self

    def open(self, path: Path, timeout: float = 60) -> Page:
        """A new page showing ``path`` (file:// URL), after its load event."""
        import websocket

        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/list")
        with urllib.request.urlopen(req, timeout=30) as resp:
            targets = [t for t in json.load(resp) if t.get("type") == "page"]
        ws = websocket.create_connection(targets[0]["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True)
        page = Page(ws)
        self.pages.append(page)
        page.send("Page.enable")
        page.send("Runtime.enable")
        page.send("Network.enable")
        page.send(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )
        page.send("Page.navigate", url=Path(path).resolve().as_uri())
        page.wait_for_event("Page.loadEventFired", timeout=timeout)
        return page

    def close(self) -> None:
        for page in self.pages:
            try:
                page.ws.close()
            except Exception:  # noqa: BLE001 - best effort at teardown
                pass
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "log", None):
            self.log.close()
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)

    def __exit__(self, *exc) -> None:
        self.close()
