"""Optimize a DSPy program with BootstrapFewShot and log it all to MLflow, offline.

    python examples/dspy_optimize.py            # then: mlflow ui --backend-store-uri sqlite:///mlflow.db

A real ``dspy.LM`` (LiteLLM engine) talks to a tiny OpenAI-compatible server on
loopback that answers in DSPy's format and reports usage like OpenAI does, so the
tokens and cost are exact and nothing leaves the machine. The stand-in model only
answers correctly when the prompt carries examples, so the optimizer visibly helps.
Three runs land in the ``dspy-optimize`` experiment: the baseline evaluation, the
optimization (its trials, tokens and cost, scores, optimized program, diff) and the
optimized evaluation (evaluation runs, one workflow run per valset example). It
prints what the optimization cost and the baseline vs optimized compare line, the
same as ``configurable-agents report compare --baseline <id> --candidate <id>``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM: no price fetch

import dspy
from mlflow import MlflowClient

from configurable_agents.config import MLFlowConfig
from configurable_agents.evaluation.dspy_optimize import track_optimization
from configurable_agents.names import Metric
from configurable_agents.observability.dspy_tracking import MLflowDSPyCallback
from configurable_agents.reports.quality import compare_evaluations

CAPITALS = {"France": "Paris", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
            "Egypt": "Cairo", "Peru": "Lima", "Kenya": "Nairobi"}
USAGE = {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
         "prompt_tokens_details": {"cached_tokens": 20},
         "completion_tokens_details": {"reasoning_tokens": 10}}


class _StandInModel(BaseHTTPRequestHandler):
    """OpenAI Chat Completions on loopback: DSPy-formatted answers, OpenAI-shaped usage."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
        messages = body.get("messages") or []
        last = str(messages[-1].get("content") if messages else "")
        country = re.findall(r"capital of (\w+)", last)
        answer = CAPITALS.get(country[-1], "unknown") if country and len(messages) > 2 else (
            "unknown")
        fields = [f for f in dict.fromkeys(re.findall(r"\[\[ ## (\w+) ## \]\]", last))
                  if f != "completed"] or ["answer"]
        text = "\n\n".join([*(f"[[ ## {f} ## ]]\n{answer}" for f in fields),
                            "[[ ## completed ## ]]"])
        data = json.dumps({
            "id": "chatcmpl-local", "object": "chat.completion", "created": 0,
            "model": body.get("model", "gpt-4o"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": USAGE,
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def examples(countries: list[str]) -> list[dspy.Example]:
    return [dspy.Example(question=f"What is the capital of {c}?", answer=CAPITALS[c])
            .with_inputs("question") for c in countries]


def exact_answer(example: Any, prediction: Any, trace: Any = None) -> bool:
    return str(getattr(prediction, "answer", "")).strip() == example.answer


def main(tracking_uri: str = "sqlite:///mlflow.db", experiment: str = "dspy-optimize") -> Any:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandInModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    lm = dspy.LM("openai/gpt-4o", api_base=f"http://{host}:{port}/v1", api_key="local",
                 cache=False, engine="litellm")
    callback = MLflowDSPyCallback(
        MLFlowConfig(enabled=True, tracking_uri=tracking_uri, experiment_name=experiment)
    )
    optimizer = dspy.BootstrapFewShot(metric=exact_answer, max_bootstrapped_demos=2,
                                      max_labeled_demos=2, max_rounds=1)
    try:
        with dspy.context(lm=lm):
            result = track_optimization(
                optimizer, dspy.ChainOfThought("question -> answer"),
                trainset=examples(["France", "Italy", "Spain"]),
                valset=examples(["Japan", "Egypt", "Peru", "Kenya"]),
                metric=exact_answer, callback=callback, name="capitals", num_threads=2,
            )
        callback.flush()
        optimization_run = callback.run_id_for(result.optimization_id)
    finally:
        callback.close()
        server.shutdown()
        server.server_close()
    print(f"baseline {result.baseline_score:.1f} -> optimized {result.optimized_score:.1f}")
    if optimization_run is not None:
        metrics = MlflowClient(tracking_uri).get_run(optimization_run).data.metrics
        print(f"optimization run {optimization_run}: {metrics[Metric.LLM_CALLS]:.0f} LM calls, "
              f"${metrics[Metric.TOTAL_COST_USD]:.6f}")
    quality = compare_evaluations(result.baseline.run_id, result.optimized.run_id,
                                  tracking_uri=tracking_uri, experiments=[experiment])
    if quality is not None:
        print(f"compare {result.baseline.run_id} -> {result.optimized.run_id}: {quality.verdict}")
    return result


if __name__ == "__main__":
    main(*sys.argv[1:3])
