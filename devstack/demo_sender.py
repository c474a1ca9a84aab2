"""The local stack's demo Standard Webhooks sender: a fictional billing service whose payloads are in
events/demo-billing/, configured by this StandardWebhooksMapping (docs/providers.md, "Standard Webhooks")."""

from __future__ import annotations

from typing import Any

DEMO_SENDER = "demo-billing"

# A fictional billing service that signs with Standard Webhooks: its payloads are in events/demo-billing/.
DEMO_SENDER_MAPPING: dict[str, Any] = {
    DEMO_SENDER: {
        "type_path": "type",
        "events": {
            "invoice.paid": {
                "event": "Purchase Completed",
                "purchase_type": "invoice",
                "time": "data.paid_at",
                "order_id": "data.invoice_id",
                "amount": "data.amount",
                "currency": "data.currency",
                "amount_unit": "minor",
                "user_id": "data.customer.external_id",
                "customer_id": "data.customer.id",
                "livemode": "data.livemode",
            },
            "invoice.refunded": {
                "event": "Refund Issued",
                "time": "data.refunded_at",
                "refund_id": "data.refund_id",
                "order_id": "data.invoice_id",
                "amount": "data.amount_refunded",
                "currency": "data.currency",
                "amount_unit": "minor",
                "user_id": "data.customer.external_id",
                "customer_id": "data.customer.id",
                "livemode": "data.livemode",
            },
        },
    }
}


def demo_sender_mapping() -> dict[str, Any]:
    """StandardWebhooksMapping of the demo sender, validated."""
    from revenue_webhooks.providers import specs
    from revenue_webhooks.providers.standard_webhooks import validate_mapping

    validate_mapping(DEMO_SENDER_MAPPING, reserved=specs())
    return DEMO_SENDER_MAPPING
