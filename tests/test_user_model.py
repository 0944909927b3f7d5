"""Your own network (``model: nets/tiny.py:build``): tuned with its own hyperparameters beside
mltune's training ones, refused before any run when it cannot work, served from its logged
model where its file no longer exists, gated against another version of itself.

The networks are written under ``tmp_path`` (outside the project) by the tests themselves.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest
import yaml
from conftest import all_runs, children_of, env_for_subprocess, run_cli
from serving import invoke, served
from sklearn.datasets import load_breast_cancer, load_digits

import mltune
from mltune.core.errors import SpecError

NETS = '''
import torch
from torch import nn


class Tiny(nn.Module):
    """A hidden layer of ``width`` units between the task's inputs and outputs."""

    def __init__(self, inputs, width, outputs, scale):
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(inputs, width), nn.ReLU(),
                                  nn.Linear(width, outputs))

    def forward(self, x):
        return self.body(x / self.scale)


def image(params, data):
    return Tiny(data.channels * data.height * data.width, params["width"], data.classes, 16.0)


def table(params, data):
    return Tiny(data.features, params["width"], data.outputs, 1.0)
'''

TASKS = {
    "image": {"model": "nets/tiny.py:image", "registered_model": "tiny-image"},
    "tabular": {"task": "tabular", "model": "nets/tiny.py:table",
                "registered_model": "tiny-tabular"},
}
WIDTHS = [4, 8, 12]
FAST = {"max_evals": 2, "epochs": 1, "pack": 1, "space": {"width": {"choice": WIDTHS}}}


def write_nets(folder: Path, text: str = NETS, name: str = "tiny.py") -> Path:
    """The user's network, in a folder of its own under the test's directory."""
    path = folder / "nets" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


PREDICT = """
import json, sys
import mlflow
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_digits

model = mlflow.pyfunc.load_model(sys.argv[1])
if sys.argv[2] == "image":
    rows = load_digits().images[:6]
else:
    rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(6)
answer = model.predict(rows)
network = type(model.unwrap_python_model().network).__name__
print(json.dumps({"labels": [str(v) for v in answer["label"]], "network": network,
                  "sys_modules_with_tiny": [m for m in sys.modules if "tiny" in m]}))
"""


def predict_elsewhere(model_uri: str, task: str, tracking_uri: str, where: Path) -> dict:
    """``mlflow.pyfunc.load_model(model_uri).predict(...)`` in a fresh process run in ``where``,
    where nothing of the user's folder exists, with MLflow's pickle deserialization off."""
    where.mkdir(exist_ok=True)
    env = {**env_for_subprocess(tracking_uri), "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}
    done = subprocess.run([sys.executable, "-c", PREDICT, model_uri, task], cwd=where,
                          capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(TASKS))
def test_a_network_of_ones_own_is_tuned_served_without_its_file_and_gated(
        task, tracking_uri, client, tmp_path, capsys):
    write_nets(tmp_path)
    spec = mltune.load_spec(None, {**TASKS[task], **FAST, "seed": 0})
    assert spec.space["width"] == {"choice": WIDTHS}
    assert "num_layers" not in spec.space and "channels" not in spec.space  # no family keys
    first = mltune.tune(spec)

    trials = children_of(client, first.parent_run_id)
    assert [t.info.status for t in trials] == ["FINISHED", "FINISHED"]
    for trial in trials:
        params = trial.data.params
        assert int(params["width"]) in WIDTHS  # its own hyperparameter, on each trial
        assert {"learning_rate", "optimizer", "batch_size", "weight_decay", "loss"} <= set(
            params)  # beside mltune's training ones
        assert not {"num_layers", "hidden_size", "channels", "dropout"} & set(params)
    parent = client.get_run(first.parent_run_id)
    assert parent.data.params["spec.model"] == TASKS[task]["model"]

    # another version of it: the gate scores both on the holdout
    second = mltune.tune(mltune.load_spec(None, {**TASKS[task], **FAST, "seed": 1}))
    assert second.decision is not None and str(second.decision.champion) == "1"
    assert second.decision.champion_score is not None
    name = TASKS[task]["registered_model"]
    version = client.get_model_version(name, "2")
    assert version.tags["mltune.compared_with"] == "1"

    shutil.rmtree(tmp_path / "nets")  # the user's repository is gone
    champion = client.get_model_version_by_alias(name, "champion").version
    other = "1" if str(champion) == "2" else "2"
    capsys.readouterr()
    code, out, err = run_cli(["promote", "--model", name, "--version", other, "--dry-run"],
                             capsys)
    assert code == 0, err
    assert f"(v{other}) vs " in out and f"(v{champion})" in out  # both loaded and scored
    answer = predict_elsewhere(f"models:/{name}@champion", task, tracking_uri,
                               tmp_path / "elsewhere")
    assert answer["network"] == "Tiny"
    expected = ({str(d) for d in range(10)} if task == "image"
                else {"malignant", "benign"})
    assert len(answer["labels"]) == 6 and set(answer["labels"]) <= expected
    champion = client.get_model_version_by_alias(name, "champion")
    code = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{champion.version}"))
    assert (code / "code" / "tiny.py").read_text() == textwrap.dedent(NETS)  # it travelled


@pytest.mark.slow
def test_mlflow_models_serve_answers_with_a_network_whose_file_is_gone(tracking_uri, tmp_path):
    write_nets(tmp_path)
    mltune.tune(mltune.load_spec(None, {**TASKS["tabular"], **FAST}))
    shutil.rmtree(tmp_path / "nets")
    rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(4)
    with served("models:/tiny-tabular@champion", tracking_uri) as url:
        answer = invoke(url, {"dataframe_split": rows.to_dict(orient="split")})
    assert len(answer["predictions"]) == 4
    assert {p["label"] for p in answer["predictions"]} <= {"malignant", "benign"}


def test_mltune_train_trains_ones_own_network(tracking_uri, client, tmp_path, capsys):
    write_nets(tmp_path)
    config = tmp_path / "spec.yaml"
    config.write_text(yaml.safe_dump({**TASKS["tabular"], **FAST}))
    code, out, err = run_cli(["train", "--config", str(config), "--params", "{width: 12}"],
                             capsys)
    assert code == 0, err
    (run,) = all_runs(client)
    assert run.data.params["width"] == "12" and run.info.status == "FINISHED"
    code, out, err = run_cli(["train", "--config", str(config)], capsys)
    assert code == 0, err
    newest = max(all_runs(client), key=lambda r: r.info.start_time)
    assert newest.data.params["width"] == "4"  # the first value of its space


# -- refused before any run opens --------------------------------------------------------------

BROKEN = {
    "import_error.py": "import torch\n\nimport helpers_that_do_not_exist\n",
    "syntax_error.py": "def build(params, data)\n    return None\n",
    "raises.py": ("from torch import nn\n\n\ndef build(params, data):\n"
                  "    depth = params['depth']\n    return nn.Linear(64, depth)\n"),
    "wrong_shape.py": ("from torch import nn\n\n\ndef build(params, data):\n"
                       "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))\n"),
    "not_a_module.py": "def build(params, data):\n    return {'layers': 3}\n\nWIDTH = 3\n",
}

REFUSALS = {
    "missing file": ("nets/absent.py:build",
                     "model: 'nets/absent.py:build': nets/absent.py does not exist (a relative "
                     "path is read from the current directory, {cwd})"),
    "missing module": ("absent_package.nets:build",
                       "model: 'absent_package.nets:build': no module named 'absent_package'"),
    "missing name": ("nets/wrong_shape.py:make",
                     "model: 'nets/wrong_shape.py:make': nets/wrong_shape.py has no 'make'; "
                     "callables defined there: build"),
    "not callable": ("nets/not_a_module.py:WIDTH",
                     "model: 'nets/not_a_module.py:WIDTH': 'WIDTH' in nets/not_a_module.py is "
                     "an int, not a callable"),
    "import error": ("nets/import_error.py:build",
                     "model: 'nets/import_error.py:build': importing nets/import_error.py "
                     "failed at line 3: ModuleNotFoundError: No module named "
                     "'helpers_that_do_not_exist'"),
    "syntax error": ("nets/syntax_error.py:build",
                     "model: 'nets/syntax_error.py:build': importing nets/syntax_error.py "
                     "failed at line 1: SyntaxError: expected ':'"),
    "raises on the default params": (
        "nets/raises.py:build",
        "model: nets/raises.py:build raised KeyError: 'depth' (nets/raises.py line 5) when "
        "called with the default params (width=4 and the training defaults)"),
    "wrong output shape": (
        "nets/wrong_shape.py:build",
        "model: the network of nets/wrong_shape.py:build answers 2 training samples of shape "
        "(2, 1, 8, 8) with (2, 3); task 'image' trains on (2, 10): one logit per class for "
        "each sample"),
    "not a module": ("nets/not_a_module.py:build",
                     "model: nets/not_a_module.py:build returned a dict, not a torch.nn.Module"),
    "a family of another task": ("mlp", "model: family 'mlp' does not suit task 'image'; "
                                        "available for it: cnn"),
    "unknown family": ("resnet", "model: unknown model family 'resnet'; available: cnn, "
                                 "forecaster, mlp, text_rnn; or your network as file.py:callable "
                                 "or package.module:callable"),
}


def test_a_network_that_cannot_work_is_one_line_and_no_run(tracking_uri, client, tmp_path,
                                                          capsys):
    """Each case through the CLI, on one store (its set-up is most of a case's time)."""
    for name, text in BROKEN.items():
        write_nets(tmp_path, text, name)
    config = tmp_path / "spec.yaml"
    wrong = {}
    for case, (model, message) in REFUSALS.items():
        config.write_text(yaml.safe_dump({"model": model, **FAST}))
        code, out, err = run_cli(["tune", "--config", str(config)], capsys)
        lines = err.strip().splitlines()
        expected = f"mltune: error: {message.format(cwd=tmp_path)}"
        if code != 2 or len(lines) != 1 or not lines[0].startswith(expected) or (
                "Traceback" in out + err):
            wrong[case] = (code, err)
    assert wrong == {}
    assert all_runs(client) == []  # nothing was opened


def test_a_regression_network_answers_one_value_per_row(tracking_uri, client, tmp_path):
    write_nets(tmp_path, "from torch import nn\n\n\ndef build(params, data):\n"
                         "    return nn.Linear(data.features, 2)\n", "two.py")
    spec = mltune.load_spec(None, {"task": "tabular", "data": "sklearn:diabetes",
                                   "model": "nets/two.py:build", **FAST})
    with pytest.raises(SpecError, match=r"answers 2 training samples of shape \(2, 10\) with "
                                        r"\(2, 2\); task 'tabular' trains on \(2, 1\): one "
                                        r"standardised value for each sample"):
        mltune.tune(spec)
    assert all_runs(client) == []


# -- the built-in families, by name ---------------------------------------------------------------

def test_a_built_in_family_by_name_gives_the_trials_of_the_default(tracking_uri, client):
    small = {"max_evals": 2, "epochs": 1, "seed": 5, "pack": 1,
             "space": {"num_blocks": 1, "channels": 8, "hidden_size": 16}}
    default = mltune.tune(mltune.load_spec(None, small))
    named = mltune.tune(mltune.load_spec(None, {**small, "model": "cnn"}))
    assert [t.params for t in named.trials] == [t.params for t in default.trials]
    assert [t.metrics for t in named.trials] == [t.metrics for t in default.trials]
    assert client.get_run(named.parent_run_id).data.params["spec.model"] == "cnn"


# -- from Python: a callable, found by name when its model loads --------------------------------

SCRIPT = '''
import mltune
from mynets import build


spec = mltune.load_spec(None, {"max_evals": 2, "epochs": 1, "pack": 1,
                               "registered_model": "from-script",
                               "space": {"width": {"choice": [5, 7]}}})
result = mltune.tune(spec, model=build)
print("width", result.best.params["width"])
'''

MYNETS = '''
from torch import nn


def build(params, data):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, params["width"]), nn.ReLU(),
                         nn.Linear(params["width"], data.classes))
'''


@pytest.mark.slow
def test_a_callable_imported_by_a_script_makes_models_that_load_elsewhere(tracking_uri, client,
                                                                          tmp_path):
    """The script's network, imported from its own file: the file travels with the model and
    the model finds ``build`` in it by name, in a process with pickle off, where neither the
    script nor the file exists."""
    script = tmp_path / "notebook.py"
    script.write_text(SCRIPT)
    (tmp_path / "mynets.py").write_text(MYNETS)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=env_for_subprocess(tracking_uri))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] in {"5", "7"}
    script.unlink()
    (tmp_path / "mynets.py").unlink()
    answer = predict_elsewhere("models:/from-script@champion", "image", tracking_uri,
                               tmp_path / "elsewhere")
    assert answer["network"] == "Sequential" and len(answer["labels"]) == 6
    (parent,) = [r for r in all_runs(client) if r.data.tags.get("mltune.role") == "search"]
    assert parent.data.params["spec.model"] == "mynets:build"
    version = client.get_model_version_by_alias("from-script", "champion")
    config = mlflow.models.Model.load(version.source).flavors["python_function"]["config"]
    assert config == {"task": "image", "network": "mynets.py:build"}  # by name, in code/


def _in_main(params, data):
    raise AssertionError("never called: refused before the search starts")


def _factory():
    def build(params, data):
        raise AssertionError("never called")
    return build


_in_main.__module__ = "__main__"  # as a function defined in a script or a notebook is
REFUSED = {
    "__main__": (_in_main, "model: __main__:_in_main: a callable of __main__ (a script or a "
                           "notebook) cannot be found by name when its model loads; put it in "
                           "a .py file and give model: file.py:callable (from Python: import "
                           "it from that file)"),
    "a lambda": (lambda params, data: None,
                 "model: test_user_model:<lambda> is a lambda, which its model cannot find by "
                 "name when it loads; define it with def at the top level of a .py file and "
                 "give model: file.py:callable (from Python: import it from that file)"),
    "a closure": (_factory(), "model: test_user_model:_factory.<locals>.build is a callable "
                              "defined inside a function, which its model cannot find by name"),
}


def test_a_callable_its_model_could_not_find_by_name_is_refused_before_any_run(
        tracking_uri, client, tmp_path, capsys):
    """From Python, each case one SpecError line; from the CLI, ``model: __main__:build`` exits
    2 with its line; no run is opened (one store for all: its set-up is most of a case)."""
    spec = mltune.load_spec(None, {**FAST, "space": {"width": 4}})
    for case, (build, message) in REFUSED.items():
        with pytest.raises(SpecError) as refused:
            mltune.tune(spec, model=build)
        text = str(refused.value)
        assert text.startswith(message) and "\n" not in text, (case, text)
    config = tmp_path / "spec.yaml"
    config.write_text(yaml.safe_dump({"model": "__main__:build", **FAST}))
    code, out, err = run_cli(["tune", "--config", str(config)], capsys)
    assert code == 2 and "Traceback" not in out + err
    assert err.strip() == ("mltune: error: model: '__main__:build': a callable of __main__ (a "
                           "script or a notebook) cannot be found by name when its model "
                           "loads; put it in a .py file and give model: file.py:callable (from "
                           "Python: import it from that file)")
    assert all_runs(client) == []


def test_a_callable_given_to_tune_replaces_the_family_s_space(tracking_uri, client, tmp_path):
    write_nets(tmp_path)
    spec = mltune.load_spec(None, {**FAST, "space": {"width": 6, "learning_rate": 0.01}})
    assert "channels" in spec.space  # built for the task's own family
    from importlib.util import module_from_spec, spec_from_file_location

    loader = spec_from_file_location("user_nets_for_test", tmp_path / "nets" / "tiny.py")
    module = module_from_spec(loader)
    sys.modules["user_nets_for_test"] = module
    loader.loader.exec_module(module)
    try:
        result = mltune.tune(spec, model=module.image)
    finally:
        sys.modules.pop("user_nets_for_test")
    params = result.trials[0].params
    assert params["width"] == 6 and params["learning_rate"] == 0.01
    assert "channels" not in params and "num_blocks" not in params
    shutil.rmtree(tmp_path / "nets")
    model = mlflow.pyfunc.load_model(f"models:/{spec.registered_model}@champion")
    assert len(model.predict(load_digits().images[:3])) == 3


# -- packing ------------------------------------------------------------------------------------

DROPOUT_NET = '''
from torch import nn


def build(params, data):
    return nn.Sequential(nn.Linear(data.features, params["width"]), nn.ReLU(),
                         nn.Dropout(params["dropout"]), nn.Linear(params["width"], data.outputs))
'''


def test_a_packable_network_is_packed_and_its_own_keys_are_its_shape(tracking_uri, client,
                                                                      tmp_path):
    write_nets(tmp_path, DROPOUT_NET, "drop.py")
    spec = mltune.load_spec(None, {
        "task": "tabular", "model": "nets/drop.py:build", "max_evals": 2, "epochs": 1,
        "pack": 2, "space": {"width": {"choice": [4, 8]}, "dropout": {"uniform": [0.0, 0.5]}}})
    result = mltune.tune(spec)
    trials = children_of(client, result.parent_run_id)
    assert [t.data.tags.get("mltune.pack") for t in trials] == ["1", "1"]  # trained as one
    first, second = (t.data.params for t in trials)
    assert first["width"] == second["width"]
    assert first["dropout"] == second["dropout"]  # its own key: part of the shape
    assert first["learning_rate"] != second["learning_rate"]  # a training one: free
    model = mlflow.pyfunc.load_model("models:/mltune-tabular@champion")
    assert len(model.predict(load_breast_cancer(as_frame=True).frame.drop(
        columns="target").head(3))) == 3


DATA_DEPENDENT = '''
from torch import nn


class Branchy(nn.Module):
    def __init__(self, features, outputs):
        super().__init__()
        self.a, self.b = nn.Linear(features, outputs), nn.Linear(features, outputs)

    def forward(self, x):
        h = self.a(x)
        return h if h.mean().item() > 0 else self.b(x)  # data-dependent: no vmap rule


def build(params, data):
    return Branchy(data.features, data.outputs)
'''


def test_a_network_that_cannot_be_packed_runs_unpacked_and_says_so_once(tracking_uri, client,
                                                                       tmp_path, caplog,
                                                                       capsys):
    write_nets(tmp_path, DATA_DEPENDENT, "branchy.py")
    raw = {"task": "tabular", "model": "nets/branchy.py:build", "max_evals": 2, "epochs": 1}
    with caplog.at_level(logging.WARNING, logger="mltune.search.packs"):
        result = mltune.tune(mltune.load_spec(None, raw))
    said = [r.getMessage() for r in caplog.records if "cannot be packed" in r.getMessage()]
    assert len(said) == 1
    assert said[0].startswith("trials run one at a time: your network (nets/branchy.py:build) "
                              "cannot be packed: a fused step of two members failed: ")
    trials = children_of(client, result.parent_run_id)
    assert [t.info.status for t in trials] == ["FINISHED", "FINISHED"]
    assert not any("mltune.pack" in t.data.tags for t in trials)

    config = tmp_path / "spec.yaml"
    config.write_text(yaml.safe_dump({**raw, "pack": 2}))
    runs = len(all_runs(client))
    capsys.readouterr()
    code, _, err = run_cli(["tune", "--config", str(config)], capsys)
    assert code == 2 and err.strip().startswith(
        "mltune: error: pack: 2 is not possible: your network (nets/branchy.py:build) cannot "
        "be packed")
    assert len(all_runs(client)) == runs


def test_a_package_module_path_travels_as_its_package_folder(tracking_uri, client, tmp_path,
                                                              monkeypatch):
    package = tmp_path / "userpkg"
    (package / "blocks").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "blocks" / "__init__.py").write_text(
        "from torch import nn\n\n\ndef hidden(inputs, width):\n"
        "    return nn.Sequential(nn.Linear(inputs, width), nn.ReLU())\n")
    (package / "nets.py").write_text(
        "from torch import nn\n\nfrom userpkg.blocks import hidden\n\n\n"
        "class Table(nn.Sequential):\n    def __init__(self, params, data):\n"
        "        super().__init__(hidden(data.features, params['width']),\n"
        "                         nn.Linear(params['width'], data.outputs))\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # as `python -m` from the project's root
    spec = mltune.load_spec(None, {"task": "tabular", "model": "userpkg.nets:Table", **FAST})
    result = mltune.tune(spec)
    assert result.best.params["width"] in WIDTHS
    version = client.get_model_version_by_alias("mltune-tabular", "champion")
    local = Path(mlflow.artifacts.download_artifacts(f"models:/mltune-tabular/{version.version}"))
    assert sorted(p.relative_to(local / "code").as_posix()
                  for p in (local / "code" / "userpkg").rglob("*.py")) == [
        "userpkg/__init__.py", "userpkg/blocks/__init__.py", "userpkg/nets.py"]

    shutil.rmtree(package)  # gone, and forgotten by this process
    for name in [m for m in sys.modules if m == "userpkg" or m.startswith("userpkg.")]:
        monkeypatch.delitem(sys.modules, name)
    model = mlflow.pyfunc.load_model("models:/mltune-tabular@champion")
    rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(3)
    assert set(model.predict(rows)["label"]) <= {"malignant", "benign"}


def test_the_example_network_tunes_on_digits(tracking_uri, client):
    example = Path(__file__).resolve().parents[1] / "examples"
    spec = mltune.load_spec(example / "custom.yaml", {
        "model": f"{example / 'custom_model.py'}:build", "max_evals": 2, "epochs": 1,
        "space.width": {"choice": [8, 12]}, "space.depth": 1})
    result = mltune.tune(spec)
    trials = children_of(client, result.parent_run_id)
    assert [t.info.status for t in trials] == ["FINISHED", "FINISHED"]
    assert all(t.data.params["depth"] == "1" and t.data.params["width"] in {"8", "12"}
               for t in trials)
    model = mlflow.pyfunc.load_model("models:/digits-resnet@champion")
    assert type(model.unwrap_python_model().network).__name__ == "SmallResNet"


# -- the contract, task by task (README: "Your own network") ------------------------------------

CONTRACTS = '''
import torch
from torch import nn


class Text(nn.Module):  # (N, 1 + T) ids, lengths in column 0 -> (N, classes)
    def __init__(self, data, dim):
        super().__init__()
        self.embed = nn.EmbeddingBag(data.vocab_size, dim, padding_idx=data.padding_idx)
        self.out = nn.Linear(dim, data.classes)

    def forward(self, x):
        return self.out(self.embed(x[:, 1:]))


class Series(nn.Module):  # (N, T >= window, features) -> (N, horizon)
    def __init__(self, data, width):
        super().__init__()
        self.window = data.window
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(data.window * data.features, width),
                                 nn.ReLU(), nn.Linear(width, data.horizon))

    def forward(self, x):
        return self.net(x[:, -self.window:])


def text(params, data):
    return Text(data, params["width"])


def series(params, data):
    return Series(data, params["width"])


def values(params, data):  # (N, features) -> (N, 1), standardised
    assert data.regression and data.outputs == 1
    return nn.Sequential(nn.Linear(data.features, params["width"]), nn.ReLU(),
                         nn.Linear(params["width"], 1))
'''

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
CONTRACT_SPECS = {
    "text": ({"task": "text", "data": {"source": str(EXAMPLES / "reviews.csv"),
                                      "text": "review", "target": "sentiment"},
              "model": "nets/contracts.py:text"}, lambda: ["a great product", "awful"]),
    "timeseries": ({"task": "timeseries", "model": "nets/contracts.py:series",
                    "data": {"source": str(EXAMPLES / "sales.csv"), "time": "date",
                             "target": "sales", "covariates": ["temperature"], "horizon": 5}},
                   None),
    "regression": ({"task": "tabular", "data": "sklearn:diabetes",
                    "model": "nets/contracts.py:values"},
                   lambda: load_diabetes_rows()),
}


def load_diabetes_rows():
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True).frame.drop(columns="target").head(3)


@pytest.mark.parametrize("case", sorted(CONTRACT_SPECS))
def test_each_task_trains_and_serves_a_network_written_to_its_contract(case, tracking_uri,
                                                                       tmp_path):
    import pandas as pd

    write_nets(tmp_path, CONTRACTS, "contracts.py")
    raw, rows = CONTRACT_SPECS[case]
    result = mltune.tune(mltune.load_spec(None, {**raw, **FAST, "registered_model": case}))
    assert result.finished == 2
    shutil.rmtree(tmp_path / "nets")
    model = mlflow.pyfunc.load_model(f"models:/{case}@champion")
    if rows is None:  # the latest rows of the series
        rows = lambda: pd.read_csv(EXAMPLES / "sales.csv").tail(30)  # noqa: E731
    inputs = rows()
    answer = model.predict(inputs)
    assert len(answer) == (5 if case == "timeseries" else len(inputs))  # horizon 5
