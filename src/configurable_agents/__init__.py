"""configurable-agents: MLflow observability for LangChain / LangGraph apps."""

__version__ = "0.1.0"
