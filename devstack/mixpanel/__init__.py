"""A local Mixpanel: `/import`, `/engage`, `/groups` and `/track` over real HTTP, validating the way Mixpanel documents.

One server, three uses, so what the tests check is what the local stack and the benchmarks run:
- the Mixpanel test server (tests reach Mixpanel only over HTTP, never by patching `requests`);
- the local stack's Mixpanel (`make dev`, port 3001), with a page at `/` to see what arrived;
- the benchmarks' Mixpanel, with a constant `latency_s`.

Every rule comes from Mixpanel's docs and OpenAPI spec (beside this file), as collected with sources in the
team's Mixpanel facts file; where the docs contradict each other the strictest reading wins, so code that
passes here does not fail against the real service.

The rooms, each importing only those listed before it:
- `auth`: credentials and how a request proves them;
- `rules`: Mixpanel's ingestion limits and validation, and what a profile update does (pure);
- `messages`: `Request`/`Reply` and Mixpanel's error shapes; `bodies`: request bodies decoded into records;
- `faults`: failures a test scripts for the next requests; `spec`: the check against the OpenAPI spec;
- `store`: SQLite; `ingestion`: what each endpoint does; `page`: the page's files and JSON;
- `projects`: one project's credentials, store and read API (a server hosts one or more);
- `http_adapter`: `http.server` in and out; `server`: `MixpanelServer`, its route table and lifecycle.
`python -m devstack.mixpanel` runs it alone (`__main__`).
"""

from .auth import DEMO_CREDENTIALS, DEMO_TEST_CREDENTIALS, Credentials
from .faults import HTTP_FAULT_STATUSES, RANDOM_FAULT_NAMES, Fault, FaultPlan
from .page import RevenueView
from .rules import (
    ENGAGE_OPERATIONS,
    MAX_EVENT_BYTES,
    MAX_EVENTS_PER_REQUEST,
    MAX_PROFILE_UPDATES_PER_REQUEST,
    MAX_REQUEST_BYTES,
    FailedRecord,
    apply_profile_update,
    event_time_ms,
    validate_event,
    validate_profile_update,
)
from .server import MixpanelServer
from .spec import SPEC_ALLOWANCES, SPEC_PATH, SpecChecker, spec_checker

__all__ = [
    "DEMO_CREDENTIALS",
    "DEMO_TEST_CREDENTIALS",
    "ENGAGE_OPERATIONS",
    "HTTP_FAULT_STATUSES",
    "MAX_EVENTS_PER_REQUEST",
    "MAX_EVENT_BYTES",
    "MAX_PROFILE_UPDATES_PER_REQUEST",
    "MAX_REQUEST_BYTES",
    "RANDOM_FAULT_NAMES",
    "SPEC_ALLOWANCES",
    "SPEC_PATH",
    "Credentials",
    "FailedRecord",
    "Fault",
    "FaultPlan",
    "MixpanelServer",
    "RevenueView",
    "SpecChecker",
    "apply_profile_update",
    "event_time_ms",
    "spec_checker",
    "validate_event",
    "validate_profile_update",
]
