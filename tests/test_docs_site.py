"""The docs site (issue #29): builds with --strict, offline, and its recipes run.

``mkdocs build --strict`` fails on a broken link or anchor, a page missing from the nav or a
warning from a hook; the reference pages are generated from the code at build time, so the
build also proves they match the CLI and the config schema of this tree.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from configurable_agents.cli import app
from tests.test_readme_commands import command_paths

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1",
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_reference_pages_list_every_command_and_config_block(site: Path) -> None:
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    for path in command_paths(typer.main.get_command(app)):
        assert f"configurable-agents {' '.join(path)}" in cli, path
    assert "--json" not in cli, "hidden aliases stay out of the reference"
    config = (site / "reference" / "config" / "index.html").read_text(encoding="utf-8")
    for key in ("config.observability.mlflow", "tracking_uri",
                "CONFIGURABLE_AGENTS_MLFLOW_TRACKING_URI"):
        assert key in config, key


def test_search_works_offline(site: Path) -> None:
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    assert any("total_cost_usd" in doc["text"] for doc in index["docs"])
    for page in site.rglob("*.html"):
        fetched = re.findall(r'(?:src|href)="(https?://[^"]+\.(?:js|css|woff2?))"',
                             page.read_text(encoding="utf-8"))
        assert not fetched, f"{page} loads {fetched} from the network"


def test_try_it_offline_recipe_runs(tmp_path: Path) -> None:
    """docs/testing.md's recipe, as printed, in its own process."""
    text = (REPO / "docs" / "testing.md").read_text(encoding="utf-8")
    recipe = re.search(r"```python\n(.*?)```", text, re.S)
    assert recipe is not None
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", recipe.group(1)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    inputs, outputs, cost = done.stdout.split()
    assert (float(inputs), float(outputs)) == (32.0, 11.0)
    assert float(cost) > 0


def test_readme_links_to_docs_pages_that_exist() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert links
    for link in links:
        assert (REPO / link).exists(), link
