"""What became of an event, a profile update or a whole queue message: the four fates every message ends in."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    INVALID = "invalid"  # refused for what it is: never retry it, dead-letter it with the reason
    TRANSIENT = "transient"  # 429, 5xx, timeout, connection, a fact waiting for another: retry later
    CONFIG = "config"  # 401/403/404: the deployment is misconfigured; retry the whole batch


@dataclass(frozen=True, slots=True)
class Result:
    """What happened to one event or profile update, with what an operator needs to act."""

    outcome: Outcome
    reason: str = ""
    detail: str = ""
    field: str = ""


DELIVERED = Result(Outcome.DELIVERED)

# Which outcome a message takes when its events fare differently: an invalid event dead-letters the
# message (a retry would send it again), a configuration error outranks a transient one.
SEVERITY = {Outcome.DELIVERED: 0, Outcome.TRANSIENT: 1, Outcome.CONFIG: 2, Outcome.INVALID: 3}


def worst(current: Result | None, new: Result) -> Result:
    """The worse of two results (the first of equals): a message is only as good as its worst event."""
    if current is None or SEVERITY[new.outcome] > SEVERITY[current.outcome]:
        return new
    return current
