"""IntOrString values (Kubernetes' `intstr` package): a number, or a percentage of a total.

Shared by the Deployment controller (rolling update bounds) and the API server's pitfall
warnings, which must round exactly alike: maxSurge rounds up, maxUnavailable down.
"""

from __future__ import annotations

import math
from typing import Any


def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """An int-or-percent of `total`: "25%" of 10 is 3 rounded up, 2 rounded down."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            share = int(text[:-1]) * total / 100
            return math.ceil(share) if round_up else math.floor(share)
        return int(text)
    return int(value or 0)
