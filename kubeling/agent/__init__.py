"""Node agents. `fake` holds simulated nodes (as kwok's): registered, heartbeating, running
every pod bound to them on paper only."""

from kubeling.agent.fake import FakeNode, FakeNodes

__all__ = ["FakeNode", "FakeNodes"]
