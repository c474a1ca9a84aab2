"""CatchUpFunction: on a schedule, Stripe's events no webhook delivered, enqueued. The logic lives in the layer."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from revenue_webhooks import bootstrap, observability

bootstrap.prepare_catch_up()  # init (or SnapStart's snapshot): settings checked, clients built


@observability.logger.inject_lambda_context(clear_state=True)
@observability.metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return bootstrap.catch_up().run(context.get_remaining_time_in_millis)
