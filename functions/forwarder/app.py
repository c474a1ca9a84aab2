"""ForwarderFunction: SQS batch -> Mixpanel, reporting partial batch failures. The logic lives in the layer."""

from revenue_webhooks import forwarder, providers, runtime
from revenue_webhooks.config import settings

# Init (or SnapStart's snapshot): settings validated, clients and providers built before the first batch.
SETTINGS = settings()
providers.validate(SETTINGS)
providers.prepare_all(SETTINGS, with_libraries=False)  # mapping needs no provider library
runtime.warm_up("sqs", "secretsmanager", "dynamodb")
runtime.register_snapstart_hooks()


@runtime.logger.inject_lambda_context(clear_state=True)
@runtime.metrics.log_metrics
def handler(event: dict, context: object) -> dict:
    return forwarder.from_settings(SETTINGS).process(event["Records"], context.get_remaining_time_in_millis)
