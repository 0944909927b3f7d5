"""The page, rendered from a hand-made search: self-contained, the best trial, the table."""

from __future__ import annotations

import re

from mltune.report.html import TABLE_ROWS, Section, render_html
from mltune.report.trials import SearchEnd, SearchTrials, trials_frame


def search(count: int, status: str = "FINISHED") -> SearchTrials:
    rows = [{"trial": i, "run_id": f"run{i}", "status": "FINISHED" if i % 4 else "FAILED",
             "objective": i / 1000 if i % 4 else None, "duration_s": 1.0, "epochs": 1,
             "best_epoch": None, "params.act": "<relu>", "error": None}
            for i in range(1, count + 1)]
    frame, params, categorical = trials_frame(rows, "acc")
    return SearchTrials("parent1", "demo & co", status, "acc", "max", frame, params,
                        categorical, set())


def test_page_embeds_images_names_the_best_and_escapes_text():
    page = render_html(search(5), [Section("History", "each trial", b"\x89PNG"),
                                   Section("Importance", "Not estimated: too few.")])
    assert "<script" not in page.lower()
    assert re.findall(r'src="([^"]*)"', page) == ["data:image/png;base64,iVBORw=="]
    assert '<p class="note">Not estimated: too few.</p>' in page
    assert "<h1>Search demo &amp; co</h1>" in page
    assert "5 trials: 1 failed, 4 finished" in page
    assert "<b>Best:</b> trial 5, acc = 0.005 (run <code>run5</code>)<br>act=&lt;relu&gt;" in page
    assert "still running" not in page


def test_table_best_first_then_the_rest_cut_at_its_rows():
    page = render_html(search(TABLE_ROWS + 10, "RUNNING"), [])
    assert "still running" in page
    assert f"(the best {TABLE_ROWS}; all {TABLE_ROWS + 10} in trials.csv)" in page
    trials = [int(t) for t in re.findall(r"<tr>\s*<td>(\d+)</td>", page)]
    assert len(trials) == TABLE_ROWS
    ranked = [t for t in range(TABLE_ROWS + 10, 0, -1) if t % 4]  # by value: the latest best
    assert trials[:len(ranked)] == ranked
    assert trials[len(ranked):] == list(range(4, 4 * (TABLE_ROWS - len(ranked)) + 1, 4))


def test_a_finished_search_shows_its_end_and_links_run_ids_when_a_server_is_known():
    trials = search(5)
    trials = SearchTrials(*[getattr(trials, f) for f in ("run_id", "name", "status", "metric",
                                                          "mode", "frame", "params",
                                                          "categorical", "log_scale")], "7")
    end = SearchEnd("FINISHED", {"test_acc": 0.91, "test_f1": 0.9},
                    "kept: not better by more than 0", "mltune-image/4", {"test_acc": 0.93},
                    links="http://127.0.0.1:5001")
    page = render_html(trials, [], end)
    assert "The search finished" in page
    assert ("<tr><th>Holdout score of the best model</th><td>test_acc = 0.91, test_f1 = 0.9 "
            "(the champion it was compared with: test_acc = 0.93)") in page
    assert "<td>kept: not better by more than 0</td>" in page
    assert "<td>mltune-image version 4</td>" in page
    link = '<a href="http://127.0.0.1:5001/#/experiments/7/runs/{0}"><code>{0}</code></a>'
    assert f"(run {link.format('run5')})" in page  # the best trial, and in the table:
    assert f"<td>{link.format('run5')}</td>" in page
    assert f"Parent run {link.format('parent1')} (FINISHED)" in page


def test_a_killed_search_says_so_and_a_running_one_has_no_result_yet():
    killed = render_html(search(3, "KILLED"), [])
    assert "stopped before its end (KILLED" in killed and "<h2>Result</h2>" not in killed
    running = render_html(search(3), [], SearchEnd("RUNNING", {}))
    assert "still running" in running and "<h2>Result</h2>" not in running
