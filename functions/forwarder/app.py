"""ForwarderFunction: SQS batch -> Mixpanel, reporting partial batch failures. The logic lives in the layer."""

from revenue_webhooks import forwarder, providers, runtime
from revenue_webhooks.config import settings

SETTINGS = settings()  # validated at cold start, not at the first batch
providers.validate(SETTINGS)


@runtime.logger.inject_lambda_context(clear_state=True)
@runtime.metrics.log_metrics
def handler(event: dict, context: object) -> dict:
    return forwarder.from_settings(SETTINGS).process(event["Records"], context.get_remaining_time_in_millis)
