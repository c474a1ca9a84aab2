"""The ECB's euro foreign exchange reference rates, as published: the `RateSource` port over HTTPS.

The ECB publishes, every TARGET business day around 16:00 CET, how many units of ~30 currencies one euro
buys (https://www.ecb.europa.eu/stats/policy_and_exchange_rates/euro_reference_exchange_rates/), in
`eurofxref-hist-90d.xml` (the last 90 days) and `eurofxref-hist.xml` (since 1999), an XML envelope of
`<Cube time="YYYY-MM-DD">` elements holding `<Cube currency="USD" rate="1.0705"/>` ones (namespace
http://www.ecb.int/vocabulary/2002-08-01/eurofxref). One request serves every day a batch needs; the
service keeps the day's table in the ledger, so each day is fetched once. Currencies the ECB does not
publish (KWD, BHD, OMR and most others outside its ~30) get no reference rate: only a provider's own
conversion converts them (docs/providers.md, "Reporting currency").
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree  # nosec B405: see parse_reference_rates
from collections.abc import Collection
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

import requests

from ..domain.fx import ECB, MAX_TABLE_AGE_DAYS, RateTable
from ..service.ports import RateSource, RatesUnavailable

NAMESPACE = "{http://www.ecb.int/vocabulary/2002-08-01/eurofxref}"
RECENT_FILE = "eurofxref-hist-90d.xml"
HISTORY_FILE = "eurofxref-hist.xml"
RECENT_DAYS = 90 - MAX_TABLE_AGE_DAYS - 2  # days the 90-day file surely covers, with the table before them
MAX_BYTES = 32_000_000  # the whole history is ~8 MB (since 1999); anything far larger is not the ECB's file


class EcbReferenceRates(RateSource):
    """`RateSource` on the ECB's files under `base_url` (REFERENCE_RATES_URL: the ECB's, or a local stand-in)."""

    name = ECB

    def __init__(self, base_url: str, timeout_s: float = 10.0, session: requests.Session | None = None) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeout_s = timeout_s
        self.session = session or requests.Session()
        self.requests_sent = 0

    def tables(self, days: Collection[str]) -> list[RateTable]:
        """The 90-day file when it covers every day asked for, else the whole history."""
        today = datetime.now(UTC).date()
        oldest = min(date.fromisoformat(day) for day in days)
        name = RECENT_FILE if today - oldest <= timedelta(days=RECENT_DAYS) else HISTORY_FILE
        url = self.base_url + name
        self.requests_sent += 1
        try:
            response = self.session.get(url, timeout=(3.05, self.timeout_s), stream=True)
            response.raise_for_status()
            body = response.raw.read(MAX_BYTES + 1, decode_content=True)
        except requests.RequestException as error:
            raise RatesUnavailable(f"GET {url}: {type(error).__name__}: {error}") from error
        if len(body) > MAX_BYTES:
            raise RatesUnavailable(f"GET {url}: more than {MAX_BYTES} bytes")
        try:
            return parse_reference_rates(body)
        except ValueError as error:
            raise RatesUnavailable(f"GET {url}: {error}") from error


def parse_reference_rates(body: bytes) -> list[RateTable]:
    """Every day's table in an ECB reference-rates file; ValueError when it is not one.

    Parsed with the standard library: on Python 3.13 with Expat >= 2.4.1 ElementTree resolves no external
    entities and is not open to the billion-laughs or quadratic-blowup expansions (Python docs, "XML
    vulnerabilities"), and the body comes from the configured reference-rates host only.
    """
    try:
        root = ElementTree.fromstring(body)  # noqa: S314  # nosec B314: see the docstring
    except ElementTree.ParseError as error:
        raise ValueError(f"not XML: {error}") from error
    tables = []
    for day in root.iter(f"{NAMESPACE}Cube"):
        published = day.get("time")
        if published is None:
            continue
        try:
            date.fromisoformat(published)
            rates = {
                str(cube.get("currency")).upper(): Decimal(str(cube.get("rate")))
                for cube in day.findall(f"{NAMESPACE}Cube")
            }
        except (ValueError, InvalidOperation) as error:
            raise ValueError(f"unreadable table {published!r}: {error}") from error
        if any(len(code) != 3 or not code.isalpha() or value <= 0 for code, value in rates.items()):
            raise ValueError(f"unreadable table {published!r}: a currency code or rate is malformed")
        tables.append(RateTable(ECB, published, rates))
    if not tables:
        raise ValueError("no <Cube time=...> table: not an ECB reference-rates file")
    return tables
