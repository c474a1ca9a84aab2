"""revenue-webhooks: payment-provider webhooks into Mixpanel, exactly once (the Lambda layer's package)."""

__version__ = "0.1.0"
