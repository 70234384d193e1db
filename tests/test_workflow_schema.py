"""Workflow file schema: what loads, and the exact errors for what does not."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from configurable_agents.config import ConfigError
from configurable_agents.config.loader import ConfigInputError
from configurable_agents.config.workflow import (
    MAX_NODES,
    load_workflow,
    parse_type,
    parse_workflow,
)
from configurable_agents.config.workflow_checks import find_cycle
from configurable_agents.config.workflow_sections import MAX_TYPE_DEPTH

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

BASE = """\
flow:
  name: demo_flow
  version: "1.0.0"
state:
  fields:
    topic: {type: str, required: true, description: What to write about}
    research: {type: str, default: ""}
    article: {type: str}
    word_count: {type: int, default: 0}
nodes:
  - id: research
    prompt: "Research {state.topic}"
    outputs: [research]
  - id: write
    prompt: "Write about {state.topic} using {state.research}"
    outputs: [article, word_count]
    output_schema:
      type: object
      fields:
        - {name: article, type: str}
        - {name: word_count, type: int}
edges:
  - {from: START, to: research}
  - {from: research, to: write}
  - {from: write, to: END}
"""


def load_text(tmp_path: Path, text: str):
    path = tmp_path / "wf.yaml"
    path.write_text(text, encoding="utf-8")
    return load_workflow(path, env=False)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    return str(info.value).replace(str(tmp_path / "wf.yaml"), "wf.yaml")


def test_examples_load_with_the_adr_settings() -> None:
    v1 = load_workflow(EXAMPLES / "article_writer.yaml", env=False)
    v2 = load_workflow(EXAMPLES / "article_writer_v2.yaml", env=False)
    assert (v1.flow.name, v1.flow.version, v2.flow.version) == ("article_writer", "1.0.0", "2.0.0")
    assert (v1.llm.provider, v1.llm.model, v1.llm.temperature) == (
        "google",
        "gemini-2.5-flash",
        0.7,
    )
    assert v1.config.mlflow is not None and v1.config.mlflow.enabled
    assert v1.config.mlflow.tracking_uri == "sqlite:///mlflow.db"
    assert v1.required_inputs == ["topic"]
    assert v1.output_fields == ["research", "article", "word_count"]
    assert [n.tools for n in v1.nodes] == [["web_search"], []]


def test_prompt_hashes_are_stable_and_tell_versions_apart() -> None:
    v1 = load_workflow(EXAMPLES / "article_writer.yaml", env=False)
    v2 = load_workflow(EXAMPLES / "article_writer_v2.yaml", env=False)
    write = v1.node("write")
    assert write.prompt_template_sha == hashlib.sha256(write.prompt.encode()).hexdigest()[:12]
    assert len(v1.prompts_sha) == 12
    assert v1.prompts_sha == load_workflow(EXAMPLES / "article_writer.yaml", env=False).prompts_sha
    assert v1.prompts_sha != v2.prompts_sha
    edited = v1.model_copy(
        update={"nodes": [v1.nodes[0], write.model_copy(update={"prompt": write.prompt + "!"})]}
    )
    assert edited.prompts_sha != v1.prompts_sha


def test_node_llm_overrides_only_the_keys_given(tmp_path: Path) -> None:
    text = (
        BASE.replace(
            "    outputs: [research]\n",
            "    outputs: [research]\n    llm: {model: gemini-2.5-pro, temperature: 0.1}\n",
        )
        + "config:\n  llm: {provider: google, model: gemini-2.5-flash, temperature: 0.7}\n"
    )
    wf = load_text(tmp_path, text)
    research, write = wf.nodes
    assert wf.node_llm(research).model_dump() == {
        "provider": "google",
        "model": "gemini-2.5-pro",
        "temperature": 0.1,
        "max_tokens": None,
    }
    assert wf.node_llm(write).model == "gemini-2.5-flash"


def test_fan_out_and_join_edges_load(tmp_path: Path) -> None:
    text = BASE.replace(
        "    outputs: [research]\n",
        '    outputs: [research]\n  - id: outline\n    prompt: "Outline {state.topic}"\n'
        "    outputs: [article]\n",
        1,
    )
    text = text.replace(
        "  - {from: START, to: research}\n  - {from: research, to: write}\n",
        "  - {from: START, to: [research, outline]}\n  - {from: [research, outline], to: write}\n",
    )
    # outline and write both write `article`, but never in the same step: allowed.
    wf = load_text(tmp_path, text)
    assert wf.edges[0].targets == ["research", "outline"]
    assert wf.edges[1].sources == ["research", "outline"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "Write about {state.topic} using {state.research}",
            "Write about {state.topic} using {state.reserch}",
            "wf.yaml:15: nodes.1.prompt: node 'write': prompt references unknown state field "
            "'reserch' (did you mean 'research'?); state fields: topic, research, article, "
            "word_count",
        ),
        (
            "Research {state.topic}",
            "Research {topic}",
            "wf.yaml:12: nodes.0.prompt: node 'research': prompt uses '{topic}'; write "
            "'{state.topic}' to insert the state field",
        ),
        (
            "    outputs: [research]\n",
            "    outputs: [findings]\n",
            "wf.yaml:13: nodes.0.outputs.0: node 'research': output 'findings' is not a state "
            "field; state fields: topic, research, article, word_count",
        ),
        (
            "  - {from: research, to: write}",
            "  - {from: research, to: writer}",
            "wf.yaml:24: edges.1.to: edge to unknown node 'writer' (did you mean 'write'?); "
            "nodes: research, write (and START, END)",
        ),
        (
            "    outputs: [research]\n",
            "    outputs: [research]\n    tools: [web_serch]\n",
            "wf.yaml:14: nodes.0.tools.0: node 'research': unknown tool 'web_serch' (did you "
            "mean 'web_search'?); available tools: calculator, web_search, word_count",
        ),
        (
            "        - {name: word_count, type: int}",
            "        - {name: word_count, type: float}",
            "wf.yaml:19: nodes.1.output_schema.fields.1: node 'write': output_schema field "
            "'word_count' is float but state field is int",
        ),
        (
            "        - {name: word_count, type: int}\n",
            "",
            "wf.yaml:19: nodes.1.output_schema.fields: node 'write': output 'word_count' has no "
            "field in output_schema",
        ),
        (
            "  - {from: write, to: END}",
            "  - {from: write, to: research}",
            "wf.yaml:11: nodes.0.id: node 'research' has no path to END; add an edge from it",
        ),
    ],
)
def test_reference_errors_name_line_node_and_field(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in BASE
    assert error_of(tmp_path, BASE.replace(old, new)).splitlines()[0] == expected


def test_every_unreachable_or_dead_end_node_is_listed(tmp_path: Path) -> None:
    text = BASE.replace("  - {from: research, to: write}\n", "")
    assert error_of(tmp_path, text) == (
        "wf.yaml:11: nodes.0.id: node 'research' has no path to END; add an edge from it\n"
        "wf.yaml:14: nodes.1.id: node 'write' is never reached from START; add an edge to it"
    )


def test_cycle_is_reported(tmp_path: Path) -> None:
    text = BASE.replace(
        "  - {from: write, to: END}", "  - {from: write, to: research}\n  - {from: write, to: END}"
    )
    assert error_of(tmp_path, text) == (
        "wf.yaml:22: edges: edges form a cycle: research -> write -> research; loops need "
        "conditional routing, which v0.1 does not have"
    )


def test_parallel_writes_to_one_field_are_rejected(tmp_path: Path) -> None:
    text = BASE.replace(
        "    outputs: [research]\n",
        '    outputs: [research]\n  - id: second\n    prompt: "Also {state.topic}"\n'
        "    outputs: [research]\n",
        1,
    ).replace(
        "  - {from: START, to: research}\n",
        "  - {from: START, to: [research, second]}\n  - {from: second, to: END}\n",
    )
    assert error_of(tmp_path, text) == (
        "wf.yaml:16: nodes.1.outputs: nodes 'research' and 'second' both follow 'START' and "
        "run in parallel, but both write state field 'research'"
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "    topic: {type: str,",
            "    topic: {type: string,",
            "wf.yaml:6: state.fields.topic.type: unsupported type 'string'; use one of: str, int, "
            "float, bool, list, dict, list[T], dict[str, T]",
        ),
        (
            "    word_count: {type: int, default: 0}",
            "    word_count: {type: int, default: many}",
            "wf.yaml:9: state.fields.word_count: default 'many' is not a valid int: Input should "
            "be a valid integer, unable to parse string as an integer",
        ),
        (
            "  - id: research\n",
            "  - id: research\n    promt: x\n",
            "wf.yaml:12: nodes.0: unknown key 'promt' (did you mean prompt?); valid keys are: "
            "description, id, llm, output_schema, outputs, prompt, tools",
        ),
        (
            "  - id: write\n",
            "  - id: END\n",
            "wf.yaml:14: nodes.1.id: 'END' is reserved for edges; pick another node id",
        ),
    ],
)
def test_field_errors_name_line_and_field(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in BASE
    assert error_of(tmp_path, BASE.replace(old, new)).splitlines()[0] == expected


def test_config_block_errors_use_the_global_schema(tmp_path: Path) -> None:
    text = BASE + "config:\n  execution: {timeout: 10, max_retries: 99}\n"
    assert error_of(tmp_path, text) == (
        "wf.yaml:27: config.execution.max_retries: Input should be less than or equal to 20 "
        "(got 99)"
    )


def test_parse_workflow_accepts_a_dict_and_yaml_numbers_as_versions() -> None:
    wf = parse_workflow(
        {
            "flow": {"name": "tiny", "version": 2.1},
            "state": {"fields": {"q": {"required": True}, "a": {}}},
            "nodes": [{"id": "answer", "prompt": "Answer {state.q}", "outputs": ["a"]}],
            "edges": [{"from": "START", "to": "answer"}, {"from": "answer", "to": "END"}],
        }
    )
    assert wf.flow.version == "2.1"
    assert wf.state.fields["q"].type == "str"


def test_parse_type_grammar() -> None:
    assert parse_type("list[int]") == list[int]
    assert parse_type("dict[str, list[str]]") == dict[str, list[str]]
    with pytest.raises(ValueError, match="unsupported type 'tuple'"):
        parse_type("tuple")
    with pytest.raises(ValueError, match=f"nests containers more than {MAX_TYPE_DEPTH} deep"):
        parse_type("list[" * (MAX_TYPE_DEPTH + 1) + "str" + "]" * (MAX_TYPE_DEPTH + 1))
    deepest = "list[" * MAX_TYPE_DEPTH + "int" + "]" * MAX_TYPE_DEPTH
    expected: object = int
    for _ in range(MAX_TYPE_DEPTH):
        expected = list[expected]  # type: ignore[valid-type]
    assert parse_type(deepest) == expected


# --- size limits: long workflows are checked without recursion, oversized ones refused ----


def chain_workflow(nodes: int) -> str:
    """A valid workflow text: START -> n0 -> n1 -> ... -> END, one node per step."""
    parts = [
        "flow: {name: long_chain}\n",
        "state:\n  fields:\n    topic: {type: str, required: true}\n    out: {type: str}\n",
        "config:\n  llm: {provider: demo}\n",
        "nodes:\n",
        *(f'  - {{id: n{i}, prompt: "Step {i} on {{state.topic}}", outputs: [out]}}\n'
          for i in range(nodes)),
        "edges:\n  - {from: START, to: n0}\n",
        *(f"  - {{from: n{i}, to: n{i + 1}}}\n" for i in range(nodes - 1)),
        f"  - {{from: n{nodes - 1}, to: END}}\n",
    ]
    return "".join(parts)


def test_a_chain_at_the_node_limit_loads(tmp_path: Path) -> None:
    # The checks walk the graph with their own stack: a chain longer than Python's
    # recursion limit (1000 frames) is fine.
    wf = load_text(tmp_path, chain_workflow(MAX_NODES))
    assert len(wf.nodes) == MAX_NODES
    assert wf.edges[-1].targets == ["END"]


def test_a_workflow_over_the_node_limit_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(chain_workflow(1_500), encoding="utf-8")
    with pytest.raises(ConfigInputError) as info:
        load_workflow(path, env=False)
    assert str(info.value) == (
        f"{path}: nodes: 1500 nodes, more than the limit of {MAX_NODES} per workflow; split it "
        "into smaller workflows"
    )


def test_a_long_cycle_is_found_without_recursion() -> None:
    size = 5_000
    succ = {f"n{i:04d}": {f"n{i + 1:04d}"} for i in range(size - 1)}
    succ[f"n{size - 1:04d}"] = {"n0000"}
    cycle = find_cycle(succ)
    assert cycle is not None
    assert (len(cycle), cycle[0], cycle[-1], cycle[1]) == (size + 1, "n0000", "n0000", "n0001")
    succ[f"n{size - 1:04d}"] = set()
    assert find_cycle(succ) is None
