"""Test helpers shipped with kubeling: real servers on temporary dirs and free ports."""

from kubeling.testing.cluster import TestCluster, eventually, pinned_kubectl, wait_for

__all__ = ["TestCluster", "eventually", "pinned_kubectl", "wait_for"]
