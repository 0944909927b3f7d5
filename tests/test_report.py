"""The search report as a user finds it: files on the parent run, a page that renders offline.

One real 4-trial search (1 epoch, small nets) serves every test; a report is also made half-way
through it, from the progress callback, to show that a running search can be reported on.
"""

from __future__ import annotations

import html
import json
import logging
import re
import shutil
import subprocess
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from conftest import REPO, children_of
from mlflow.tracking import MlflowClient
from PIL import Image

import mltune
from mltune.cli import main, summary
from mltune.report.build import build_report
from mltune.report.console import outcomes_frame, top_trials_text
from mltune.search.selection.finish import make_report
from mltune.tracking.runs import SearchRun, start_search

# Cheap nets; the varied params still cover a categorical, a log-scaled float and a
# conditional one (momentum exists only for sgd).
# (random search, seed 6: the 4 trials draw adam, adamw, sgd, adamw)
SPEC = {"max_evals": 4, "epochs": 1, "seed": 6, "algo": "rand", "space.channels": 16,
        "space.hidden_size": 64, "space.num_blocks": 1, "space.batch_size": 128,
        "space.kernel_size": 3, "space.weight_init": "default", "space.loss": "cross_entropy",
        "space.batch_norm": False}
PNGS = ["optimisation_history.png", "importance.png", "parallel_coordinates.png",
        "learning_curves.png", "slices.png"]


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory):
    """A finished search, its store, and a report made while it was still running."""
    root = tmp_path_factory.mktemp("report")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    midway: dict = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
            patch.delenv(name, raising=False)
        patch.chdir(root)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        client = MlflowClient(uri, uri)

        def progress(outcome, best) -> None:
            if outcome.number == 2:  # the parent is RUNNING: report on it as a user would
                running = client.search_runs(
                    ["0"], "tags.`mltune.role` = 'search' and attributes.status = 'RUNNING'")
                midway["report"] = build_report(running[0].info.run_id, root / "midway")

        result = mltune.tune(mltune.load_spec(None, SPEC), progress=progress)
        yield {"result": result, "client": client, "root": root, "uri": uri, **midway}
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)


def downloaded(client: MlflowClient, run_id: str, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, "report", str(dst)))


def references(page: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", page)


def test_search_logs_table_plots_and_page_on_parent(search, tmp_path):
    result, client = search["result"], search["client"]
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mltune.report"] == "report/report.html"
    assert "mltune.report_error" not in parent.data.tags
    folder = downloaded(client, result.parent_run_id, tmp_path)
    assert {p.name for p in folder.iterdir()} >= {"trials.csv", "trials.parquet", "report.html",
                                                  "importance.csv", *PNGS}

    table = pd.read_csv(folder / "trials.csv")
    assert list(table["trial"]) == [1, 2, 3, 4]
    assert list(pd.read_parquet(folder / "trials.parquet")["trial"]) == [1, 2, 3, 4]
    children = {c.info.run_id: c for c in children_of(client, result.parent_run_id)}
    for _, row in table.iterrows():
        child = children[row["run_id"]]
        assert row["status"] == "FINISHED" and row["epochs"] == 1 and row["duration_s"] > 0
        assert row["metrics.val_accuracy"] == pytest.approx(child.data.metrics["val_accuracy"])
        assert row["objective"] == pytest.approx(float(child.data.tags["mltune.objective"]))
    assert list(table.columns[:8]) == ["trial", "run_id", "status", "objective", "duration_s",
                                       "epochs", "best_epoch", "metrics.val_accuracy"]
    # decoded params: names, not choice indices; momentum only where the optimizer is sgd
    assert set(table["params.optimizer"]) <= {"adam", "adamw", "sgd"}
    sgd = table["params.optimizer"] == "sgd"
    assert sgd.any() and (table["params.optimizer.momentum"].notna() == sgd).all()
    assert table["params.learning_rate"].between(1e-4, 3e-2).all()

    importance = pd.read_csv(folder / "importance.csv")
    assert set(importance["param"]) == {c.removeprefix("params.") for c in table.columns
                                        if c.startswith("params.")}
    assert importance["importance"].sum() == pytest.approx(1.0)

    for name in PNGS:
        with Image.open(folder / name) as image:
            assert image.format == "PNG" and image.width >= 600 and image.height >= 300

    page = (folder / "report.html").read_text()
    assert "<script" not in page.lower()
    refs = references(page)
    assert len(refs) == len(PNGS)
    for ref in refs:  # inline images, or files beside the page that exist
        assert ref.startswith("data:image/png;base64,") or (folder / ref).is_file(), ref[:60]
    best = result.best
    assert f"Best:</b> trial {best.number}," in page
    assert best.run_id in page


def test_report_of_a_finished_search_says_finished_with_holdout_gate_and_version(search,
                                                                              tmp_path):
    result, client = search["result"], search["client"]
    parent = client.get_run(result.parent_run_id)
    page = (downloaded(client, result.parent_run_id, tmp_path) / "report.html").read_text()
    assert f"<code>{result.parent_run_id}</code> (FINISHED)" in page
    assert "The search finished" in page and "still running" not in page
    holdout = parent.data.metrics["test_accuracy"]
    assert result.decision is not None and holdout == result.decision.challenger_score
    assert f"test_accuracy = {holdout:.4g}" in page
    assert "promoted: first version: no champion yet" in page  # the gate, as the run has it
    assert f"mltune-image version {result.registered_version}" in page
    assert "<a " not in page  # a local store: no server address to link run ids to
    # the run's description links the best trial relative to the UI page it is shown on
    note = parent.data.tags["mlflow.note.content"]
    assert (f"[trial-{result.best.number:04d}](#/experiments/{parent.info.experiment_id}/runs/"
            f"{result.best.run_id})") in note


@pytest.mark.parametrize("status, says", [("KILLED", "stopped before its end (KILLED"),
                                          ("FAILED", "The search failed (FAILED)")])
def test_report_of_a_stopped_search_says_how_it_ended(search, tmp_path, status, says):
    started = start_search(mltune.load_spec(None, {"name": f"ended-{status}"}), "data")
    started.end(status)
    page = (build_report(started.run_id, tmp_path).directory / "report.html").read_text()
    assert says in page and f"({status})" in page
    assert "The search finished" not in page and "still running" not in page


def test_report_of_a_running_search_shows_the_trials_so_far(search):
    report = search["report"]
    assert report.trials.status == "RUNNING"
    assert list(report.trials.frame["trial"]) == [1, 2]
    page = (report.directory / "report.html").read_text()
    assert "still running" in page
    assert (report.directory / "slices.png").is_file()
    # too few trials for an importance estimate: the page says why instead of a plot
    assert "importance.png" not in report.files
    # the trials' models may still be logging in the background: until then no objective
    found = re.search(r"Not estimated: ([^<]*)", page)
    assert found and re.fullmatch(r"needs at least 3 finished trials, this search has [012]\.",
                                  found.group(1)), found


def test_report_of_a_search_that_has_no_trial_yet(search, tmp_path):
    started = start_search(mltune.load_spec(None, {"name": "just-started"}), "data")
    report = build_report(started.run_id, tmp_path / "empty")
    started.end("KILLED")
    assert report.trials.frame.empty
    assert {"trials.csv", "optimisation_history.png", "report.html"} <= set(report.files)
    page = (report.directory / "report.html").read_text()
    assert "0 trials" in page
    assert "needs at least 3 finished trials, this search has 0" in page
    assert pd.read_csv(report.directory / "trials.csv").columns[0] == "trial"


def test_terminal_summary_names_the_report_and_tables_the_top_trials(search):
    result = search["result"]
    assert "Report: report/report.html among the parent run's artifacts" in summary(result)
    text = top_trials_text(outcomes_frame(result.trials, "val_accuracy"), "val_accuracy", "max")
    lines = text.splitlines()
    assert lines[0] == "Top 4 of 4 trials by val_accuracy (max):"
    ranked = sorted(result.trials, key=lambda t: (-t.metrics["val_accuracy"], t.number))
    assert lines[1].split() == [w for t, r in zip(ranked, range(1, 5), strict=True)
                                for w in (f"#{r}", "trial", str(t.number))]
    row = next(line for line in lines if line.startswith("val_accuracy"))
    assert row.split()[1:] == [f"{t.metrics['val_accuracy']:.4g}" for t in ranked]
    assert any(line.startswith("optimizer ") for line in lines)


def test_cli_report_regenerates_the_report(search, tmp_path, capsys):
    result, client = search["result"], search["client"]
    logged = Path(client.get_run(result.parent_run_id).info.artifact_uri) / "report"
    shutil.rmtree(logged)  # a user deleted it; `mltune report` puts it back
    out = tmp_path / "out"
    main(["report", result.parent_run_id, "--out", str(out)])
    printed = capsys.readouterr().out
    assert (f"Report of search {result.spec.name!r} (4 trials, finished): "
            f"{logged}/report.html") in printed
    assert f"Written to {out / 'report.html'}" in printed
    experiment = client.get_run(result.parent_run_id).info.experiment_id
    assert (f"then open http://127.0.0.1:5000/#/experiments/{experiment}/runs/"
            f"{result.parent_run_id}") in printed
    assert f"#1 trial {result.best.number}" in printed
    assert (logged / "report.html").is_file() and (logged / "trials.csv").is_file()
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in logged.iterdir())


def test_cli_report_refuses_what_is_not_a_search(search, capsys):
    child = children_of(search["client"], search["result"].parent_run_id)[0]
    for run_id, message in [
        ("0123456789abcdef", "run_id: no run '0123456789abcdef' in the tracking store"),
        (child.info.run_id, f"is a trial; its search is '{search['result'].parent_run_id}'"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(["report", run_id])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2
        assert err.count("\n") == 1 and err.startswith("mltune: error: ") and message in err


def test_report_failure_is_a_warning_and_a_tag_not_a_failed_search(search, caplog):
    client = search["client"]
    run = client.create_run("0", run_name="not-a-search")  # a run without a spec
    caplog.set_level(logging.WARNING, logger="mltune.search")
    error = make_report(SearchRun(run.info.run_id, "0", "x", client))
    assert error is not None and "is not an mltune search" in error
    assert "search report not made" in caplog.text
    assert "is not an mltune search" in client.get_run(run.info.run_id).data.tags[
        "mltune.report_error"]
    client.set_terminated(run.info.run_id)


def test_mlproject_has_a_report_entry_point(tmp_path):
    from mlflow.projects._project_spec import load_project

    entry = load_project(str(REPO)).get_entry_point("report")
    command = entry.compute_command({"run_id": "abc123", "out": "site"}, str(tmp_path))
    assert command == "python -m mltune report abc123 --out site"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  window.__errors.push(String(e.message || (e.target && e.target.src) || 'error'));
}, true);
window.addEventListener('load', function () {
  var images = Array.prototype.map.call(document.images, function (i) {
    return {ok: i.complete && i.naturalWidth > 0, width: i.naturalWidth};
  });
  var pre = document.createElement('pre');
  pre.id = 'mltune-check';
  pre.textContent = JSON.stringify({images: images, errors: window.__errors});
  document.body.appendChild(pre);
});
</script>"""


def render(page: Path, profile: Path) -> tuple[dict, list[str]]:
    """Open a copy of ``page`` with a probe in headless Chromium (no network); return what the
    probe saw (image load status, errors) and the console lines Chromium logged."""
    probed = page.with_name("probed-" + page.name)
    probed.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--proxy-server=127.0.0.1:9", f"--user-data-dir={profile}", "--enable-logging=stderr",
         "--v=0", "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=60)
    found = re.search(r'<pre id="mltune-check">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(html.unescape(found.group(1))), console


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not found (Debian package chromium)")
def test_report_renders_in_headless_chromium_every_image_loads_no_console_error(search,
                                                                             tmp_path):
    # the probe itself catches a broken image and a console error
    bad = tmp_path / "bad" / "page.html"
    bad.parent.mkdir()
    bad.write_text('<!DOCTYPE html><html><head></head><body><img src="missing.png">'
                   '<script>console.error("boom")</script></body></html>')
    seen, console = render(bad, tmp_path / "profile-bad")
    assert seen["images"] == [{"ok": False, "width": 0}] and seen["errors"]
    assert any("boom" in line for line in console)

    folder = downloaded(search["client"], search["result"].parent_run_id, tmp_path / "dl")
    seen, console = render(folder / "report.html", tmp_path / "profile")
    assert len(seen["images"]) == len(PNGS)
    assert all(image["ok"] and image["width"] >= 600 for image in seen["images"]), seen
    assert seen["errors"] == [] and console == []
