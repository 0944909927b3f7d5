"""The CLI reference: every command's ``--help`` as the click app prints it."""

from __future__ import annotations

import click

from docs.gen.common import write


def main() -> None:
    from mltune.cli import cli

    parts = []
    root = click.Context(cli, info_name="mltune", terminal_width=100, max_content_width=100)
    parts.append("```text\n" + cli.get_help(root) + "\n```\n")
    for name in cli.list_commands(root):
        command = cli.get_command(root, name)
        ctx = click.Context(command, info_name=name, parent=root,
                            terminal_width=100, max_content_width=100)
        parts.append(f"## mltune {name}\n\n```text\n{command.get_help(ctx)}\n```\n")
    write("cli.md", "\n".join(parts))
