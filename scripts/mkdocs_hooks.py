"""MkDocs hooks (mkdocs.yml ``hooks:``): reference pages generated from the code, guide nav.

The CLI and configuration reference pages are built from the typer app and the pydantic
models at every build, never written to docs/: they cannot drift from the code, and there
is no generated file to commit. Pages added under docs/guide/ join the nav by themselves
("Guides"), so a feature's page needs no edit to mkdocs.yml.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from docs_reference import cli_reference, config_reference

GENERATED = {"reference/cli.md": cli_reference, "reference/config.md": config_reference}


def _title(page: Path) -> str:
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return page.stem.replace("-", " ").replace("_", " ").capitalize()


def on_config(config: Any) -> Any:
    guide = Path(config["docs_dir"]) / "guide"
    pages = sorted(guide.glob("*.md")) if guide.is_dir() else []
    listed = {str(v) for item in config["nav"] or [] for v in _leaves(item)}
    extra = [{_title(p): f"guide/{p.name}"} for p in pages if f"guide/{p.name}" not in listed]
    if extra:
        nav = list(config["nav"])
        at = next((i for i, item in enumerate(nav) if "Best practices" in item), len(nav))
        nav.insert(at, {"Guides": extra})
        config["nav"] = nav
    return config


def _leaves(item: Any) -> list[str]:
    if isinstance(item, str):
        return [item]
    if isinstance(item, dict):
        return [leaf for value in item.values() for leaf in _leaves(value)]
    if isinstance(item, list):
        return [leaf for value in item for leaf in _leaves(value)]
    return []


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for uri, render in GENERATED.items():
        files.append(File.generated(config, uri, content=render()))
    return files

