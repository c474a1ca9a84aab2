"""ForwarderFunction: SQS batch -> Mixpanel, reporting partial batch failures. The logic lives in the layer."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from revenue_webhooks import bootstrap, observability

bootstrap.prepare_forwarder()  # init (or SnapStart's snapshot): settings checked, clients and providers built


@observability.logger.inject_lambda_context(clear_state=True)
@observability.metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return bootstrap.lanes().process(event["Records"], context.get_remaining_time_in_millis)
