"""ReconcileFunction: once a day, Stripe's payments of the last days against the ledger's and Mixpanel's.

Publishes ReconcileDifferences (its alarm fires on any) and ReconcileNetDifference per currency, and logs the
report with the command that repairs each difference. The logic lives in the layer (service/reconcile.py).
"""

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from revenue_webhooks import bootstrap, config, observability
from revenue_webhooks.service.reconcile import publish

bootstrap.prepare_reconciler()  # init (or SnapStart's snapshot): settings checked, clients built


@observability.logger.inject_lambda_context(clear_state=True)
@observability.metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    reconciler = bootstrap.reconciler()
    if reconciler is None:
        return {"reconciled": False, "why": "no Stripe API key in StripeApiKey"}
    report = reconciler.recent(config.settings().reconcile_days, time.time())
    publish(report)
    return {"reconciled": True, "agree": report.agree, "differences": len(report.differences)}
