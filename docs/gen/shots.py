"""Screenshots for the manual, taken, not drawn (``make docs-shots``).

A short digits search runs against a throwaway ``mlflow server`` on 127.0.0.1; headless
Chromium (``browser``: driven over its DevTools pipe) then captures the Runs view with the
search's parent run expanded, the best trial, the parent's description, the Models page and
the search report into ``docs/img/``, each shrunk to a palette PNG of 1200 pixels' width. On
every page of the UI MLflow's Assistant panel is closed first: it is no part of a search. The
MLflow 3 UI opens an experiment on its GenAI overview unless the address carries
``?workflowType=machine_learning``, and draws only the table columns in view: the windows are
wide.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from docs.gen.browser import Browser

ROOT = Path(__file__).resolve().parents[2]
IMG = ROOT / "docs" / "img"
EXPERIMENT = "digits-docs"
SEARCH = ["--config", "examples/digits.yaml", "--max-evals", "6", "--epochs", "3",
          "--set", "registered_model=mltune-image"]
WIDTH = 1200  # pixels of each image as committed
# MLflow's Assistant panel (the Close button in a box titled "MLflow Assistant"): closed by a
# click (the profile then keeps it closed); should a later MLflow keep it open, its pixels are
# cropped
ASSISTANT = """[...document.querySelectorAll('button[aria-label="Close"]')].find(b => {
  for (let p = b, i = 0; p && i < 8; p = p.parentElement, i++)
    if (p.textContent.includes('MLflow Assistant')) return true;
  return false;
})"""
CLOSE_ASSISTANT = f"(() => {{ const close = {ASSISTANT}; if (close) close.click(); }})()"
ASSISTANT_WIDTH = f"""(() => {{
  let panel = {ASSISTANT};
  while (panel && panel.getBoundingClientRect().height < window.innerHeight * 0.8)
    panel = panel.parentElement;
  return panel ? Math.ceil(window.innerWidth - panel.getBoundingClientRect().left) : 0;
}})()"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("mlflow server exited early")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"mlflow server did not answer at {url}")


def link_to(text: str) -> str:
    """JavaScript: the link whose text is ``text`` (a run's name)."""
    return (f"[...document.querySelectorAll('a')].find(a => a.innerText.trim() === "
            f"{json.dumps(text)})")


def text(words: str) -> str:
    """JavaScript: the page shows ``words``."""
    return f"document.body.innerText.includes({json.dumps(words)})"


def expand(name: str) -> str:
    """JavaScript: click the expander of the run ``name`` (the button of its name's cell)."""
    return f"""(() => {{
  const link = {link_to(name)};
  const cell = link && link.closest('.ag-cell-value');
  const button = cell && cell.querySelector('button');
  if (button) button.click();
  return Boolean(button);
}})()"""


def shoot(browser: Browser, url: str, out: Path, size: tuple[int, int], ready: str,
          click: str = "", shown: str = "") -> None:
    """``url`` captured into ``out`` (shrunk) once ``ready`` (JavaScript) holds, the Assistant
    closed and ``click`` run, which must make ``shown`` hold."""
    browser.open(url, size)
    if not browser.wait_for(ready, timeout=90):
        raise TimeoutError(f"{url}: the page did not show what it should ({ready})")
    if url.startswith("http"):
        browser.js(CLOSE_ASSISTANT)
        browser.wait_for(f"!{ASSISTANT}", timeout=10, settle=1.0)
    if click:
        browser.js(click)
        if not browser.wait_for(shown, timeout=30):
            raise TimeoutError(f"{url}: the click did not show what it should ({shown})")
    raw = out.with_name(out.stem + "-raw.png")
    browser.shot(raw)
    crop = int(browser.js(ASSISTANT_WIDTH) or 0) if url.startswith("http") else 0
    shrink(raw, out, crop)
    raw.unlink()


def shrink(raw: Path, out: Path, crop_right: int = 0) -> None:
    """A palette PNG ``WIDTH`` pixels wide: a few dozen KB instead of a megabyte
    (``crop_right``: pixels of an Assistant panel that would not close)."""
    from PIL import Image

    image = Image.open(raw).convert("RGB")
    if crop_right:  # the UI's assistant panel: not part of what the page shows of a search
        image = image.crop((0, 0, image.width - crop_right, image.height))
    height = round(image.height * WIDTH / image.width)
    image = image.resize((WIDTH, height), Image.LANCZOS)
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)


@contextlib.contextmanager
def mlflow_server(work: Path, env: dict[str, str]) -> Iterator[str]:
    """A throwaway ``mlflow server`` on 127.0.0.1 storing under ``work``; yields its address."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(work / "server.log", "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
             str(port), "--backend-store-uri", f"sqlite:///{work}/mlflow.db",
             "--artifacts-destination", str(work / "artifacts"), "--workers", "1"],
            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(url, server)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("docs-shots: chromium not found (Debian package chromium)")
    from mlflow.tracking import MlflowClient

    IMG.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    with tempfile.TemporaryDirectory(prefix="mltune-shots-") as tmp, \
            mlflow_server(Path(tmp), env) as url:
        work = Path(tmp)
        search_env = {**env, "MLFLOW_TRACKING_URI": url, "MLFLOW_EXPERIMENT_NAME": EXPERIMENT,
                      "PYTHONPATH": os.pathsep.join(
                          [str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        subprocess.run([sys.executable, "-m", "mltune", "tune", *SEARCH], cwd=ROOT,
                       env=search_env, check=True)
        client = MlflowClient(url, url)
        experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
        (parent,) = client.search_runs([experiment], "tags.`mltune.role` = 'search'")
        best = parent.data.tags["mltune.best_run_id"]
        report = Path(client.download_artifacts(parent.info.run_id, "report/report.html",
                                                str(work)))
        base = f"{url}/#/experiments/{experiment}"
        run = parent.info.run_name
        ui = "?workflowType=machine_learning"
        pages = {  # name: address, window, what shows it is drawn; a click and its effect
            "runs": (f"{base}/runs{ui}", (1800, 700), link_to(run), expand(run),
                     link_to("trial-0001")),  # the parent expanded: its trials below it
            "trial": (f"{base}/runs/{best}{ui}", (1800, 1100), text("val_accuracy")),
            "parent": (f"{base}/runs/{parent.info.run_id}{ui}", (1800, 1000),
                       text("Best trial")),
            "models": (f"{base}/models{ui}", (2000, 700),
                       text(client.get_run(best).info.run_name)),
            "report": (report.as_uri(), (1400, 1600), "document.readyState === 'complete'"),
        }
        browser = Browser(chromium, work / "profile")
        try:
            for name, (page, size, *how) in pages.items():
                shoot(browser, page, IMG / f"{name}.png", size, *how)
                print(f"docs/img/{name}.png  {(IMG / f'{name}.png').stat().st_size // 1024}"
                      f" KB  <- {page}")
        finally:
            browser.close()

if __name__ == "__main__":
    main()
