"""The layers of ``mltune/``, from the import-linter contract in ``pyproject.toml`` (the order
``lint-imports`` checks in every ``make test``)."""

from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from docs.gen.common import ROOT, write


def main() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")
    lines = [f"{i}. " + " | ".join(f"`{part.strip()}`" for part in layer.split("|"))
             for i, layer in enumerate(layers["layers"], 1)]
    write("layers.md", f"*{layers['name']}* (highest first):\n\n" + "\n".join(lines) + "\n")
