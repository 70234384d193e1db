"""The docs site's reference pages, generated from the code (see scripts/mkdocs_hooks.py).

- :func:`cli_reference`: every command of the typer app, its arguments and options (hidden
  aliases left out), from the same objects ``--help`` prints;
- :func:`config_reference`: every key of the workflow file's ``config:`` block, from the
  pydantic models: type, default, the environment variable that overrides it, description.

    python scripts/docs_reference.py cli|config      # print one page
"""

from __future__ import annotations

import sys
import types
import typing
from enum import Enum
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _walk(group: Any, prefix: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    found: list[tuple[tuple[str, ...], Any]] = []
    for name in sorted(group.commands):
        command = group.commands[name]
        if getattr(command, "hidden", False):
            continue
        if hasattr(command, "commands"):
            found += _walk(command, (*prefix, name))
        else:
            found.append(((*prefix, name), command))
    return found


def _param_row(param: Any) -> str | None:
    if getattr(param, "hidden", False) or param.name in ("help",):
        return None
    names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
    if not any(o.startswith("-") for o in param.opts):  # a positional argument
        names = f"`{param.name.upper()}`"
    annotation = param.type_descriptor.annotation
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        kind = " | ".join(str(m.value) for m in annotation)
    elif getattr(param, "is_flag", False):
        kind = "flag"
    else:
        kind = _type_name(annotation)
    if param.required:
        default = "required"
    elif param.default is None or param.default == [] or param.default == ():
        default = ""
    else:
        value = param.default.value if isinstance(param.default, Enum) else param.default
        default = f"`{value}`"
    return f"| {names} | {_cell(kind)} | {default} | {_cell(getattr(param, 'help', '') or '')} |"


def cli_reference() -> str:
    import typer

    from configurable_agents.cli import app

    root = typer.main.get_command(app)
    lines = [
        "# Command line reference",
        "",
        "Generated from the CLI itself at every docs build (`scripts/docs_reference.py`).",
        "Every command with output takes `--format table|json|csv` and `-o/--output FILE`;",
        "json and csv are only the data, on stdout. Global options go before the command:",
        "`configurable-agents -v COMMAND` shows MLflow's own logs, `--version` the version.",
        "Errors are one line on stderr; exit 2 means input you can fix.",
        "",
    ]
    for path, command in _walk(root, ()):
        lines += [f"## `configurable-agents {' '.join(path)}`", ""]
        if command.help:
            lines += [command.help.strip(), ""]
        rows = [r for r in map(_param_row, command.params) if r]
        if rows:
            header = ["| Argument / option | Type | Default | Help |", "|---|---|---|---|"]
            lines += [*header, *rows, ""]
    return "\n".join(lines)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _models(a)]


def _describe(model: type[BaseModel], path: str, env: dict[str, str], out: list[str]) -> None:
    doc = (model.__doc__ or "").strip().split("\n\n")[0]
    out += [f"## `{path}`", "", " ".join(doc.split()), "",
            "| Key | Type | Default | Environment | Description |", "|---|---|---|---|---|"]
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        if field.default is PydanticUndefined and field.default_factory is None:
            default = "required"
        elif field.default_factory is not None:
            default = "(computed)"
        else:
            default = f"`{field.default!r}`" if field.default is not None else "`None`"
        var = env.get(name, "") if path == "config.observability.mlflow" else ""
        description = field.description or ""
        subs = _models(field.annotation)
        if subs:
            description = (description + f" See `{path}.{name}`.").strip()
            nested += [(f"{path}.{name}", sub) for sub in subs]
        out.append(f"| `{name}` | {_cell(_type_name(field.annotation))} | {_cell(default)} | "
                   f"{f'`{var}`' if var else ''} | {_cell(description)} |")
    out.append("")
    for sub_path, sub in nested:
        _describe(sub, sub_path, env, out)


def config_reference() -> str:
    from configurable_agents.config.loader import ENV_OVERRIDES
    from configurable_agents.config.schema import GlobalConfig

    env = {field: var for var, field in ENV_OVERRIDES.items()}
    out = [
        "# Configuration schema",
        "",
        "Generated from the pydantic models at every docs build (`scripts/docs_reference.py`):",
        "every key of a workflow file's `config:` block (or a bare config file). What each",
        "option does, with examples: [Configuration](../configuration/index.md).",
        "`configurable-agents config validate FILE` prints a file's resolved values.",
        "",
    ]
    _describe(GlobalConfig, "config", env, out)
    return "\n".join(out)


if __name__ == "__main__":
    page = {"cli": cli_reference, "config": config_reference}[sys.argv[1]]
    sys.stdout.write(page())
