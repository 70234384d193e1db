"""One module per CLI command group; ``configurable_agents.cli`` wires them together."""
