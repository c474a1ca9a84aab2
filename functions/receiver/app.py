"""ReceiverFunction: API Gateway HTTP API -> verify -> SQS. The logic lives in the layer."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from revenue_webhooks import bootstrap, observability

bootstrap.prepare_receiver()  # init (or SnapStart's snapshot): settings checked, clients and providers built


@observability.logger.inject_lambda_context(clear_state=True)
@observability.metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return bootstrap.receiver().handle(event)
