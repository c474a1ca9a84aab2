"""BrowserProxyFunction: mixpanel-browser's requests on the team's own API -> Mixpanel. The logic lives in the layer."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from revenue_webhooks import bootstrap, observability

bootstrap.prepare_browser_proxy()  # init: settings checked, the relay's session built


@observability.logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return bootstrap.browser_proxy().handle(event)
