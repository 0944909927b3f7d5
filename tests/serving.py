"""Start a real ``mlflow models serve`` on 127.0.0.1 for a test, and talk to it over HTTP."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from conftest import env_for_subprocess
from servers import free_port


@contextmanager
def served(model_uri: str, tracking_uri: str, timeout: float = 120.0) -> Iterator[str]:
    """``mlflow models serve -m model_uri`` on a free port; yields its base URL. The server
    runs as a hardened team runs it, with MLflow's pickle deserialization off: every model
    mltune logs must load so."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "-h", "127.0.0.1",
         "-p", str(port), "--env-manager", "local", "--workers", "1"],
        env={**env_for_subprocess(tracking_uri), "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                raise RuntimeError(f"mlflow models serve exited early:\n{output[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"mlflow models serve did not answer on {url}/ping")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def invoke(url: str, payload: dict[str, Any]) -> Any:
    """POST a JSON payload to /invocations; return the decoded answer."""
    request = urllib.request.Request(
        f"{url}/invocations", data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def post(url: str, body: str) -> tuple[int, Any]:
    """POST raw JSON text to /invocations (so ``1e309`` or ``NaN`` can be sent as a client
    would); return (HTTP status, decoded answer)."""
    request = urllib.request.Request(f"{url}/invocations", data=body.encode(),
                                     headers={"Content-Type": "application/json"},
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def send_mixed(url: str, good: dict[str, tuple[str, Callable[[Any], bool]]],
               bad: dict[str, tuple[str, str]], requests: int = 120, seed: int = 0
               ) -> dict[str, int]:
    """``requests`` requests in a seeded order, a fifth of them malformed, then a ping.

    ``good``: name -> (body, check of the predictions); ``bad``: name -> (body, what the
    one-line refusal must say). Every bad payload is sent at least once. Returns how many of
    each kind were sent.
    """
    rng = random.Random(seed)
    plan = list(bad) + [rng.choice(list(bad)) for _ in range(requests // 5 - len(bad))]
    plan += [rng.choice(list(good)) for _ in range(requests - len(plan))]
    rng.shuffle(plan)
    sent = {name: 0 for name in (*good, *bad)}
    for name in plan:
        sent[name] += 1
        if name in bad:
            body, says = bad[name]
            status, answer = post(url, body)
            # MLflow's server puts the request before the model's line: "Failed to predict
            # data '...'. \nError: <the line>"
            line = answer.get("message", "").rsplit("\nError: ", 1)[-1]
            assert status == 400, (name, status, answer)
            assert says in line and "\n" not in line, (name, answer)
        else:
            body, check = good[name]
            status, answer = post(url, body)
            assert status == 200, (name, status, answer)
            assert check(answer["predictions"]), (name, answer)
    with urllib.request.urlopen(f"{url}/ping", timeout=5) as response:
        assert response.status == 200  # alive after it all
    return sent
