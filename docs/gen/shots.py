"""Screenshots for the manual, taken, not drawn (``make docs-shots``).

A short digits search runs against a throwaway ``mlflow server`` on 127.0.0.1; headless
Chromium then captures the Runs view, the best trial, the parent's description, the Models page
and the search report into ``docs/img/``, each shrunk to a palette PNG of 1200 pixels' width.
The MLflow 3 UI opens an experiment on its GenAI overview unless the address carries
``?workflowType=machine_learning``, and draws only the table columns in view: the windows are
wide.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMG = ROOT / "docs" / "img"
EXPERIMENT = "digits-docs"
SEARCH = ["--config", "examples/digits.yaml", "--max-evals", "6", "--epochs", "3",
          "--set", "registered_model=mltune-image"]
WIDTH = 1200  # pixels of each image as committed
ASSISTANT = 455  # pixels of the MLflow UI's assistant panel, on the right of every page


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


def shoot(chromium: str, url: str, out: Path, size: tuple[int, int], profile: Path,
          budget_ms: int = 20000) -> None:
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
         f"--virtual-time-budget={budget_ms}", f"--screenshot={out}", url],
        check=True, capture_output=True, timeout=240)


def shrink(raw: Path, out: Path, crop_right: int = 0) -> None:
    """A palette PNG ``WIDTH`` pixels wide: a few dozen KB instead of a megabyte."""
    from PIL import Image

    image = Image.open(raw).convert("RGB")
    if crop_right:  # the UI's assistant panel: not part of what the page shows of a search
        image = image.crop((0, 0, image.width - crop_right, image.height))
    height = round(image.height * WIDTH / image.width)
    image = image.resize((WIDTH, height), Image.LANCZOS)
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)


def main() -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("docs-shots: chromium not found (Debian package chromium)")
    from mlflow.tracking import MlflowClient

    IMG.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mltune-shots-") as tmp:
        work = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        with open(work / "server.log", "w") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
                 str(port), "--backend-store-uri", f"sqlite:///{work}/mlflow.db",
                 "--artifacts-destination", str(work / "artifacts"), "--workers", "1"],
                cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(url, server)
            search_env = {**env, "MLFLOW_TRACKING_URI": url,
                          "MLFLOW_EXPERIMENT_NAME": EXPERIMENT,
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
            pages = {
                "runs": (f"{base}/runs?workflowType=machine_learning", (1800, 700)),
                "trial": (f"{base}/runs/{best}?workflowType=machine_learning", (1800, 1100)),
                "parent": (f"{base}/runs/{parent.info.run_id}?workflowType=machine_learning",
                           (1800, 1000)),
                "models": (f"{base}/models?workflowType=machine_learning", (2600, 900)),
                "report": (report.as_uri(), (1400, 1600)),
            }
            for name, (page, size) in pages.items():
                raw = work / f"{name}-raw.png"
                shoot(chromium, page, raw, size, work / "profile")
                shrink(raw, IMG / f"{name}.png", 0 if name == "report" else ASSISTANT)
                print(f"docs/img/{name}.png  {(IMG / f'{name}.png').stat().st_size // 1024} KB"
                      f"  <- {page}")
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()
