"""The FAQ quotes what mltune prints: each error line of docs/faq.md is produced by the
command beside it here (``mltune check``: nothing runs), as quoted (a line the page cuts short
ends with ``...``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import run_cli

FAQ = (Path(__file__).resolve().parents[1] / "docs" / "faq.md").read_text(encoding="utf-8")
QUOTED = re.findall(r"^```text\n(mltune: error: .*)\n```", FAQ, flags=re.M)
RAISED = re.findall(r"^```text\nSpecError: (.*)\n```", FAQ, flags=re.M)  # from Python

# the field an error line starts with -> the arguments of `mltune` that make it
MAKES = {
    "space.hidden_sise": ["check", "--set", "task=tabular",
                          "--set", "space.hidden_sise={choice: [16, 32]}"],
    "max_eval": ["check", "--set", "max_eval=10"],
    "metric": ["check", "--set", "metric=val_acc"],
    "data.source": ["check", "--set", "task=tabular", "--set", "data.source=churn.csv",
                    "--set", "data.target=churned"],
    "data.target": ["check", "--set", "task=tabular", "--set", "data.target=diagnosys"],
    "space.learning_rate.loguniform": ["check", "--set",
                                       "space.learning_rate={loguniform: [-9.2, -2.3]}"],
    "space.activation.choice[1]": ["check", "--set", "space.activation={choice: [relu, swish]}"],
    "space.dropout.normal": ["check", "--set", "space.dropout={normal: [0.1, 0.05]}"],
    "device": ["check", "--set", "device=cuda"],
    "pack": ["check", "examples/text.yaml", "--set", "pack=4"],
}
# quoted, made elsewhere: a resumed search (tests/test_resume.py), an interruption
# (tests/test_first_hour.py), a missing extra (installed wherever the tests run)
ELSEWHERE = ("--resume", "search interrupted", "algo")


def field_of(line: str) -> str:
    field = line.removeprefix("mltune: error: ").split(": ", 1)[0]
    return "search interrupted" if field.startswith("search interrupted") else field


def test_every_error_the_faq_quotes_is_checked_here_or_elsewhere():
    assert len(QUOTED) >= 10
    fields = [field_of(line) for line in QUOTED]
    assert set(fields) == set(MAKES) | set(ELSEWHERE)


@pytest.mark.parametrize("line", [q for q in QUOTED if field_of(q) in MAKES], ids=field_of)
def test_mltune_prints_the_line_the_faq_quotes(line, tracking_uri, capsys, monkeypatch):
    if field_of(line) == "device" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # examples/ as the FAQ says
    code, out, err = run_cli(MAKES[field_of(line)], capsys)
    assert code == 2 and "Traceback" not in out + err
    printed = err.strip()
    quoted = line.removesuffix("...").rstrip()
    assert printed.startswith(quoted), (printed, quoted)
    if not line.endswith("..."):
        assert printed == quoted


def build(params, data):
    raise AssertionError("refused before it is called")


build.__module__ = "__main__"  # as a function defined in a notebook or a script is


def test_mltune_tune_raises_the_line_the_faq_quotes(tracking_uri, client):
    import mltune
    from mltune.core.errors import SpecError

    assert len(RAISED) == 1
    spec = mltune.build_spec({"max_evals": 1, "epochs": 1})
    with pytest.raises(SpecError) as raised:
        mltune.tune(spec, model=build)
    assert str(raised.value) == RAISED[0]
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []
