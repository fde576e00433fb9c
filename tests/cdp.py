"""A headless chromium driven through the Chrome DevTools Protocol (CDP) over its websocket,
for the explorer's browser tests and bench: open a URL, wait for what a person would see,
read it, size the viewport like a phone, and save a screenshot.

Chromium is Debian's (``/usr/bin/chromium``), started with ``--remote-debugging-port=0``: it
writes the port it chose to ``DevToolsActivePort`` in its profile directory. One page target
is driven with CDP commands (``Page.navigate``, ``Runtime.evaluate``,
``Emulation.setDeviceMetricsOverride``, ``Page.captureScreenshot``); events are not used.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from websockets.sync.client import connect

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
START_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 30.0
POLL_S = 0.005  # between two evaluations of a condition
MAX_MESSAGE_BYTES = 64 * 2**20  # a full-page screenshot, base64
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1")


class BrowserError(Exception):
    """Chromium did not start, or a CDP command or page script failed."""


class Browser:
    """One headless chromium with one page; a context manager (the process ends on exit)."""

    def __init__(self, profile: Path) -> None:
        if CHROMIUM is None:
            raise BrowserError("chromium is not installed")
        profile.mkdir(parents=True, exist_ok=True)
        self._log = open(profile / "chromium.log", "wb")  # noqa: SIM115 - closed in close()
        self._process = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                         stdout=self._log, stderr=subprocess.STDOUT)
        self._next_id = 0
        try:
            self._ws = connect(self._page_socket(profile / "DevToolsActivePort"), max_size=MAX_MESSAGE_BYTES,
                               open_timeout=START_TIMEOUT_S)
        except BaseException:
            self.close()
            raise

    def _page_socket(self, port_file: Path) -> str:
        """The websocket URL of chromium's first page, once it listens."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrowserError(f"chromium exited with {self._process.returncode}")
            lines = port_file.read_text().split("\n") if port_file.exists() else []
            if len(lines) >= 2 and lines[0].isdigit():
                targets = httpx.get(f"http://127.0.0.1:{lines[0]}/json/list", timeout=5).json()
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
            time.sleep(0.05)
        raise BrowserError(f"chromium did not listen within {START_TIMEOUT_S:g} s")

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        with suppress(Exception):
            self._ws.close()
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)
        self._log.close()

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One CDP command's result (events that arrive meanwhile are dropped)."""
        self._next_id += 1
        self._ws.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while True:
            message = json.loads(self._ws.recv(timeout=max(0.0, deadline - time.monotonic())))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        answer = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression[:80]}: {answer['exceptionDetails'].get('text')} "
                               f"{answer['exceptionDetails'].get('exception', {}).get('description', '')}")
        return answer["result"].get("value")

    def open(self, url: str) -> None:
        """Navigate to ``url`` (a new document even if only the fragment differs)."""
        self.send("Page.navigate", url="about:blank")
        self.send("Page.navigate", url=url)

    def wait_for(self, expression: str, timeout_s: float = 15.0) -> Any:
        """The first truthy value of ``expression``, evaluated until ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with suppress(BrowserError):  # the document may be between navigations
                if value := self.evaluate(expression):
                    return value
            time.sleep(POLL_S)
        raise BrowserError(f"not true after {timeout_s:g} s: {expression}")

    def text(self) -> str:
        """What the page shows, as text."""
        return str(self.evaluate("document.body.innerText"))

    def set_width(self, width: int, height: int, *, mobile: bool) -> None:
        """Lay the page out in a ``width`` x ``height`` CSS-pixel viewport (a phone's if ``mobile``)."""
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=mobile)

    def overflows(self) -> bool:
        """Whether the page is wider than the viewport (a person would scroll sideways)."""
        return bool(self.evaluate("document.scrollingElement.scrollWidth > window.innerWidth"))

    def screenshot(self, path: Path) -> Path:
        """The viewport as PNG at ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))
        return path
