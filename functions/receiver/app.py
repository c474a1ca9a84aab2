"""ReceiverFunction: API Gateway HTTP API -> verify -> SQS. The logic lives in the layer."""

from revenue_webhooks import providers, receiver, runtime
from revenue_webhooks.config import settings

# Init (or SnapStart's snapshot): settings validated, clients and providers built before the first webhook.
SETTINGS = settings()
providers.validate(SETTINGS)
providers.prepare_all(SETTINGS, with_libraries=runtime.snapshot_init())
runtime.warm_up("sqs", "secretsmanager")
runtime.register_snapstart_hooks()


@runtime.logger.inject_lambda_context(clear_state=True)
@runtime.metrics.log_metrics
def handler(event: dict, context: object) -> dict:
    return receiver.handle(event, SETTINGS)
