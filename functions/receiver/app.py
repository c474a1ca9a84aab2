"""ReceiverFunction: API Gateway HTTP API -> verify -> SQS. The logic lives in the layer."""

from revenue_webhooks import providers, receiver, runtime
from revenue_webhooks.config import settings

SETTINGS = settings()  # validated at cold start, not at the first webhook
providers.validate(SETTINGS)


@runtime.logger.inject_lambda_context(clear_state=True)
@runtime.metrics.log_metrics
def handler(event: dict, context: object) -> dict:
    return receiver.handle(event, SETTINGS)
