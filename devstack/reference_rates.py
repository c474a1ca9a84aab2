"""The local reference-rates stand-in: the ECB's two files, in the ECB's published format, on 127.0.0.1.

    with ReferenceRatesServer() as rates:           # REFERENCE_RATES_URL=rates.url + "/"
        ...
    ReferenceRatesServer(document=published_bytes)  # serve a real published file as it is (the tests)

It serves `eurofxref-hist-90d.xml` and `eurofxref-hist.xml` as the ECB does (GET, `application/xml`, the
`gesmes:Envelope` of the eurofxref vocabulary, one `<Cube time=...>` a TARGET business day, newest first;
tests/fixtures/ecb/SOURCES.md describes the format). Without a `document`, the rates are stand-in values:
the ECB's real table of 2024-06-28 (a published `eurofxref-daily.xml`), repeated for every business day
from 2005 to today, so that a local stack converts any sample's day. Nothing is fetched from the ECB; an
event's `Exchange Rate Date` then names the stand-in's day, and its rate is that one table's.
GET only; any other path answers 404, as the ECB's site does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

from .http_server import ClosingHTTPServer, LocalServer

# The ECB's euro reference rates of 2024-06-28 (units per euro), as published in eurofxref-daily.xml.
STAND_IN_RATES = {
    "USD": "1.0705", "JPY": "171.94", "BGN": "1.9558", "CZK": "25.025", "DKK": "7.4575", "GBP": "0.84638",
    "HUF": "395.10", "PLN": "4.3090", "RON": "4.9773", "SEK": "11.3595", "CHF": "0.9634", "ISK": "148.90",
    "NOK": "11.3965", "TRY": "35.1868", "AUD": "1.6079", "BRL": "5.8915", "CAD": "1.4670", "CNY": "7.7748",
    "HKD": "8.3594", "IDR": "17487.21", "ILS": "4.0200", "INR": "89.2495", "KRW": "1474.86", "MXN": "19.5654",
    "MYR": "5.0501", "NZD": "1.7601", "PHP": "62.560", "SGD": "1.4513", "THB": "39.319", "ZAR": "19.4970",
}  # fmt: skip
STAND_IN_FIRST_DAY = date(2005, 1, 3)
FILES = ("eurofxref-hist-90d.xml", "eurofxref-hist.xml")
HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" '
    'xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">\n\t<gesmes:subject>Reference rates</gesmes:subject>'
    "\n\t<gesmes:Sender>\n\t\t<gesmes:name>European Central Bank</gesmes:name>\n\t</gesmes:Sender>\n\t<Cube>\n"
)
TAIL = "\t</Cube>\n</gesmes:Envelope>\n"


def stand_in_document(first: date, last: date) -> bytes:
    """An ECB-format file with the stand-in table on every weekday from `last` back to `first`."""
    cubes = "".join(f"\t\t\t<Cube currency='{code}' rate='{rate}'/>\n" for code, rate in STAND_IN_RATES.items())
    days = []
    day = last
    while day >= first:
        if day.weekday() < 5:
            days.append(f"\t\t<Cube time='{day.isoformat()}'>\n{cubes}\t\t</Cube>\n")
        day -= timedelta(days=1)
    return (HEAD + "".join(days) + TAIL).encode()


class ReferenceRatesServer(LocalServer):
    """The stand-in on 127.0.0.1 (port 0: any free one); `requests` counts the files served."""

    thread_name = "local-reference-rates"

    def __init__(self, *, port: int = 0, document: bytes | None = None) -> None:
        super().__init__()
        self.host, self.port = "127.0.0.1", port
        self.document = document
        self.requests: list[str] = []
        self.down = False  # answer 503, as a feed that is unreachable for a while
        self._lock = threading.Lock()
        self._made: dict[str, bytes] = {}

    @property
    def base_url(self) -> str:
        """What REFERENCE_RATES_URL is set to."""
        return self.url + "/"

    def file(self, name: str) -> bytes:
        if self.document is not None:
            return self.document
        today = datetime.now(UTC).date()
        with self._lock:
            key = f"{name}@{today}"
            if key not in self._made:
                first = today - timedelta(days=90) if name == FILES[0] else STAND_IN_FIRST_DAY
                self._made = {key: stand_in_document(first, today)}
            return self._made[key]

    def _handler_and_app(self) -> tuple[type[BaseHTTPRequestHandler], Any]:
        return _Handler, self


@dataclass
class LocalRates:
    """Where a local stack's reference rates come from: none without a reporting currency, the source
    REFERENCE_RATES_URL names (the ECB's own, or a mirror), else the stand-in, started here."""

    server: ReferenceRatesServer | None = None
    url: str = ""  # REFERENCE_RATES_URL for the forwarder; "" is the layer's default (the ECB)
    description: str = "no ReportingCurrency: nothing converted"  # how the banner and the demo say it

    @classmethod
    def start_for(cls, stack: Any) -> LocalRates:
        """For a `devstack.stack.LocalStack` whose template parameters are set (ReportingCurrency)."""
        if not stack.template.parameters.get("ReportingCurrency", ""):
            return cls()
        given = stack.options.environ.get("REFERENCE_RATES_URL", "").strip()
        if given:
            return cls(None, given, f"{given} (REFERENCE_RATES_URL)")
        server = ReferenceRatesServer().start()
        rates = cls(
            server, server.base_url, f"local ECB stand-in at {server.base_url} (the ECB's 2024-06-28 table daily)"
        )
        stack._listen_on_bridge(server, server.port, "the ECB stand-in")
        return rates

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def environment(self) -> dict[str, str]:
        """The forwarder's variables."""
        return {"REFERENCE_RATES_URL": self.url} if self.url else {}

    def moved(self, host: str) -> dict[str, str]:
        """The stand-in's address as a `sam local` container reaches it (devstack/sam_env.py)."""
        return {self.server.url: f"http://{host}:{self.server.port}"} if self.server is not None else {}

    def banner_line(self, currency: str) -> str:
        return f"Reporting currency {currency or '(none)'}: rates from {self.description}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "devstack-reference-rates/1"
    server: ClosingHTTPServer

    def do_GET(self) -> None:
        app: ReferenceRatesServer = self.server.app
        name = self.path.split("?", 1)[0].removeprefix("/")
        app.requests.append(name)
        if app.down:
            self._answer(503, b"unavailable", "text/plain")
        elif name in FILES:
            self._answer(200, app.file(name), "application/xml")
        else:
            self._answer(404, b"not found", "text/plain")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass
