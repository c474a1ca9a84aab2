"""The whole pipeline on a laptop: `make dev` and `make demo` run this, with no Docker and no AWS account.

Everything comes from template.yaml: moto (server mode, 127.0.0.1) gets the template's queues,
redrive policy, table and secrets; the template's HttpApi routes are served on 127.0.0.1 as payload
format 2.0 events to the real ReceiverFunction handler; an event source mapping with the template's
batch size, batching window and ReportBatchItemFailures feeds the real ForwarderFunction handler,
which sends to the built-in local Mixpanel (or to a real project when credentials are given). Local
choices are parameter overrides and a few variables, each said at start-up: MODE=any (test-mode
events count), a demo Standard Webhooks sender, and quiet function logs unless --verbose.
With SAM_LOCAL=1 (--sam-local), moto and the local Mixpanel also listen on docker's bridge, for
functions that `sam local` runs in containers, and .devstack/sam-env.json is their --env-vars file
(devstack.bridge, devstack.sam_env).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import boto3
from revenue_webhooks.service.envelope import from_record

from ops.arguments import secret_variable

from . import catch_up, local_stores, local_stripe
from .apigw import Exchange, HttpApi, Route
from .aws import REGION, MotoServer, provision
from .demo_sender import demo_sender_mapping
from .eventbridge import LOCAL_SOURCE, StripeEventDestination
from .function_output import FunctionOutput, NullLog
from .lambda_runtime import context_for, load_handler
from .reference_rates import LocalRates
from .samples import describe
from .stores import ROUTES as STORE_ROUTES
from .stores import Stores
from .template import TEMPLATE, Template

RECEIVER = "ReceiverFunction"
FORWARDER = "ForwarderFunction"
BROWSER_PROXY = "BrowserProxyFunction"
DEFAULT_PORT = 3000
DEFAULT_MIXPANEL_PORT = 3001
DEMO_GROUP_KEY = "company_id"  # Group Analytics in the local stack: the demo's payments name their company
SERVICE_ACCOUNT_ENV = ("MIXPANEL_PROJECT_ID", "MIXPANEL_SERVICE_ACCOUNT_USERNAME", "MIXPANEL_SERVICE_ACCOUNT_SECRET")
TOKEN_ENV = "MIXPANEL_PROJECT_TOKEN"
DEAD_LETTER_PEEK_LIMIT = 100
# Variables a developer's shell may hold that would send the local stack's boto3 calls elsewhere.
_FOREIGN_AWS = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


class StackError(Exception):
    """The local stack cannot start; the message says what to change."""


@dataclass
class Options:
    """How to run the stack; `from_environ` reads what `make dev` documents (PORT, MIXPANEL_PORT, ...)."""

    port: int = DEFAULT_PORT
    mixpanel_port: int = DEFAULT_MIXPANEL_PORT
    moto_port: int = 0
    state_dir: Path = Path(".devstack")
    template_path: Path = TEMPLATE
    parameters: dict[str, str] = field(default_factory=dict)
    stack_name: str = "local"
    verbose: bool = False
    environ: Mapping[str, str] = field(default_factory=dict)  # where secrets and Mixpanel credentials come from
    persist_secrets: bool = True
    sam_local: bool = False  # also listen on docker's bridge and write the `sam local --env-vars` file
    stripe: local_stripe.StripeOptions = field(default_factory=local_stripe.StripeOptions)  # the tools' Stripe account

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Options:
        def port(name: str, default: int) -> int:
            raw = environ.get(name, "").strip()
            if not raw:
                return default
            if not raw.isdigit() or not 0 <= int(raw) < 65536:
                raise StackError(f"{name}={raw!r}: expected a port number")
            return int(raw)

        state = environ.get("DEVSTACK_DIR", "").strip()
        return cls(
            port=port("PORT", DEFAULT_PORT),
            mixpanel_port=port("MIXPANEL_PORT", DEFAULT_MIXPANEL_PORT),
            moto_port=port("MOTO_PORT", 0),
            sam_local=environ.get("SAM_LOCAL", "").strip().lower() in ("1", "true", "yes", "on"),
            state_dir=Path(state) if state else TEMPLATE.parent / ".devstack",
            environ=dict(environ),
        )


@dataclass
class Tally:
    """What happened to the webhooks, for `make demo` and the tests."""

    accepted: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    retried: int = 0


class LocalStack:
    """The template's resources on moto, its functions in this process, its API on 127.0.0.1, one console line per step."""

    def __init__(self, options: Options, out: TextIO | None = None) -> None:
        self.options = options
        self.out = out or sys.stdout
        self.tally = Tally()
        self._print_lock = threading.Lock()
        self._settled = threading.Condition()
        self._peek_lock = threading.Lock()
        self._reported_dead: set[str] = set()
        self._saved_environ: dict[str, str] | None = None
        self._function_output: FunctionOutput | None = None
        self._saved_stdout: TextIO = sys.stdout
        self.function_log: Path | None = None
        self.api: HttpApi | None = None
        self.moto: MotoServer | None = None
        self.mixpanel: Any = None  # devstack.mixpanel.MixpanelServer when local
        self.stripe: local_stripe.LocalStripe | None = None
        self.esm: Any = None
        self.catch_up: catch_up.CatchUpSchedule | None = None
        self.esms: list[Any] = []  # one per SQS event source of the forwarder: EventsQueue, EventsTestQueue
        self.proxy_routes: list[Route] = []  # the browser proxy's, when BrowserProxyOrigins turns it on
        self.browser_proxy: Any = None
        self.dead_letter_urls: list[str] = []  # their dead-letter queues, in the same order
        self.webhook_secrets: dict[str, str] = {}
        self.secret_sources: dict[str, str] = {}
        self.mixpanel_description = ""
        self.rates = LocalRates()  # the reporting currency's reference rates (devstack/reference_rates.py)
        self.stores: Stores | None = None  # the app stores' signer, issuer and API (devstack/stores)
        self.stripe_events: StripeEventDestination | None = None  # Stripe's EventBridge destination, on moto
        self.eventbridge_sent = 0  # Stripe events the demo also put on the partner bus
        self._instance = secrets.token_hex(3)
        self.container_route: Any = None  # devstack.bridge.ContainerRoute with SAM_LOCAL
        self.sam_env_path: Path | None = None

    # ---- start and stop ------------------------------------------------------------------

    def start(self) -> LocalStack:
        """Bind the ports first (a busy port is the commonest failure), then AWS, Mixpanel, functions."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        options = self.options
        options.state_dir.mkdir(parents=True, exist_ok=True)
        self._find_container_route()
        self._saved_environ = dict(os.environ)
        for name in [*_FOREIGN_AWS, *(n for n in os.environ if n.startswith("AWS_ENDPOINT_URL_"))]:
            os.environ.pop(name, None)
        os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
        if not options.verbose:
            # The functions print JSON logs and EMF metrics to stdout, as on Lambda: here they go to a file
            # (before the layer's logger is created, which keeps the stream it is given).
            self.function_log = options.state_dir / "functions.log"
            self._function_output = FunctionOutput(self.function_log)
            self._saved_stdout, sys.stdout = sys.stdout, self._function_output
            warnings.filterwarnings("ignore", message="No application metrics to publish")

        self.template = Template(options.template_path, parameters=self._parameters())
        self.stripe = local_stripe.start_for(options, StackError)  # a second's work: before the API's port answers
        routes = {Route(method, path): self._invoke_receiver for method, path in self.template.http_routes(RECEIVER)}
        if not routes:
            raise StackError(f"{RECEIVER} has no HttpApi event in {options.template_path.name}")
        self.proxy_routes = [
            Route(method, path)
            for method, path in self.template.http_routes(BROWSER_PROXY)
            if BROWSER_PROXY in self.template.resources and self.template.condition_holds(BROWSER_PROXY)
        ]
        routes.update(dict.fromkeys(self.proxy_routes, self._invoke_browser_proxy))
        try:
            self.api = HttpApi(routes, port=options.port, on_exchange=self._on_exchange)
        except OSError as error:
            raise StackError(f"port {options.port} is not free ({error.strerror}): set PORT to another one") from None

        credentials, api_url = self._mixpanel_target()
        self.stores = Stores(options.state_dir / "stores").start(f"{self.api.url}/webhooks/googleplay")
        self.moto = MotoServer(options.moto_port).start()
        self._listen_on_bridge(self.moto, self.moto.port, "moto")
        if self.stripe is not None and self.stripe.server is not None:  # the forwarder's fee lookups, catch-up
            self._listen_on_bridge(self.stripe.server, self.stripe.server.port, "the local Stripe API")
        self.webhook_secrets = self._webhook_secrets()
        secret_ids = self._secret_logical_ids()
        secret_values = {
            secret_ids[route]: value for route, value in self.webhook_secrets.items() if route in secret_ids
        }
        senders = {route: value for route, value in self.webhook_secrets.items() if route not in secret_ids}
        secret_values[self._ref(RECEIVER, "STANDARD_WEBHOOKS_SECRETS_ID")] = json.dumps(senders)
        secret_values[self._ref(FORWARDER, "MIXPANEL_CREDENTIALS_ID")] = json.dumps(credentials)
        secret_values.update(self.stores.forwarder_secrets())
        if api_url is None:
            from .mixpanel import DEMO_TEST_CREDENTIALS

            test_secret = self._ref(FORWARDER, "MIXPANEL_TEST_CREDENTIALS_ID")
            secret_values[test_secret] = json.dumps(DEMO_TEST_CREDENTIALS.secret_value())
        secret_values.update(catch_up.secret_values(self, self._ref(FORWARDER, "STRIPE_API_KEY_ID")))
        self.resources = provision(
            self.template, self.moto.endpoint, stack=options.stack_name, secret_values=secret_values
        )
        session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=REGION)
        self.sqs = session.client("sqs", endpoint_url=self.moto.endpoint)
        self.source = self.template.sqs_event_source(FORWARDER, self.resources.resolve)
        self.queue_url = self.resources.queue_url(self.source.queue)
        self.queue_attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["All"])[
            "Attributes"
        ]
        self.dead_letter_queue = self._dead_letter_queue_id()
        self.dead_letter_url = self.resources.queue_url(self.dead_letter_queue)
        self.stripe_events = StripeEventDestination(self.template, self.moto.endpoint, self.resources).provision()

        # The test lane's queue and dead letters (used when TestEventsTo=test-project), as the template declares.
        self.sources = self.template.sqs_event_sources(FORWARDER, self.resources.resolve)
        self.dead_letter_urls = [self.dead_letter_url] + [
            self.resources.queue_url(self._dead_letter_queue_id(source.queue)) for source in self.sources[1:]
        ]
        if api_url is None:
            from .mixpanel import DEMO_CREDENTIALS, DEMO_TEST_CREDENTIALS, MixpanelServer

            self.mixpanel = MixpanelServer(
                port=options.mixpanel_port,
                db_path=str(options.state_dir / "mixpanel.sqlite"),
                credentials=DEMO_CREDENTIALS,
                dead_letters=self.dead_letters,
                more_projects=[DEMO_TEST_CREDENTIALS],
                reconcile=lambda: local_stripe.reconcile_report(self),
            )
            try:
                self.mixpanel.start()
            except OSError as error:
                raise StackError(
                    f"port {options.mixpanel_port} is not free ({error.strerror}): set MIXPANEL_PORT to another one"
                ) from None
            api_url = self.mixpanel.url
            self._listen_on_bridge(self.mixpanel, self.mixpanel.port, "the local Mixpanel")
            self.mixpanel_description = (
                f"local, page {self.mixpanel.url}/ (data in {_shown(options.state_dir / 'mixpanel.sqlite')}); "
                f"production project {DEMO_CREDENTIALS.project_id}, test project {DEMO_TEST_CREDENTIALS.project_id}"
                f" ({self.mixpanel.url}/?project={DEMO_TEST_CREDENTIALS.project_id})"
            )

        self.rates = LocalRates.start_for(self)
        self._load_functions(api_url)
        self._write_sam_env()
        self.catch_up = catch_up.start(self, self.moto.environment())
        from .esm import EventSourceMapping

        self.esms = [
            EventSourceMapping(
                self.sqs,
                self.resources.queue_url(source.queue),
                self.resources.attributes[(source.queue, "Arn")],
                self._invoke_forwarder,
                lambda: context_for(self.template, FORWARDER),
                batch_size=source.batch_size,
                batching_window_s=source.batching_window_s,
                report_batch_item_failures=source.report_batch_item_failures,
                on_batch=self._on_batch,
            ).start()
            for source in self.sources
        ]
        self.esm = self.esms[0]
        self.api.start()

    def stop(self) -> None:
        """Stop what was started, newest first; the environment of this process is restored."""
        for part in (
            self.api,
            self.catch_up,
            *self.esms,
            self.mixpanel,
            self.stores,
            self.rates,
            self.moto,
            self.stripe,
        ):
            try:
                if part is not None:
                    part.stop()
            except Exception as error:  # keep stopping the rest
                self.say(f"stop: {type(error).__name__}: {error}", stream=sys.stderr)
        self.api = self.esm = self.moto = self.stores = self.stripe = self.catch_up = None  # Mixpanel's data stays
        self.esms = []
        _forget_clients()
        if self._saved_environ is not None:
            os.environ.clear()
            os.environ.update(self._saved_environ)
            self._saved_environ = None
        if self._function_output is not None:
            if sys.stdout is self._function_output:
                sys.stdout = self._saved_stdout
            self._function_output.detach_file()
            self._function_output = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- configuration -------------------------------------------------------------------

    def _parameters(self) -> dict[str, str]:
        """Template parameter overrides of the local stack, like `sam deploy --parameter-overrides`."""
        parameters = {"Mode": "any", "GroupKey": DEMO_GROUP_KEY}
        if self._real_mixpanel():  # a real project was named and no test project: test events go to it
            parameters["TestEventsTo"] = "production"
        region = self.options.environ.get("MIXPANEL_REGION", "").strip().upper()
        if region:
            parameters["MixpanelRegion"] = region
        parameters["StandardWebhooksMapping"] = json.dumps(demo_sender_mapping())
        # Stripe's EventBridge destination, on moto; its own name per stack (moto keeps one state per process).
        parameters["StripeEventSourceName"] = f"{LOCAL_SOURCE}{self._instance}"
        origins = self.options.environ.get("BROWSER_PROXY_ORIGINS", "").strip()
        if origins:  # the pages that may use the browser proxy (README, "Browser proxy")
            parameters["BrowserProxyOrigins"] = origins
        parameters["ReportingCurrency"] = self.options.environ.get("REPORTING_CURRENCY", "USD").strip().upper()
        parameters.update(self.options.parameters)
        return parameters

    @property
    def senders(self) -> list[str]:
        """Standard Webhooks senders configured by the StandardWebhooksMapping parameter."""
        try:
            mapping = json.loads(self.template.parameters.get("StandardWebhooksMapping") or "{}")
        except ValueError:
            return []
        return sorted(mapping) if isinstance(mapping, dict) else []

    @property
    def providers(self) -> list[str]:
        """Every route a webhook can be posted to: the built-in providers, then the senders."""
        from revenue_webhooks.providers import specs

        return [*specs(), *self.senders]

    def _ref(self, function_id: str, variable: str) -> str:
        """The logical id a function's variable references (`!Ref StripeWebhookSecret`), from the template."""
        ref = self.template.variables(function_id).get(variable)
        if not (isinstance(ref, dict) and "Ref" in ref):
            raise StackError(f"{function_id}: {variable} is not a !Ref in the template ({ref!r})")
        return str(ref["Ref"])

    def _secret_logical_ids(self) -> dict[str, str]:
        """Each built-in route's secret resource, as the receiver's variable references it in the template."""
        from revenue_webhooks.providers import specs

        return {route: self._ref(RECEIVER, spec.signing.variable) for route, spec in specs().items()}

    def _dead_letter_queue_id(self, queue: str | None = None) -> str:
        queue = queue or self.source.queue
        policy = self.template.properties(queue).get("RedrivePolicy") or {}
        target = policy.get("deadLetterTargetArn")
        if isinstance(target, dict) and "Fn::GetAtt" in target:
            return str(target["Fn::GetAtt"][0])
        raise StackError(f"{queue} has no RedrivePolicy naming a dead-letter queue in the template")

    def _real_mixpanel(self) -> bool:
        """Whether the environment names a real Mixpanel project (then there is no local test project)."""
        env = self.options.environ
        return any(env.get(name, "").strip() for name in (*SERVICE_ACCOUNT_ENV, TOKEN_ENV))

    def _webhook_secrets(self) -> dict[str, str]:
        """Each route's signing secret: the environment's (STRIPE_WEBHOOK_SECRET...), else one kept in state_dir."""
        from revenue_webhooks.providers import specs

        path = self.options.state_dir / "secrets.json"
        kept: dict[str, str] = {}
        if self.options.persist_secrets and path.is_file():
            try:
                kept = {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
            except (ValueError, AttributeError):
                kept = {}
        chosen: dict[str, str] = {}
        for route in [*specs(), *self.senders]:
            if route in STORE_ROUTES and self.stores is not None:  # asymmetric: what the stores' stand-ins trust
                chosen[route] = self.stores.receiver_secrets()[route]
                self.secret_sources[route] = {
                    "appstore": "AppStoreConfig: the app the local test chain signs for (devstack/stores)",
                    "googleplay": "GooglePlayPushConfig: the push the local issuer's tokens are for (devstack/stores)",
                }[route]
                continue
            given = self.options.environ.get(secret_variable(route), "").strip()
            if given:
                chosen[route], self.secret_sources[route] = given, f"from {secret_variable(route)}"
            else:
                chosen[route] = kept.get(route) or generate_secret(route)
                kept[route] = chosen[route]
                kept_in = f", kept in {_shown(path)}" if self.options.persist_secrets else ""
                self.secret_sources[route] = f"generated{kept_in}; {secret_variable(route)} overrides"
        if self.options.persist_secrets:
            path.write_text(json.dumps(kept, indent=2) + "\n")
            path.chmod(0o600)
        return chosen

    def _mixpanel_target(self) -> tuple[dict[str, str], str | None]:
        """(MixpanelCredentials JSON, API URL) of a real project when the environment names one, else the local one."""
        env = self.options.environ
        service = {name: env.get(name, "").strip() for name in SERVICE_ACCOUNT_ENV}
        token = env.get(TOKEN_ENV, "").strip()
        if any(service.values()) and not all(service.values()):
            missing = [name for name, value in service.items() if not value]
            raise StackError(f"a Mixpanel service account needs {', '.join(SERVICE_ACCOUNT_ENV)}; missing {missing}")
        if not token and not all(service.values()):
            from .mixpanel import DEMO_CREDENTIALS

            return DEMO_CREDENTIALS.secret_value(), None
        credentials: dict[str, str] = {}
        if all(service.values()):
            credentials = {
                "project_id": service["MIXPANEL_PROJECT_ID"],
                "service_account_username": service["MIXPANEL_SERVICE_ACCOUNT_USERNAME"],
                "service_account_secret": service["MIXPANEL_SERVICE_ACCOUNT_SECRET"],
            }
        if token:
            credentials["project_token"] = token
        from revenue_webhooks.config import MIXPANEL_HOSTS

        url = env.get("MIXPANEL_API_URL", "").strip()
        region = self.template.parameters.get("MixpanelRegion", "US")
        host = url or MIXPANEL_HOSTS.get(region, MIXPANEL_HOSTS["US"])
        who = f"project {credentials['project_id']}" if "project_id" in credentials else "the token's project"
        profiles = "" if token else "; no MIXPANEL_PROJECT_TOKEN, so no profiles"
        self.mixpanel_description = f"REAL Mixpanel, {who} at {host}{profiles}"
        return credentials, url or host

    def _load_functions(self, mixpanel_url: str) -> None:
        """Each function's environment as the template resolves it, plus the local endpoints; then a cold start."""
        _forget_clients()
        os.environ["AWS_REGION"] = REGION
        resolve = self.resources.resolve
        local = {**(self.moto.environment() if self.moto else {}), **(self.stores.environment() if self.stores else {})}
        self.receiver_environment = {**self.template.function_environment(RECEIVER, resolve), **local}
        self.forwarder_environment = {
            **self.template.function_environment(FORWARDER, resolve),
            **local,
            "MIXPANEL_API_URL": mixpanel_url,
            **catch_up.function_variables(self),
            **self.rates.environment(),
        }
        from revenue_webhooks.config import ConfigError, from_environ

        try:
            if self.proxy_routes:
                self.proxy_environment = {
                    **self.template.function_environment(BROWSER_PROXY, resolve),
                    **local,
                    "MIXPANEL_API_URL": mixpanel_url,
                }
                self.browser_proxy = load_handler(self.template, BROWSER_PROXY, self.proxy_environment)
            self.receiver = load_handler(self.template, RECEIVER, self.receiver_environment)
            self.forwarder = load_handler(self.template, FORWARDER, self.forwarder_environment)
            self.receiver_settings = from_environ(self.receiver_environment)
            self.forwarder_settings = from_environ(self.forwarder_environment)
        except ConfigError as error:
            raise StackError(f"the functions refuse their configuration: {error}") from None

    # ---- sam local ------------------------------------------------------------------------

    def _find_container_route(self) -> None:
        """With SAM_LOCAL, where containers reach this machine; a stale --env-vars file goes either way."""
        from .bridge import BridgeError, container_route
        from .sam_env import ENV_FILE

        (self.options.state_dir / ENV_FILE).unlink(missing_ok=True)
        if not self.options.sam_local:
            return
        try:
            self.container_route = container_route(self.options.environ)
        except BridgeError as error:
            raise StackError(f"SAM_LOCAL: {error}") from None

    def _listen_on_bridge(self, server: Any, port: int, what: str) -> None:
        route = self.container_route
        if route is None or route.device is None:
            return
        from .bridge import bridge_socket

        try:
            server.listen_also(bridge_socket(route, port))
        except OSError as error:
            raise StackError(f"SAM_LOCAL: {what} cannot listen on {route.host}:{port} ({error.strerror})") from None

    def _write_sam_env(self) -> None:
        """The `--env-vars` file: each function's declared variables, local endpoints moved to the container route."""
        if self.container_route is None or self.moto is None:
            return
        from .sam_env import ENV_FILE, env_vars, write

        host = self.container_route.host
        moved = {self.moto.endpoint: f"http://{host}:{self.moto.port}"}
        if self.mixpanel is not None:
            moved[self.mixpanel.url] = f"http://{host}:{self.mixpanel.port}"
        moved.update(self.rates.moved(host))
        if self.stripe is not None and self.stripe.server is not None:
            moved[self.stripe.server.url] = f"http://{host}:{self.stripe.server.port}"
        environments = {RECEIVER: self.receiver_environment, FORWARDER: self.forwarder_environment}
        if self.proxy_routes:
            environments[BROWSER_PROXY] = self.proxy_environment
        self.sam_env_path = write(self.options.state_dir / ENV_FILE, env_vars(self.template, environments, moved))

    def _sam_local_lines(self) -> list[str]:
        if self.container_route is None or self.sam_env_path is None:
            return [
                "sam local (Docker): `make dev SAM_LOCAL=1` also listens where containers reach this machine and "
                'writes the --env-vars file (README "With Docker: sam local")'
            ]
        from .sam_env import SamCommands, native_architecture

        commands = SamCommands(_shown(self.sam_env_path), REGION, native_architecture())
        return [
            f"sam local (Docker): containers reach this stack at {self.container_route.describe()}; "
            f"--env-vars {_shown(self.sam_env_path)}",
            *(f"  {line}" for line in commands.lines(self.webhook_secrets.get("stripe", ""))),
        ]

    # ---- the functions -------------------------------------------------------------------

    def _invoke_receiver(self, event: dict[str, Any]) -> Any:
        return self.receiver(event, context_for(self.template, RECEIVER))

    def _invoke_browser_proxy(self, event: dict[str, Any]) -> Any:
        return self.browser_proxy(event, context_for(self.template, BROWSER_PROXY))

    def _invoke_forwarder(self, event: dict[str, Any], context: Any) -> Any:
        try:
            return self.forwarder(event, context)
        except Exception:  # Lambda logs the error and retries the whole batch; show the trace here
            self.say(f"{FORWARDER} failed (the batch will be retried):\n{traceback.format_exc()}", stream=sys.stderr)
            raise

    # ---- what flows ----------------------------------------------------------------------

    def _on_exchange(self, exchange: Exchange) -> None:
        response = exchange.response
        if exchange.route is None:
            why = json.loads(response.body or b"{}").get("message", "")
            routes = ", ".join(r.key for r in self.api_routes)
            self.say(f"← {exchange.method} {exchange.path}: {response.status} {why} (the API serves {routes})")
            return
        if exchange.route in self.proxy_routes:
            self.say(f"← browser {exchange.method} {exchange.path}: {response.status} (the browser proxy)")
            return
        route = exchange.path_parameters.get("provider", "?")
        event_type, event_id = describe(route, exchange.body, exchange.headers, self.receiver_settings)
        try:
            answer = json.loads(response.body or b"{}")
        except ValueError:
            answer = {}
        what = " ".join(part for part in (route, event_type, event_id) if part)
        status = answer.get("status") if isinstance(answer, dict) else None
        if response.status == 200 and status == "accepted":
            with self._settled:
                self.tally.accepted += 1
            self.say(f"← {what}: {response.status} received, enqueued")
        elif response.status == 200 and status == "ignored":
            self.say(f"← {what}: {response.status} received, ignored ({answer.get('reason', '')})")
        else:
            message = answer.get("error") or answer.get("message") or answer.get("status") or ""
            self.say(f"← {what}: {response.status} {message}")
        if exchange.error:
            self.say(f"{RECEIVER} failed:\n{exchange.error}", stream=sys.stderr)

    @property
    def api_routes(self) -> list[Route]:
        return list(self.api.routes) if self.api else []

    def _on_batch(self, records: list[dict[str, Any]], failed: set[str]) -> None:
        """One line per message of a forwarder batch: delivered (with its Mixpanel events), dead-lettered or retried."""
        dead = self._new_dead_letters()
        max_receive = json.loads(self.queue_attributes.get("RedrivePolicy") or "{}").get("maxReceiveCount", "?")
        for record in records:
            key, what = local_stores.described(record)
            attempt = (record.get("attributes") or {}).get("ApproximateReceiveCount", "?")
            if record["messageId"] in failed:
                with self._settled:
                    self.tally.retried += 1
                visibility = self.queue_attributes.get("VisibilityTimeout", "?")
                self.say(
                    f"↻ {what}: not delivered yet, retry after {visibility} s (attempt {attempt} of {max_receive})"
                )
            elif key in dead:
                letter = dead.pop(key)
                with self._settled:
                    self.tally.dead_lettered += 1
                    self._settled.notify_all()
                detail = f": {letter['detail']}" if letter.get("detail") and letter["detail"] != "-" else ""
                self.say(f"✗ {what}: dead-lettered ({letter['reason']}{detail})")
            else:
                names = self._mixpanel_events(record)
                with self._settled:
                    self.tally.delivered += 1
                    self._settled.notify_all()
                shown = ", ".join(names) if names else "nothing to count"
                where = "the test project" if self._from_test_queue(record) else "Mixpanel"
                local_stripe.say_delivered(self, key[1], names, f"→ {what}: delivered to {where}: {shown}")
        local_stripe.say_backfilled(self)

    def _from_test_queue(self, record: dict[str, Any]) -> bool:
        """Whether a record came from the test lane's queue (the forwarder's second SQS event source)."""
        return len(self.esms) > 1 and record.get("eventSourceARN") == self.esms[1].queue_arn

    def _mixpanel_events(self, record: dict[str, Any]) -> list[str]:
        """The event names a message became, by the provider's own mapping (display only)."""
        from revenue_webhooks.domain.facts import Fact
        from revenue_webhooks.providers import get_provider

        settings = self.forwarder_settings
        try:
            queued = from_record(record)
            provider = get_provider(queued.provider, settings)
            if provider is not None and provider.lookups(queued):
                return ["(mapped with the Play Developer API's answer)"]
            facts = provider.map(queued) if provider else []
        except Exception:
            return []
        return [settings.event_names.get(f.event, f.event) for f in facts if isinstance(f, Fact)]

    def _new_dead_letters(self) -> dict[tuple[str | None, str | None], dict[str, Any]]:
        """Dead letters that appeared since the last batch, by (provider, event id)."""
        if all(_depth(self.sqs, url) == 0 for url in self.dead_letter_urls):
            return {}
        fresh = {}
        for letter in self.dead_letters():
            if letter["id"] not in self._reported_dead:
                self._reported_dead.add(letter["id"])
                fresh[(letter["provider"], letter["event_id"])] = letter
        return fresh

    def dead_letters(self) -> list[dict[str, Any]]:
        """The dead-letter queue's messages, left in place (received, then made visible again), with reasons."""
        from ops.redrive import Redrive

        with self._peek_lock:
            letters = [
                (lane, letter)
                for lane, url in zip(("live", "test"), self.dead_letter_urls, strict=False)
                for letter in Redrive(
                    self.sqs, url, visibility_timeout=30, wait_seconds=0, empty_receives=1, log=NullLog()
                ).dead_letters(limit=DEAD_LETTER_PEEK_LIMIT)
            ]
        return [
            {
                "lane": lane,
                "id": letter.message_id,
                "reason": letter.reason,
                "detail": letter.detail,
                "field": letter.field,
                "attempts": letter.attempts,
                "dead_lettered_at": letter.dead_lettered_at,
                "provider": letter.provider,
                "event_type": letter.event_type,
                "event_id": letter.event_id,
                "received_at": letter.received_at,
                "body": letter.body[:4000],
            }
            for lane, letter in letters
        ]

    def wait_settled(self, timeout_s: float) -> bool:
        """Until every accepted webhook was delivered or dead-lettered and the queue is empty (bounded)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._settled:
                done = self.tally.delivered + self.tally.dead_lettered >= self.tally.accepted
                if not done:
                    self._settled.wait(min(0.5, max(0.0, deadline - time.monotonic())))
                    continue
            if all(_depth(self.sqs, esm.queue_url) == 0 for esm in self.esms):
                return True
            time.sleep(0.2)
        return False

    # ---- the banner ----------------------------------------------------------------------

    def banner(self) -> str:
        assert self.api is not None
        width = max(len(route) for route in self.providers) + 2
        base = f"127.0.0.1:{self.api.port}"
        lines = [
            f"revenue-webhooks local stack: {_shown(self.options.template_path)}, "
            f"parameters {', '.join(f'{k}={v}' for k, v in sorted(self._overrides().items()))}",
            "",
            "Webhook URLs (POST):",
        ]
        for route in self.providers:
            kind = "  (Standard Webhooks sender)" if route in self.senders else ""
            lines.append(f"  {route:<{width}}http://{base}/webhooks/{route}{kind}")
        lines += ["", "Signing secrets:"]
        for route in self.providers:
            if route in self.webhook_secrets:
                source = self.secret_sources.get(route, "")
                lines.append(f"  {route:<{width}}{self.webhook_secrets[route]}  ({source})")
        if not self.senders:
            lines.append("  (no Standard Webhooks sender: the providers/standard_webhooks.py module is not there yet)")
        lines += local_stores.banner_lines(self, _shown)
        if self.proxy_routes:
            prefix = self.template.parameters.get("BrowserProxyPrefix", "mp")
            lines += [
                "",
                f"Browser proxy: api_host http://{base}/{prefix} for pages at "
                f"{self.template.parameters.get('BrowserProxyOrigins')}",
            ]
        lines += [
            "",
            "Stripe CLI (test mode):",
            f"  stripe listen --forward-to {base}/webhooks/stripe",
            "  and start this stack with the secret it prints: STRIPE_WEBHOOK_SECRET=$(stripe listen --print-secret) make dev",
            "",
            f"Mixpanel: {self.mixpanel_description}",
            self.rates.banner_line(self.template.parameters.get("ReportingCurrency", "")),
            f"Queue: {self.source.queue} (VisibilityTimeout {self.queue_attributes.get('VisibilityTimeout')} s, "
            f"maxReceiveCount {json.loads(self.queue_attributes.get('RedrivePolicy') or '{}').get('maxReceiveCount')}"
            f" -> {self.dead_letter_queue}); {FORWARDER} batches of up to {self.source.batch_size}, "
            f"batching window {self.source.batching_window_s} s",
            "Function logs (Powertools JSON and EMF metrics): "
            + (f"{_shown(self.function_log)} (--verbose shows them here)" if self.function_log else "here"),
            f"AWS (moto) at {self.moto.endpoint if self.moto else '?'} (keys local/local, {REGION}); "
            f"make event, make replay and make redrive find this stack by themselves "
            f"({_shown(self.options.state_dir / 'stack.json')}), e.g. make redrive ARGS=--list",
            *self._sam_local_lines(),
            "",
            *local_stripe.banner_lines(self),
        ]
        return "\n".join(lines)

    def _overrides(self) -> dict[str, str]:
        shown = dict(self._parameters())
        if "StandardWebhooksMapping" in shown:
            shown["StandardWebhooksMapping"] = "{" + ", ".join(self.senders) + ": ...}"
        return shown

    def say(self, line: str, *, stream: TextIO | None = None) -> None:
        """One console line (time-stamped on the stack's output; as is on `stream`)."""
        with self._print_lock:
            target = stream or self.out
            stamp = time.strftime("%H:%M:%S")
            print(f"{stamp} {line}" if stream is None else line, file=target, flush=True)


def generate_secret(route: str) -> str:
    """A local signing secret in the shape the provider issues (Stripe and Standard Webhooks: whsec_...)."""
    from revenue_webhooks.providers import specs

    spec = specs().get(route)
    if spec is not None:
        return spec.signing.prefix + secrets.token_hex(16)
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _forget_clients() -> None:
    """Drop the layer's per-process clients: after a stack stops they point at a stopped endpoint."""
    if "revenue_webhooks.bootstrap" in sys.modules:
        sys.modules["revenue_webhooks.bootstrap"].reset()


def _depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
