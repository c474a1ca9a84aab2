"""Group Analytics: who a payment's company is, the company totals' rule, what /groups receives, and the client.

The totals rule must give the same company profile whatever order and however often the facts arrive; the
client is checked over HTTP against the local Mixpanel, which validates `/groups` against Mixpanel's spec.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from revenue_webhooks import providers
from revenue_webhooks.config import from_environ
from revenue_webhooks.domain import catalog as c
from revenue_webhooks.domain.facts import Fact, Identity, ProfileEffect
from revenue_webhooks.domain.identity import resolve
from revenue_webhooks.domain.money import Money
from revenue_webhooks.domain.outcomes import Outcome
from revenue_webhooks.domain.totals import apply_company, company_key
from revenue_webhooks.mixpanel.client import Backoff, Credentials, MixpanelClient
from revenue_webhooks.mixpanel.rendering import group_update, mixpanel_event, profile_update

from devstack.mixpanel import DEMO_CREDENTIALS, Fault, MixpanelServer

GROUPS = from_environ({"MODE": "any", "GROUP_KEY": "company_id"})
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stripe"


# ---- who the company is ------------------------------------------------------------------------------


def test_a_company_metadata_key_names_the_company_and_outranks_the_fallback() -> None:
    with_customer = replace(GROUPS, company_fallback="customer")
    assert resolve(with_customer, [{"company_id": "acme"}], customer="cus_1").company == "acme"
    assert resolve(with_customer, [{"user_id": "u"}], customer="cus_1").company == "cus_1"
    assert resolve(GROUPS, [{"user_id": "u"}], customer="cus_1").company is None
    on_account = replace(GROUPS, company_fallback="account")
    assert resolve(on_account, [{}], customer="cus_1", account="acct_9").company == "acct_9"
    assert resolve(replace(GROUPS, company_id_keys=("org",)), [{"org": "o-1", "company_id": "x"}]).company == "o-1"


def test_without_a_group_key_no_company_is_kept() -> None:
    off = from_environ({"COMPANY_FALLBACK": "customer"})
    assert resolve(off, [{"company_id": "acme"}], customer="cus_1").company is None


def test_group_key_and_fallback_are_validated() -> None:
    with pytest.raises(ValueError, match="GROUP_KEY"):
        from_environ({"GROUP_KEY": "$company"})
    with pytest.raises(ValueError, match="COMPANY_FALLBACK"):
        from_environ({"COMPANY_FALLBACK": "team"})


# ---- the totals rule -----------------------------------------------------------------------------------


def fact(key: str, t: int, *, minor: int = 0, refunds: int = 0, **effect: Any) -> Fact:
    money = Money(minor, "USD") if minor else None
    profile = ProfileEffect(purchases=1 if minor > 0 else 0, refunds=refunds, revenue=money, **effect)
    return Fact(
        key=f"stripe:{key}",
        event=c.PURCHASE_COMPLETED,
        time=t,
        identity=Identity(company="acme"),
        money=money,
        profile=profile,
    )


HISTORY = [
    fact("payment:in_1", 1_700_000_000, minor=1000, plan="Basic", status="active", quantity=3),
    fact("payment:in_2", 1_700_000_100, minor=2500),
    fact("refund:re_1", 1_700_000_200, minor=-500, refunds=1),
    # Two state changes in the same second: the larger fact key wins, whatever the order.
    fact("subscription-change:sub_1:evt_a", 1_700_000_300, plan="Pro", quantity=5),
    fact("subscription-change:sub_1:evt_b", 1_700_000_300, plan="Team", quantity=8),
    fact("payment:in_3", 1_700_000_400, minor=4000, status="past_due"),
]


def company_totals(facts: list[Fact]) -> dict[str, Any]:
    """What the ledger keeps: each fact applied once, in arrival order (a duplicate is recorded already)."""
    totals: dict[str, Any] = {}
    seen: set[str] = set()
    for one in facts:
        if one.key not in seen:
            seen.add(one.key)
            totals = apply_company(totals, one)
    return totals


def test_company_totals_sum_members_and_keep_first_and_last_purchase() -> None:
    totals = company_totals(HISTORY)
    update = group_update("acme", totals, GROUPS, "tok")
    assert update["$group_key"] == "company_id" and update["$group_id"] == "acme"
    assert update["$set"] == {
        "Purchase Count": 3,
        "Refund Count": 1,
        "Lifetime Revenue USD": 70.0,
        "Subscription Status": "past_due",
        "Plan": "Team",
        "Seats": 8,
        "First Purchase Date": "2023-11-14T22:13:20",
        "Last Purchase Date": "2023-11-14T22:20:00",
    }
    assert not {"user_id", "customer", "email"} & set(totals)  # who paid is the members' business


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), copies=st.integers(1, 3))
def test_company_totals_are_the_same_in_any_order_and_under_duplication(seed: int, copies: int) -> None:
    rng = random.Random(seed)
    delivered = [one for one in HISTORY for _ in range(rng.randint(1, copies))]
    rng.shuffle(delivered)
    expected = group_update("acme", company_totals(HISTORY), GROUPS, "tok")
    assert group_update("acme", company_totals(delivered), GROUPS, "tok") == expected


# ---- what Mixpanel receives ----------------------------------------------------------------------------


def stripe_checkout(metadata: dict[str, str]) -> dict[str, Any]:
    event = json.loads((FIXTURES / "checkout.session.completed.payment_mode.json").read_text())
    event["data"]["object"].update(metadata=metadata, customer="cus_acme_1", payment_intent="pi_acme_1")
    return event


def test_events_carry_the_group_key_and_user_profiles_name_their_company() -> None:
    (purchase,) = providers.get_provider("stripe", GROUPS).map(_queued(stripe_checkout({"company_id": "acme"})))
    assert isinstance(purchase, Fact) and company_key(purchase) == "acme"
    assert mixpanel_event(purchase, GROUPS)["properties"]["company_id"] == "acme"
    assert "company_id" not in mixpanel_event(purchase, from_environ({"MODE": "any"}))["properties"]
    totals = {"user_id": "user-1", "company": "acme", "purchases": 1}
    assert profile_update(totals, GROUPS, "tok")["$set"]["company_id"] == "acme"  # type: ignore[index]


def _queued(event: dict[str, Any]) -> Any:
    from revenue_webhooks.domain.webhook import QueuedEvent

    return QueuedEvent("stripe", event["id"], event["type"], 1_700_000_000_000, json.dumps(event).encode())


@pytest.fixture
def mixpanel() -> Iterator[MixpanelServer]:
    with MixpanelServer() as running:
        yield running


def client(url: str) -> MixpanelClient:
    token_only = Credentials(project_token=DEMO_CREDENTIALS.project_token)
    return MixpanelClient(url, token_only, timeout=(1.0, 2.0), backoff=Backoff(0.01, 0.05, (0.0, 0.01)))


def test_the_client_sends_groups_strict_and_verbose_within_the_spec(mixpanel: MixpanelServer) -> None:
    updates = [group_update(f"co-{n}", {"purchases": n}, GROUPS, DEMO_CREDENTIALS.project_token) for n in range(3)]
    assert [r.outcome for r in client(mixpanel.url).update_groups(updates)] == [Outcome.DELIVERED] * 3
    assert mixpanel.groups()[("company_id", "co-2")] == {"Purchase Count": 2, "Refund Count": 0}
    (sent,) = mixpanel.requests_log("/groups")
    assert sent["query"] == {"verbose": "1", "strict": "1", "ip": "0"}
    assert mixpanel.spec_violations() == []


def test_a_refused_group_update_fails_alone_and_the_rest_of_its_batch_is_sent_again(mixpanel: MixpanelServer) -> None:
    token = DEMO_CREDENTIALS.project_token
    good = group_update("acme", {"purchases": 1}, GROUPS, token)
    bad = {**group_update("globex", {"purchases": 1}, GROUPS, token), "$group_id": ""}
    results = client(mixpanel.url).update_groups([good, bad])
    assert [r.outcome for r in results] == [Outcome.DELIVERED, Outcome.INVALID]
    assert results[1].detail == "Groups API error: $group_id, missing or empty"
    assert list(mixpanel.groups()) == [("company_id", "acme")]
    assert len(mixpanel.requests_log("/groups")) == 2


def test_group_updates_go_in_requests_of_at_most_2000(mixpanel: MixpanelServer) -> None:
    token = DEMO_CREDENTIALS.project_token
    updates = [group_update(f"co-{n}", {"purchases": 1}, GROUPS, token) for n in range(2001)]
    results = client(mixpanel.url).update_groups(updates)
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 2001
    assert [r["records"] for r in mixpanel.requests_log("/groups")] == [2000, 1]
    assert len(mixpanel.groups()) == 2001


def test_a_throttled_groups_request_is_transient(mixpanel: MixpanelServer) -> None:
    mixpanel.faults.push(Fault.rate_limited(path="/groups"))
    update = group_update("acme", {"purchases": 1}, GROUPS, DEMO_CREDENTIALS.project_token)
    assert [r.outcome for r in client(mixpanel.url).update_groups([update])] == [Outcome.TRANSIENT]
