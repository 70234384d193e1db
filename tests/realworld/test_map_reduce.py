"""Map-reduce with ``Send``: one generate task per subject, then a reduce step.

Adapted from langchain-ai/langgraph ``libs/langgraph/tests/test_pregel.py``
(``test_send_sequences`` / ``test_send_dedupe_on_resume``: conditional edges returning
``Send`` objects) and the map-reduce how-to ``docs/docs/how-tos/graph-api.md``
("Map-Reduce and the Send API").
"""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from tests.realworld.harness import ReportingModel, check, handler_for


class Overall(TypedDict, total=False):
    topic: str
    subjects: list[str]
    jokes: Annotated[list[str], operator.add]
    best: str


def test_send_map_reduce(mlflow_store, experiment_name, mlflow_client):
    model = ReportingModel(script=["joke"], input_tokens=25, output_tokens=7)

    def subjects(state: Overall) -> Overall:
        return {"subjects": [f"{state['topic']}-{i}" for i in range(5)]}

    def joke(state: dict) -> Overall:
        return {"jokes": [f"{state['subject']} {model.invoke(state['subject']).content}"]}

    def best(state: Overall) -> Overall:
        return {"best": sorted(state["jokes"])[0]}

    builder = StateGraph(Overall)
    builder.add_node("subjects", subjects)
    builder.add_node("joke", joke)
    builder.add_node("best", best)
    builder.add_edge(START, "subjects")
    builder.add_conditional_edges(
        "subjects", lambda s: [Send("joke", {"subject": x}) for x in s["subjects"]], ["joke"]
    )
    builder.add_edge("joke", "best")
    builder.add_edge("best", END)
    handler = handler_for(mlflow_store, experiment_name)

    out = builder.compile().invoke({"topic": "owls"}, {"callbacks": [handler]})

    assert out["best"] == "owls-0 joke" and len(out["jokes"]) == 5
    logged = check(mlflow_client, experiment_name, handler, calls=1, tokens=(125, 35))
    assert logged.node_ids(logged.parent) == ["best", *["joke"] * 5, "subjects"]
    assert model.reported == (125, 35)
