"""The controller framework: level-based reconcilers driven by informers and a work queue.

See `controller` (the worker loop and its three outcomes), `expectations` (no second create
before the first is observed) and `manager` (informers and controllers started together).
"""

from kubeling.reconcile.controller import (
    Controller,
    Reconciler,
    own_key,
    owner_keys,
    owner_or_adopters,
)
from kubeling.reconcile.expectations import Expectations
from kubeling.reconcile.manager import Manager
from kubeling.reconcile.result import Result, TerminalError

__all__ = [
    "Controller",
    "Expectations",
    "Manager",
    "Reconciler",
    "Result",
    "TerminalError",
    "own_key",
    "owner_keys",
    "owner_or_adopters",
]
