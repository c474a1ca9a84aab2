"""Builds a container's objects once: the only module that knows every concrete class.

The handlers call `receiver()` or `lanes()` at init (or in SnapStart's snapshot) and on every
invocation; each is built once per container from the settings, the boto3 clients (one per service,
one session), the secrets cache and the providers, and reused by warm invocations. The local stack and
the tests call `reset()` when they start a handler against new endpoints in the same process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from . import observability, providers
from .adapters import aws as aws_clients
from .adapters.checkpoints import DynamoDbCheckpoints
from .adapters.dynamodb_ledger import DynamoDbLedger
from .adapters.google_play import GooglePlayApi
from .adapters.mixpanel_relay import MixpanelRelay
from .adapters.rate_cache import DynamoDbRateCache
from .adapters.reference_rates import EcbReferenceRates
from .adapters.secrets import Secrets
from .adapters.sqs import QueueSender
from .adapters.stripe_api import is_api_key, stripe_client
from .adapters.stripe_events import StripeEventList
from .adapters.stripe_payments import StripePayments
from .adapters.stripe_settlements import StripeSettlements
from .config import ConfigError, Settings, settings
from .mixpanel.client import Backoff, Credentials, MixpanelClient
from .providers.base import Provider
from .service.browser_proxy import BrowserProxy
from .service.catchup import CatchUp
from .service.forwarder import Forwarder
from .service.lanes import LIVE, TEST, Lanes
from .service.ports import PaymentLookup
from .service.receiver import Receiver
from .service.reporting import ReportingRates
from .service.settlements import Settlements

if TYPE_CHECKING:  # the reconcile's modules load in ReconcileFunction only, never in the receiver's cold start
    from .service.reconcile import Reconciler

# What each function calls, created at init so the first webhook does not wait for it.
RECEIVER_SERVICES = ("sqs", "secretsmanager")
FORWARDER_SERVICES = ("sqs", "secretsmanager", "dynamodb")
CATCH_UP_SERVICES = ("sqs", "secretsmanager", "dynamodb")


@cache
def aws(service: str) -> Any:
    """The container's boto3 client for `service` (sqs, dynamodb, secretsmanager), created once."""
    return aws_clients.client(service, _aws_session())


@cache
def _aws_session() -> Any:
    """One session for every client: credentials resolved once, botocore's loaded data shared between clients."""
    return aws_clients.session()


@cache
def queue() -> QueueSender:
    """SendMessage with SQS's MD5s checked: the receiver's webhooks and the forwarder's dead letters."""
    return QueueSender(aws("sqs"))


@cache
def secrets() -> Secrets:
    """Secrets Manager through Powertools' cache; each built-in route's secret named by its provider's variable."""
    environment = os.environ
    specs = providers.specs()
    route_secret_ids = {route: environment.get(spec.signing.variable, "") for route, spec in specs.items()}
    whole = frozenset(route for route, spec in specs.items() if spec.signing.whole)
    return Secrets(aws("secretsmanager"), route_secret_ids, settings().standard_webhooks_secrets_id, whole)


def provider_for(config: Settings) -> Callable[[str], Provider | None]:
    """route -> the provider serving it (None when no such route), for the services."""

    def lookup(route: str) -> Provider | None:
        return providers.get_provider(route, config)

    return lookup


@cache
def receiver() -> Receiver:
    """The container's receiver, with settings validated and every route's provider built."""
    config = _checked_settings()
    providers.prepare_all(config, with_libraries=snapshot_init())
    return Receiver(config, provider_for(config), secrets(), queue())


def lanes() -> Lanes:
    """What ForwarderFunction runs: the live lane, and the test lane when test-mode webhooks have their own queue."""
    config = _checked_settings()
    test = (lambda: forwarder(TEST)) if config.test_events_queue_url else None
    return Lanes(lambda: forwarder(LIVE), test, config.test_events_queue_url)


def forwarder(mode: str = LIVE) -> Forwarder:
    """A lane's forwarder; rebuilt when its Mixpanel credentials secret changes (read every five minutes).

    The live lane sends to MixpanelCredentials' project; the test lane to MixpanelTestCredentials', with its
    own ledger namespace ("test") and dead-letter queue.
    """
    config = _checked_settings()
    secret_id = config.mixpanel_test_credentials_id if mode == TEST else config.mixpanel_credentials_id
    credentials_json = secrets().string(secret_id)
    cached = _FORWARDERS.get((mode, credentials_json))
    if cached is None:
        credentials = Credentials.from_secret(credentials_json)
        if not credentials.project_token:
            observability.logger.warning(
                "Mixpanel credentials have no project_token: profiles (/engage, /groups) are not sent",
                extra={"mode": mode},
            )
        cached = Forwarder(
            config,
            provider_for(config),
            DynamoDbLedger(config.ledger_table, aws("dynamodb"), namespace="" if mode == LIVE else mode),
            mixpanel_client(config, credentials),
            queue(),
            credentials.project_token,
            mode=mode,
            dead_letter_queue_url=config.test_dead_letter_queue_url if mode == TEST else "",
            lookups=purchase_lookups(),
            payment_lookups=payment_lookups(),
            enrichers=[*stripe_settlements(), *([rates] if (rates := reporting_rates()) else [])],
        )
        for key in [key for key in _FORWARDERS if key[0] == mode]:
            del _FORWARDERS[key]
        _FORWARDERS[(mode, credentials_json)] = cached
    return cached


_FORWARDERS: dict[tuple[str, str], Forwarder] = {}


# ---- Stripe's API --------------------------------------------------------------------------------


def stripe_api_key() -> str:
    """The Stripe key: STRIPE_API_KEY (the CLI, the local stack), else the StripeApiKey secret (read through the
    secrets cache, so a new key takes effect within five minutes); "" when neither holds one ("none" included).

    Raises ConfigError for a value that is not a Stripe secret or restricted key, naming where it came from.
    """
    value, source = os.environ.get("STRIPE_API_KEY", "").strip(), "STRIPE_API_KEY"
    if not value:
        secret_id = settings().stripe_api_key_id
        value, source = (secrets().string(secret_id).strip() if secret_id else ""), "the StripeApiKey secret"
    if value.lower() in ("", "none"):
        return ""
    if not is_api_key(value):
        raise ConfigError(f"{source} holds no Stripe key: expected rk_live_..., rk_test_..., sk_live_... or none")
    return value


@cache
def stripe_settlements() -> list[Settlements]:
    """Stripe's fee and settlement on Stripe's payments and refunds, asked once a key is in StripeApiKey.

    First among the enrichers: a settlement in the reporting currency is Stripe's own conversion, which the
    reporting rates then take instead of a reference rate. A key that cannot be used turns the lookup off, loudly.
    """
    config = _checked_settings()
    if providers.get_provider("stripe", config) is None:
        return []

    def client() -> Any:
        try:
            key = stripe_api_key()
        except ConfigError:
            observability.logger.exception("the Stripe API key cannot be used: fees and settlements are off")
            observability.add("StripeApiKeyUnusable")
            return None
        return _stripe_client(key, config.stripe_api_base, config.stripe_timeout_s) if key else None

    return [Settlements("stripe", StripeSettlements(client))]


@cache
def payment_lookups() -> Callable[[str], PaymentLookup | None]:
    """provider -> its API for payments the ledger never saw: Stripe's, used only once a key is configured."""
    config = _checked_settings()
    stripe = providers.get_provider("stripe", config)
    lookup = StripePayments(stripe_api_key, config.stripe_api_base, stripe) if stripe else None

    def lookup_for(route: str) -> PaymentLookup | None:
        return lookup if route == "stripe" else None

    return lookup_for


def catch_up() -> CatchUp:
    """Catch-up for this invocation: built each time (cheap: clients and the key's secret are cached), so a key
    set, rotated or removed takes effect at the next run."""
    config = _checked_settings()
    stripe = providers.get_provider("stripe", config)
    if stripe is None:
        raise ConfigError("catch-up needs the stripe route")
    key = stripe_api_key()
    return CatchUp(
        config,
        stripe,
        list(providers.specs()["stripe"].produces),
        StripeEventList(_stripe_client(key, config.stripe_api_base, config.stripe_timeout_s)) if key else None,
        _lane_ledger(config),
        DynamoDbCheckpoints(config.ledger_table, aws("dynamodb")),
        queue(),
    )


def _lane_ledger(config: Settings) -> Callable[[bool], DynamoDbLedger]:
    """livemode -> the ledger its facts are in: the test lane's namespace for test-mode events that have a lane."""

    def ledger_for(livemode: bool) -> DynamoDbLedger:
        lane = TEST if not livemode and config.test_events_queue_url else LIVE
        return DynamoDbLedger(config.ledger_table, aws("dynamodb"), namespace="" if lane == LIVE else lane)

    return ledger_for


@cache
def _stripe_client(key: str, api_base: str, timeout_s: float) -> Any:
    return stripe_client(key, api_base, timeout_s=timeout_s)


@cache
def reporting_rates() -> ReportingRates | None:
    """The reporting currency's rates (ECB reference tables kept in the ledger's table); None when not configured."""
    config = _checked_settings()
    if not config.reporting_currency:
        return None
    return ReportingRates(
        config.reporting_currency,
        DynamoDbRateCache(config.ledger_table, aws("dynamodb")),
        EcbReferenceRates(config.reference_rates_url, config.rates_timeout_s),
    )


# The forwarder's variable naming the Play Developer API's service account key (secret GooglePlayCredentials).
GOOGLE_PLAY_CREDENTIALS_VARIABLE = "GOOGLEPLAY_CREDENTIALS_ID"


@cache
def purchase_lookups() -> GooglePlayApi | None:
    """The Play Developer API for Google Play's mappings, when the deployment names its credentials secret.

    Built without reading the secret: the key is read (through the secrets cache) at the first lookup.
    """
    secret_id = os.environ.get(GOOGLE_PLAY_CREDENTIALS_VARIABLE, "")
    if not secret_id:
        return None
    return GooglePlayApi(lambda: secrets().string(secret_id), _checked_settings().google_play_api_url)


def mixpanel_client(config: Settings, credentials: Credentials) -> MixpanelClient:
    """The ingestion client for these credentials, with the deployment's timeouts and backoff."""
    return MixpanelClient(
        config.mixpanel_base_url,
        credentials,
        timeout=(config.mixpanel_connect_timeout_s, config.mixpanel_read_timeout_s),
        backoff=Backoff(config.mixpanel_backoff_base_s, config.mixpanel_backoff_cap_s, config.mixpanel_jitter_s),
    )


@cache
def browser_proxy() -> BrowserProxy:
    """The container's browser proxy: the settings and a pooled connection to the residency's ingestion host."""
    config = settings()
    return BrowserProxy(config, MixpanelRelay(config.mixpanel_base_url))


def prepare_browser_proxy() -> None:
    """Init of BrowserProxyFunction: settings checked, the relay's session built (no connection opened yet)."""
    browser_proxy()
    register_snapstart_hooks()


# ---- the daily reconcile (ReconcileFunction) -----------------------------------------------------------

RECONCILER_SERVICES = ("secretsmanager", "dynamodb")
RECONCILE_CONCURRENCY = 8


def reconciler() -> Reconciler | None:
    """Stripe (the StripeApiKey secret), the ledger and Mixpanel's export, compared; None without a usable key.

    Built per invocation: it runs once a day, and the secrets may have changed since.
    """
    from .adapters.stripe_api import key_mode
    from .adapters.stripe_reader import RateLimiter, StripeReader, default_rate, read_all
    from .mixpanel.export import ExportClient, day, export_base_url
    from .service.reconcile import KINDS, Reconciler

    config = _checked_settings()
    key = stripe_api_key()
    if not key:
        observability.logger.warning(
            "no Stripe API key in StripeApiKey (STRIPE_API_KEY_ID): the daily reconcile is off; put a restricted "
            "key (rk_live_...) in the secret, docs/operations.md lists its read permissions"
        )
        return None
    # A test-mode key reads the test account: with a test lane, its project and ledger namespace are the test lane's.
    test_lane = key_mode(key) == "test" and bool(config.test_events_queue_url)
    secret_id = config.mixpanel_test_credentials_id if test_lane else config.mixpanel_credentials_id
    credentials = Credentials.from_secret(secrets().string(secret_id))
    exporter = ExportClient(export_base_url(config, config.mixpanel_export_url), credentials)
    reader = StripeReader(
        _stripe_client(key, config.stripe_api_base, config.stripe_timeout_s),
        RateLimiter(default_rate(key)),
        concurrency=RECONCILE_CONCURRENCY,
    )
    provider = providers.get_provider("stripe", config)
    assert provider is not None
    return Reconciler(
        config,
        provider,
        lambda since, until: read_all(reader, KINDS, since, until),
        lambda since, until, names: exporter.events(day(since), day(until - 1), names),
        DynamoDbLedger(config.ledger_table, aws("dynamodb"), namespace=TEST if test_lane else ""),
    )


def prepare_reconciler() -> None:
    """Init of ReconcileFunction: settings checked, clients built (no secret read before the first run)."""
    providers.prepare_all(_checked_settings(), with_libraries=False)
    _warm_up(RECONCILER_SERVICES)


def prepare_receiver() -> None:
    """Init of ReceiverFunction: settings checked, clients and providers built, SnapStart hook registered."""
    receiver()
    _warm_up(RECEIVER_SERVICES)


def prepare_forwarder() -> None:
    """Init of ForwarderFunction: settings checked, clients and providers built, SnapStart hook registered.

    The forwarder itself is built at the first batch: it needs the Mixpanel credentials secret, and no
    secret is read during init (it would be captured in a SnapStart snapshot).
    """
    providers.prepare_all(_checked_settings(), with_libraries=False)  # mapping needs no provider library
    _warm_up(FORWARDER_SERVICES)


def prepare_catch_up() -> None:
    """Init of CatchUpFunction: settings checked, clients built (no secret read: the key is read per run)."""
    _checked_settings()
    _warm_up(CATCH_UP_SERVICES)


@cache
def _checked_settings() -> Settings:
    config = settings()
    providers.validate(config)
    return config


def _warm_up(services: tuple[str, ...]) -> None:
    """Create the clients a function will use. Nothing is fetched: no connection is opened and no secret
    read before the first invocation, so a snapshot holds neither a stale socket nor a rotated secret."""
    for service in services:
        aws(service)
    queue()
    secrets()
    register_snapstart_hooks()


def snapshot_init() -> bool:
    """Whether this init is SnapStart's (done once per published version, then restored), not a cold start's.

    Lambda says so in `AWS_LAMBDA_INITIALIZATION_TYPE`; work that only some requests need (a provider's
    library) is then worth doing at init, since no webhook waits for it.
    """
    return os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start"


def after_restore() -> None:
    """Run by Lambda after a SnapStart restore: what must differ between environments made from one snapshot.

    `random`'s state is in the snapshot, so every restored environment would draw the same retry jitter
    (botocore's and Mixpanel's backoff): reseeded from the OS. Cached secret values are dropped so a
    restore never serves one older than the cache's five minutes; credentials need nothing (with SnapStart,
    Lambda hands them out through the container credentials endpoint, and botocore refreshes them).
    """
    import random

    random.seed()
    if secrets.cache_info().currsize:
        secrets().forget()


def register_snapstart_hooks() -> bool:
    """Register `after_restore` with Lambda's runtime hooks (once); False outside Lambda's Python runtime."""
    try:
        from snapshot_restore_py import register_after_restore  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # the local stack, the tests, or a runtime before Python 3.12
        return False
    if not _HOOKS_REGISTERED:
        register_after_restore(after_restore)
        _HOOKS_REGISTERED.append(True)
    return True


_HOOKS_REGISTERED: list[bool] = []


def reset() -> None:
    """Forget every per-container object (clients, secrets, settings, services), as a new container would.

    Lambda never needs this; the local stack and the tests call it when they start a handler against new
    endpoints in the same process.
    """
    from aws_lambda_powertools.utilities import parameters

    for cached in (
        aws,
        _aws_session,
        queue,
        secrets,
        receiver,
        browser_proxy,
        _checked_settings,
        purchase_lookups,
        payment_lookups,
        _stripe_client,
        reporting_rates,
        stripe_settlements,
    ):
        cached.cache_clear()
    _FORWARDERS.clear()
    _HOOKS_REGISTERED.clear()
    parameters.clear_caches()
    parameters.base.DEFAULT_PROVIDERS.clear()
    settings.cache_clear()
    providers.forget_instances()
