"""Test helpers shipped with kubeling: real servers on temporary dirs and free ports."""

from kubeling.testing.cluster import TestCluster, pinned_kubectl, wait_for

__all__ = ["TestCluster", "pinned_kubectl", "wait_for"]
