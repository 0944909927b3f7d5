"""The catalogs: every name a spec may use for a task, network family, activation, optimizer,
loss, weight init, norm, cell, pooling, sampler, scheduler and backend, read from the
``Catalog`` objects the spec is checked against (so the names here are the names allowed)."""

from __future__ import annotations

import ast
import functools
import inspect

from docs.gen.common import first_sentence, rst, table, write


def catalogs() -> list[tuple[str, str, object]]:
    from mltune.models.families import FAMILIES
    from mltune.models.init import INITS
    from mltune.models.layers import ACTIVATIONS
    from mltune.models.mlp import NORMS
    from mltune.models.rnn import CELLS, POOLINGS
    from mltune.spec.catalogs import BACKENDS, SAMPLERS, SCHEDULERS
    from mltune.spec.tasks import TASKS
    from mltune.training.losses import LOSSES
    from mltune.training.optim import OPTIMIZERS

    return [
        ("Tasks", "`task:`", TASKS),
        ("Network families", "`model:` (or your own network)", FAMILIES),
        ("Activations", "`activation` in a space", ACTIVATIONS),
        ("Optimizers", "`optimizer` in a space (`{name: sgd, momentum: ...}`)", OPTIMIZERS),
        ("Losses", "`loss` in a space (each task allows those that suit it)", LOSSES),
        ("Weight inits", "`weight_init` in a space", INITS),
        ("Norms", "`norm` in a space (tabular MLP)", NORMS),
        ("Recurrent cells", "`cell` in a space (text, timeseries)", CELLS),
        ("Poolings", "`pool` in a space (text)", POOLINGS),
        ("Samplers", "`algo:`", SAMPLERS),
        ("Schedulers", "`pruning.rule`", SCHEDULERS),
        ("Backends", "`backend:`", BACKENDS),
    ]


def _what(name: str, item: object) -> str:
    """What a catalog entry is, from its own code: a docstring it has itself (never one it
    inherits: a task's base class's, a dataclass's generic one), else its module's when the
    module is about it alone, else the expression a lambda stands for."""
    if item is None:
        return "nothing of its own: each layer keeps PyTorch's initialisation"
    if isinstance(item, functools.partial):
        args = ", ".join(map(repr, item.args))
        return f"`{item.func.__name__}({args})`: {_own(item.func)}"
    if type(item).__name__ == "Family":
        return _own(item.build)
    if type(item).__name__ == "Optimizer":
        plain = (_own(item.plain) or _lambda(item.plain)).rstrip(".")
        return f"{plain}; in a pack: `{item.packed.__name__}`"
    module = inspect.getmodule(item if callable(item) else type(item))
    about = first_sentence(rst(inspect.getdoc(module) or "")) if module else ""
    if about.startswith(f"`{name}`") or not (callable(item) or isinstance(item, type)):
        return about  # the module of one scheduler, task or backend
    return _own(item) or _lambda(item)


def _own(obj: object) -> str:
    """The first sentence of ``obj``'s own docstring ('' for none or an inherited one); a
    signature line at its top (torch's RNN classes) is passed over."""
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    if not doc or getattr(obj, "__name__", "") == "<lambda>":
        return ""
    paragraphs = [p for p in inspect.cleandoc(doc).split("\n\n")
                  if p.strip() and not p.lstrip().startswith("__init__(")]
    return first_sentence(rst(paragraphs[0])) if paragraphs else ""


def _lambda(obj: object) -> str:
    """``nn.CrossEntropyLoss(label_smoothing=0.1)``: what a lambda of a catalog returns."""
    if getattr(obj, "__name__", "") != "<lambda>":
        return ""
    try:
        source = inspect.getsource(obj)
    except OSError:
        return ""
    source = source[source.find("lambda"):].rstrip()
    while source:  # the lambda ends where its text parses: the call around it is cut off
        try:
            found = ast.parse(source, mode="eval").body
        except SyntaxError:
            source = source[:-1].rstrip()
            continue
        if isinstance(found, ast.Tuple) and found.elts:  # `lambda ...: x, more` of a call
            found = found.elts[0]
        return f"`{ast.unparse(found.body)}`" if isinstance(found, ast.Lambda) else ""
    return ""


def main() -> None:
    parts = []
    for title, where, catalog in catalogs():
        rows = [[f"`{name}`", _what(name, catalog.get(name))] for name in catalog.names()]
        parts.append(f"## {title}\n\nUsed by {where}.\n\n" + table(["name", "what"], rows))
    write("catalogs.md", "\n".join(parts))
