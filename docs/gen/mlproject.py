"""The MLproject reference: every entry point of ``MLproject`` with its parameters, their
types and defaults, the ``mltune`` flag each becomes (read from the entry point's command) and
what that flag does (its ``--help``), so that ``mlflow run . -e ENTRY -P name=value`` and the
CLI are one reference."""

from __future__ import annotations

import re
import textwrap

import click
import yaml

from docs.gen.common import ROOT, table, write


def _helps(command_name: str) -> tuple[dict[str, str], str]:
    """Each option's help of ``mltune COMMAND`` by flag, and the command's first line."""
    from mltune.cli import cli

    root = click.Context(cli, info_name="mltune")
    command = cli.get_command(root, command_name)
    if command is None:
        return {}, ""
    helps = {}
    for param in command.params:
        text = " ".join((getattr(param, "help", None) or "").split())
        for flag in getattr(param, "opts", []):
            helps[flag] = text
    return helps, (command.help or "").split("\n")[0]


def main() -> None:
    project = yaml.safe_load((ROOT / "MLproject").read_text(encoding="utf-8"))
    parts = [f"Project `{project['name']}`, environment `{project.get('conda_env', '')}`.\n"]
    for entry, point in project["entry_points"].items():
        command = " ".join(point["command"].split())
        invoked = re.search(r"python -m mltune (\w+)", command)
        name = invoked.group(1) if invoked else entry
        helps, summary = _helps(name)
        flags = {m.group(2): m.group(1) for m in re.finditer(r"(--[\w-]+) \{(\w+)\}", command)}
        rows = []
        for param, declared in (point.get("parameters") or {}).items():
            declared = declared if isinstance(declared, dict) else {"type": declared}
            default = declared.get("default")
            shown = ("required" if "default" not in declared else
                     "`\"\"`: not given" if default == "" else f"`{default}`")
            flag = flags.get(param)
            rows.append([f"`{param}`", f"`{declared.get('type', 'string')}`", shown,
                         f"`{flag}`" if flag else "the argument", helps.get(flag or "", "")])
        parts.append(
            f"## `{entry}`\n\n{summary}\n\n```bash\nmlflow run . -e {entry} --env-manager local"
            + "".join(f" -P {p}=..." for p, d in (point.get("parameters") or {}).items()
                      if not isinstance(d, dict) or "default" not in d)
            + "\n```\n\n" + table(["parameter", "type", "default", "flag", "what"], rows)
            + "\nwhich runs:\n\n```text\n" + textwrap.fill(command, 96, break_long_words=False,
                                                       break_on_hyphens=False,
                                                       subsequent_indent="    ") + "\n```\n")
    write("mlproject.md", "\n".join(parts))
