"""The layout rules of docs/ARCHITECTURE.md, checked on every test run.

import-linter enforces the one-way flow (capture -> facts -> sinks; the read side
apart) and the absence of import cycles; the other two rules are plain facts about
the source tree: no module over 500 lines, and the ADR's run names spelled only in
``configurable_agents/names.py``.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from configurable_agents import names

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "configurable_agents"
MAX_MODULE_LINES = 500


def test_import_linter_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is a dev dependency: pip install -e '.[dev]'"
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout


def test_no_module_is_over_500_lines() -> None:
    too_long = {
        str(path.relative_to(SRC)): n
        for path in SRC.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not too_long, f"split these by concept: {too_long}"


# Names we coined, so a literal elsewhere is a second spelling. Others (input_tokens,
# workflow_name, ...) are also LangChain usage keys or invocation metadata keys, which
# code rightly spells where it reads them.
_OURS = ("total_", "global_", "node_", "configurable_agents.", "duration_seconds",
         "retry_count", "time_to_first_token_ms", "cached_input_tokens")

_SHARED = frozenset({"total_tokens", "node_id"})  # LangChain's usage key; a span attribute


def _adr_names() -> set[str]:
    """Names users rely on that are distinctive enough to spot as string literals."""
    values: set[str] = set()
    for group in (names.Param, names.Metric, names.Tag, names.Artifact):
        for key, value in vars(group).items():
            if key.isupper() and isinstance(value, str) and value.startswith(_OURS) \
                    and value not in _SHARED:
                values.add(value)
    return values


def test_adr_names_are_spelled_only_in_names_py() -> None:
    adr_names = _adr_names()
    offenders: list[str] = []
    for path in SRC.rglob("*.py"):
        if path == SRC / "names.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value in adr_names
                and id(node) not in docstrings
            ):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.value!r}")
    assert not offenders, "use configurable_agents.names instead:\n" + "\n".join(offenders)
