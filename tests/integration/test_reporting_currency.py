"""The reporting currency over real protocols: the ECB's published file from a local HTTP server, the rate cache in
DynamoDB (moto's server), the whole pipeline into the local Mixpanel, and a replay once the cache is warm.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from harness import Pipeline
from revenue_webhooks.adapters.rate_cache import DynamoDbRateCache
from revenue_webhooks.adapters.reference_rates import EcbReferenceRates, parse_reference_rates
from revenue_webhooks.domain.fx import RateTable
from revenue_webhooks.service.ports import RatesUnavailable
from stripe_story import Story

from devstack.aws import MotoServer
from devstack.reference_rates import ReferenceRatesServer

ECB_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "ecb" / "eurofxref-hist-90d.2020-12-10.xml"
NOV_2 = 1_604_300_000  # 2020-11-02 UTC


@pytest.fixture
def published() -> Iterator[ReferenceRatesServer]:
    with ReferenceRatesServer(document=ECB_FILE.read_bytes()) as server:
        yield server


# ---- the ECB source over HTTP ---------------------------------------------------------------------


def test_an_old_day_asks_for_the_whole_history_a_recent_one_for_ninety_days(published: ReferenceRatesServer) -> None:
    source = EcbReferenceRates(published.base_url, timeout_s=5)
    tables = source.tables(["2020-12-01"])
    assert len(tables) == 64 and tables[0].per_euro["USD"] == Decimal("1.2115")
    recent = (datetime.now(UTC).date() - timedelta(days=3)).isoformat()
    source.tables([recent])
    assert published.requests == ["eurofxref-hist.xml", "eurofxref-hist-90d.xml"]


def test_an_unreachable_or_foreign_source_is_rates_unavailable(published: ReferenceRatesServer) -> None:
    published.down = True
    with pytest.raises(RatesUnavailable, match="503"):
        EcbReferenceRates(published.base_url, timeout_s=5).tables(["2020-12-01"])
    published.down = False
    with pytest.raises(RatesUnavailable, match="404"):
        EcbReferenceRates(published.url + "/elsewhere/nothing/", timeout_s=5).tables(["2020-12-01"])
    with ReferenceRatesServer(document=b"<html>maintenance</html>") as foreign, pytest.raises(RatesUnavailable):
        EcbReferenceRates(foreign.base_url, timeout_s=5).tables(["2020-12-01"])


# ---- the cache in DynamoDB -----------------------------------------------------------------------


def test_the_first_table_kept_for_a_day_stays_in_dynamodb() -> None:
    with MotoServer() as moto:
        db = boto3.client("dynamodb", endpoint_url=moto.endpoint, region_name="us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local")  # fmt: skip
        db.create_table(
            TableName="ledger",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        cache = DynamoDbRateCache("ledger", db)
        tables = parse_reference_rates(ECB_FILE.read_bytes())
        first, second = tables[0], tables[1]
        assert cache.rate_tables("ecb", ["2020-12-12"]) == {}
        assert cache.keep_rate_tables("ecb", {"2020-12-12": first}) == {"2020-12-12": first}
        # A second forwarder that fetched later keeps nothing new: every rendering uses the first table.
        assert cache.keep_rate_tables("ecb", {"2020-12-12": second}) == {"2020-12-12": first}
        assert cache.rate_tables("ecb", ["2020-12-12", "2020-12-13"]) == {"2020-12-12": first}
        item = db.get_item(TableName="ledger", Key={"pk": {"S": "rates#ecb#2020-12-12"}})["Item"]
        assert RateTable.from_json(json.loads(item["table"]["S"])) == first


# ---- the pipeline ------------------------------------------------------------------------------


def eur_history() -> list[dict[str, Any]]:
    s = Story(customer="cus_eur", user_id="user-eur", start=NOV_2)
    sub = s.subscription("sub_eur_int", unit_amount=4900, currency="eur")
    events = [s.subscription_created(sub)]
    s.clock += 86_400 * 2
    events.append(s.checkout("cs_eur_int", 2500, "eur", payment_intent="pi_eur_int"))
    return events


def usd(eur_minor: int, usd_per_eur: Decimal) -> float:
    return float((Decimal(eur_minor) / 100 * usd_per_eur).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def test_the_pipeline_converts_at_the_ecb_rate_and_a_replay_after_a_fresh_ledger_renders_the_same_bytes(
    published: ReferenceRatesServer,
) -> None:
    pipeline = Pipeline(parameters={"ReportingCurrency": "USD"}, extra_env={"REFERENCE_RATES_URL": published.base_url})
    try:
        for event in eur_history():
            assert pipeline.post_stripe(json.dumps(event).encode())["statusCode"] == 200
        assert pipeline.drain(60)
        first = {e["event"]: e for e in pipeline.mixpanel.events()}
        rates = {t.published: t.per_euro["USD"] for t in parse_reference_rates(ECB_FILE.read_bytes())}
        started, purchase = first["Subscription Started"]["properties"], first["Purchase Completed"]["properties"]
        assert started["MRR (USD)"] == usd(4900, rates[started["Exchange Rate Date"]])
        assert purchase["Revenue (USD)"] == usd(2500, rates[purchase["Exchange Rate Date"]])
        assert published.requests == ["eurofxref-hist.xml"], "one fetch served both days"
        profile = pipeline.mixpanel.profiles()["user-eur"]
        assert (
            profile["MRR (USD)"] == started["MRR (USD)"]
            and profile["Lifetime Revenue (USD)"] == purchase["Revenue (USD)"]
        )

        # A fresh ledger (every fact forgotten) with the rate cache kept, and the source gone: same bytes.
        table = pipeline.resources.refs["LedgerTable"]
        items = pipeline.dynamodb.scan(TableName=table)["Items"]
        for item in items:
            if not item["pk"]["S"].startswith("rates#"):
                pipeline.dynamodb.delete_item(TableName=table, Key={"pk": item["pk"]})
        published.down = True
        before = len(pipeline.mixpanel.raw_events())
        for event in eur_history():
            assert pipeline.post_stripe(json.dumps(event).encode())["statusCode"] == 200
        assert pipeline.drain(60)
        replayed = pipeline.mixpanel.raw_events()[before:]
        assert sorted(json.dumps(e, sort_keys=True) for e in replayed) == sorted(
            json.dumps(e, sort_keys=True) for e in first.values()
        )
        assert pipeline.dead_letters() == []
    finally:
        pipeline.close()
