"""The daemon-agent check-in channel: framing and messages, the daemon's server, the agent's client.

See docs/ipc.md for the model. The orchestrator uses `AgentServer`, `Session` and `ensure_agent`.
"""

from __future__ import annotations

from bootstrapper.ipc.protocol import Response
from bootstrapper.ipc.server import AgentServer, Limits, Session, ensure_agent

__all__ = ["AgentServer", "Limits", "Response", "Session", "ensure_agent"]
