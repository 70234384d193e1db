"""``configurable-agents run FILE`` and ``configurable-agents validate FILE``.

Both are top-level commands, so this module exposes :func:`register` rather than
a sub-app: ``run_cmd.register(app)`` in ``cli.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.text import Text

from configurable_agents.commands.options import (
    FORMAT,
    JSON_ALIAS,
    OUTPUT,
    Format,
    check_output,
    emit,
    resolve_format,
)

if TYPE_CHECKING:  # the runtime imports LangChain: only inside the commands
    from configurable_agents.config.loader import ConfigInputError
    from configurable_agents.config.workflow import WorkflowConfig
    from configurable_agents.runtime.executor import WorkflowResult

_err = Console(stderr=True, highlight=False)


def parse_inputs(
    workflow: WorkflowConfig, pairs: list[str], input_file: Path | None
) -> dict[str, Any]:
    """``--input-file`` values, then ``--input key=value`` on top.

    A ``key=value`` for a non-``str`` field is read as JSON when it parses
    (``--input tags='["a","b"]'``, ``--input n=3``), so the state model can check it.
    """
    from configurable_agents.runtime.executor import WorkflowInputError

    values: dict[str, Any] = {}
    if input_file is not None:
        try:
            loaded = json.loads(input_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise WorkflowInputError(f"--input-file {input_file}: {exc}") from None
        if not isinstance(loaded, dict):
            raise WorkflowInputError(f"--input-file {input_file}: expected a JSON object")
        values.update(loaded)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise WorkflowInputError(f"--input {pair!r}: expected key=value")
        field = workflow.state.fields.get(key)
        value: Any = raw
        if field is not None and field.type != "str":
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
        values[key] = value
    return values


def summary_line(result: WorkflowResult) -> str:
    """One line: tokens, cost, duration, MLflow run id (or why there are none)."""
    demo = " [demo model: estimated cost, no real spend]" if result.demo else ""
    s = result.summary
    if s is None:
        return (
            f"{result.workflow_name} {result.workflow_version}: {result.duration_s:.2f}s; "
            "observability off (enable a sink under config.observability, e.g. "
            f"mlflow.enabled: true or jsonl.enabled: true, for tokens and cost){demo}"
        )
    cost = "unpriced" if s.cost_usd is None else f"${s.cost_usd:.6f}"
    where = f"MLflow run {s.run_id}" if s.run_id else "no MLflow run (mlflow sink off)"
    return (
        f"{result.workflow_name} {result.workflow_version}: {s.status} | tokens "
        f"{s.input_tokens} in / {s.output_tokens} out | cost {cost} | {s.duration_s:.2f}s | "
        f"{where}{demo}"
    )


def _result_data(result: WorkflowResult) -> dict[str, Any]:
    summary = result.summary
    return {
            "workflow": {"name": result.workflow_name, "version": result.workflow_version},
            "outputs": result.outputs,
            "run": {
                "mlflow_run_id": result.run_id,
                "duration_s": round(result.duration_s, 3),
                "demo_model": result.demo,
                "input_tokens": summary.input_tokens if summary else None,
                "output_tokens": summary.output_tokens if summary else None,
                "cost_usd": summary.cost_usd if summary else None,
                "status": summary.status if summary else "FINISHED",
            },
        }


def _fail(title: str, exc: BaseException, code: int) -> typer.Exit:
    # Text, not a markup string: '[...]' in a path or user value must print as written.
    notes = "".join(f"\n{n}" for n in getattr(exc, "__notes__", []))
    _err.print(Text.assemble((title, "red"), f"\n{exc}{notes}"), soft_wrap=True)
    return typer.Exit(code=code)


def _refuse(exc: ConfigInputError) -> typer.Exit:
    """One line, exit 2: the file was refused before validation (encoding or a limit)."""
    _err.print(Text.assemble(("Workflow refused: ", "red"), str(exc)), soft_wrap=True)
    return typer.Exit(code=2)


def run(
    file: Path = typer.Argument(..., help="Workflow YAML file."),
    inputs: list[str] = typer.Option(
        [], "--input", "-i", help="State input as key=value (repeatable)."
    ),
    input_file: Path | None = typer.Option(None, "--input-file", help="JSON object of inputs."),
    demo: bool = typer.Option(
        False, "--demo", help="Use the offline demo model (also CONFIGURABLE_AGENTS_DEMO=1)."
    ),
    fmt: Format = FORMAT,
    output: str | None = typer.Option(
        None, "--output", "-o", help="Write to FILE instead of stdout."),
    as_json: bool = JSON_ALIAS,
) -> None:
    """Run a workflow and print its outputs and a one-line run summary."""
    from configurable_agents.config.loader import ConfigError, ConfigInputError
    from configurable_agents.config.workflow import load_workflow
    from configurable_agents.runtime.executor import (
        NodeOutputError,
        WorkflowInputError,
        WorkflowTimeoutError,
        run_workflow_from_config,
    )
    from configurable_agents.runtime.providers import ProviderError

    fmt = resolve_format(fmt, as_json)
    if output in _OLD_OUTPUT_FORMATS:  # old spelling: `--output json`, `-o text`
        fmt, output = _OLD_OUTPUT_FORMATS[output], None
    target = Path(output) if output is not None else None
    check_output(target)
    try:
        workflow = load_workflow(file)
        values = parse_inputs(workflow, inputs, input_file)
        result = run_workflow_from_config(workflow, values, demo=demo or None)
    except ConfigInputError as exc:
        raise _refuse(exc) from None
    except ConfigError as exc:
        raise _fail("Invalid workflow", exc, 1) from None
    except WorkflowInputError as exc:
        raise _fail("Invalid inputs", exc, 2) from None
    except ProviderError as exc:
        raise _fail("Provider not available", exc, 2) from None
    except (NodeOutputError, WorkflowTimeoutError) as exc:
        raise _fail("Workflow failed", exc, 1) from None

    def table(console: Console) -> None:
        for name, value in result.node_outputs.items():
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            console.print(f"== {name} ==\n{text}\n", markup=False, soft_wrap=True)
        console.print(summary_line(result), markup=False, soft_wrap=True)

    emit(fmt, target, data=lambda: _result_data(result), table=table,
         csv_text=lambda: _outputs_csv(result))


# `run --output json` / `-o text` chose a format before the convention made -o a file.
_OLD_OUTPUT_FORMATS = {"json": Format.json, "text": Format.table}


def _outputs_csv(result: WorkflowResult) -> str:
    from configurable_agents.commands.options import to_csv

    data = _result_data(result)
    return to_csv({"workflow": data["workflow"], **data["run"], "outputs": data["outputs"]})


def validate(
    file: Path = typer.Argument(..., help="Workflow YAML file."),
    fmt: Format = FORMAT,
    output: Path | None = OUTPUT,
) -> None:
    """Check a workflow file (schema and references) without running it."""
    from configurable_agents.config.loader import ConfigError, ConfigInputError
    from configurable_agents.config.workflow import load_workflow
    from configurable_agents.runtime.providers import demo_requested, provider_problem

    check_output(output)
    try:
        workflow = load_workflow(file)
    except ConfigInputError as exc:
        raise _refuse(exc) from None
    except ConfigError as exc:
        raise _fail("Invalid workflow", exc, 1) from None
    mlflow_cfg = workflow.config.mlflow
    observability = (
        f"mlflow on ({mlflow_cfg.display_tracking_uri}, experiment {mlflow_cfg.experiment_name})"
        if mlflow_cfg and mlflow_cfg.enabled
        else "off"
    )
    problems: list[str] = []
    if not demo_requested():
        providers = sorted({workflow.node_llm(n).provider for n in workflow.nodes})
        problems = [p for p in map(provider_problem, providers) if p]
    data = {
        "file": str(file), "valid": True, "workflow": workflow.flow.name,
        "version": workflow.flow.version, "nodes": [n.id for n in workflow.nodes],
        "required_inputs": list(workflow.required_inputs), "observability": observability,
        "notes": problems,
    }
    line = (
        f"OK {file}: {workflow.flow.name} {workflow.flow.version}, "
        f"{len(workflow.nodes)} nodes ({', '.join(n.id for n in workflow.nodes)}), "
        f"required inputs: {', '.join(workflow.required_inputs) or 'none'}, "
        f"observability: {observability}"
    )
    emit(fmt, output, data=lambda: data,
         table=lambda console: console.print(line, markup=False, soft_wrap=True))
    for problem in problems:
        _err.print(Text.assemble(("note: ", "yellow"), problem), soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``validate`` to the top-level CLI."""
    app.command("run")(run)
    app.command("validate")(validate)
