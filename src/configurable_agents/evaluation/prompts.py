"""Workflow prompts in MLflow's Prompt Registry (``observability.mlflow.register_prompts``).

One registered prompt per workflow node, named ``<workflow>.<node>``; a new version is
registered only when no version has the same template text, so running a workflow again
reuses the version it has, even after another workflow version registered a newer one
(evaluating v1 and v2 twice gives versions 1 and 2, not 3 and 4). The ``prompt_template_sha`` /
``prompts_sha`` params stay on the runs; the registry adds history, diffs and the run
page's "Registered prompts" links.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from mlflow import MlflowClient

from configurable_agents.config.workflow import WorkflowConfig
from configurable_agents.names import Param

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.-]")


def prompt_name(workflow: str, node_id: str) -> str:
    """Prompt names allow letters, digits, '-', '_' and '.': anything else becomes '_'."""
    return _NOT_ALLOWED.sub("_", f"{workflow}.{node_id}")


def register_workflow_prompts(client: MlflowClient, workflow: WorkflowConfig,
                              redact: Callable[[str], str] = str) -> list[Any]:
    """Register (or reuse) each node's prompt template; returns the versions in node order.

    Templates are registered as ``redact`` leaves them (the handler's redactor when
    ``redact_pii`` is on): a key or an e-mail pasted into a prompt stays out of the registry.
    """
    versions = []
    for node in workflow.nodes:
        name = prompt_name(workflow.flow.name, node.id)
        template = redact(node.prompt)
        existing = _version_with_text(client, name, template)
        if existing is not None:
            versions.append(existing)
            continue
        versions.append(client.register_prompt(
            name=name,
            template=template,
            commit_message=f"{workflow.flow.name} {workflow.flow.version}: node {node.id}",
            tags={Param.WORKFLOW_NAME: workflow.flow.name,
                  Param.WORKFLOW_VERSION: workflow.flow.version,
                  Param.NODE_ID: node.id,
                  "prompt_template_sha": node.prompt_template_sha},
        ))
    return versions


def _version_with_text(client: MlflowClient, name: str, template: str) -> Any | None:
    """The newest version of prompt ``name`` whose template is ``template``, or None."""
    latest = client.load_prompt(f"prompts:/{name}@latest", allow_missing=True)
    if latest is None or latest.template == template:
        return latest
    best, token = None, None
    while True:
        page = client.search_prompt_versions(name, max_results=100, page_token=token)
        for version in page:
            if version.template == template and (best is None or
                                                 int(version.version) > int(best.version)):
                best = version
        token = page.token
        if not token:
            return best


def link_prompts(client: MlflowClient, run_ids: Iterable[str], versions: list[Any]) -> None:
    """Show the versions under "Registered prompts" on each run's page."""
    for run_id in run_ids:
        for version in versions:
            client.link_prompt_version_to_run(run_id, version)
