"""Headless Chromium driven over its DevTools pipe, with nothing but the standard library.

``chromium --screenshot`` captures a page as it loads; the manual's screenshots need a click
first (the runs view with the parent run expanded, MLflow's Assistant panel closed). Chromium's
``--remote-debugging-pipe`` speaks the DevTools protocol on file descriptors 3 (commands in)
and 4 (answers and events out), each message JSON ended by a NUL byte: a page is opened,
scripted (``js``) and captured (``shot``) through it, with no websocket client or browser
driver to install.
"""

from __future__ import annotations

import base64
import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any


class Browser:
    """One headless Chromium with one page."""

    def __init__(self, chromium: str, profile: Path) -> None:
        commands, self._commands = os.pipe()
        self._answers, answers = os.pipe()
        args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
                "--remote-debugging-pipe"]
        # the pipe ends as fds 3 and 4 of the browser, whatever numbers they have here
        script = f'exec 3<&{commands} 4>&{answers}; exec "$@"'
        self.process = subprocess.Popen(["bash", "-c", script, "chromium", *args],
                                        pass_fds=(commands, answers),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(commands)
        os.close(answers)
        self._buffer, self._id = b"", 0
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]

    def call(self, method: str, session: str | None = None, timeout: float = 120,
             **params: Any) -> dict[str, Any]:
        """Send one DevTools command and wait for its answer (events meanwhile: dropped)."""
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._next(deadline)
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"chromium: {method}: {answer['error']}")
                return answer.get("result", {})

    def _next(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._answers], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._answers, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium exited")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        return self.call(method, session=self.session, **params)

    def open(self, url: str, size: tuple[int, int]) -> None:
        """Load ``url`` in a window of ``size`` pixels."""
        self.page("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1],
                  deviceScaleFactor=1, mobile=False)
        self.page("Page.navigate", url=url)

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise awaited)."""
        found = self.page("Runtime.evaluate", expression=expression, awaitPromise=True,
                          returnByValue=True)
        return found.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 60, settle: float = 2.0) -> bool:
        """Until ``expression`` is true in the page (False after ``timeout`` seconds); then
        ``settle`` seconds more, for what it started to draw."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.js(f"Boolean({expression})"):
                time.sleep(settle)
                return True
            time.sleep(0.5)
        return False

    def shot(self, path: Path) -> None:
        """The page as it is drawn now, as a PNG."""
        data = self.page("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            self.process.kill()
        self.process.wait(timeout=30)
        os.close(self._commands)
        os.close(self._answers)
