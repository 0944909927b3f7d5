"""Each task's defaults, from the task object: its default space (what a spec without
``space:`` searches), its defaults (``mltune train`` without ``--params``), the metrics a
trial logs with their directions, the losses that suit it and its ``data:`` options."""

from __future__ import annotations

import yaml

from docs.gen.common import code, table, write

# extra variants worth their own table: a task whose defaults depend on the data or on the
# network family (``model:``): a label and the spec keys that make it
VARIANTS = {"tabular": [
    ("regression (`sklearn:diabetes`)",
     {"data": {"source": "sklearn:diabetes", "target": "progression"}}),
    ("TabM (`model: tabm`)", {"model": "tabm"}),
]}


def _space_yaml(space: dict) -> str:
    def flow(value) -> str:
        text = yaml.safe_dump(value, default_flow_style=True, width=200, sort_keys=False)
        return text.removesuffix("...\n").strip()  # a scalar's dump ends the YAML document

    lines = [f"{key}: {flow(value)}" for key, value in space.items()]
    return "```yaml\nspace:\n" + "\n".join("  " + line for line in lines) + "\n```\n"


def _section(task, data, heading: str) -> str:
    metrics = task.metrics(data)
    params = task.default_params()
    return "\n".join([
        f"{heading}\n",
        "Default space (a spec without `space:` searches this; keys you give replace these):\n",
        _space_yaml(task.default_space()),
        "Default hyperparameters (the first trial of every search unless `start:` says "
        "otherwise, and `mltune train` without `--params`):\n",
        "```yaml\n" + yaml.safe_dump(params, default_flow_style=False, sort_keys=False)
        + "```\n",
        f"Metrics every trial logs per epoch (`metric:` may name any; default "
        f"`{task.default_metric}`):\n",
        table(["metric", "better when"],
              [[f"`{name}`", "larger (max)" if d.value == "max" else "smaller (min)"]
               for name, d in metrics.items()]),
        f"Losses (`loss:`): {task.loss_rule().describe()}.\n",
    ])


def main() -> None:
    from docs.gen.spec import task_defaults
    from mltune.spec.build import build_spec
    from mltune.spec.tasks import TASKS

    specs = task_defaults()
    for name in TASKS.names():
        task = TASKS.get(name)
        data = specs[name].data
        parts = [_section(task.for_data(data), data, "### Defaults")]
        for label, raw in VARIANTS.get(name, []):
            spec = build_spec({"task": name, **raw})
            variant = task.for_data(spec.data).for_model(spec.model)
            parts.append(_section(variant, spec.data, f"### Defaults for {label}"))
        options = ", ".join(f"`data.{o}`" for o in task.data_options) or "none"
        parts.append(f"This task's own `data:` keys: {options} "
                     "([reference](../spec.md#data-options)).\n")
        write(f"task-{name}.md", "\n".join(parts))
    write("task-sources.md", table(
        ["task", "default data set", "default metric"],
        [[f"[`{n}`]({n}.md)", code(TASKS.get(n).default_source) if
          TASKS.get(n).default_source else "none: name a file", f"`{TASKS.get(n).default_metric}`"]
         for n in TASKS.names()]))
