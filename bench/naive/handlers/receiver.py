"""Benchmark baseline: the common recipe's Stripe webhook receiver (verify with stripe, enqueue to SQS)."""

import base64
import json
import os

import boto3
import mixpanel  # noqa: F401 (the recipe imports its Mixpanel SDK in every handler)
import stripe
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics()
sqs = boto3.client("sqs")
QUEUE_URL = os.environ["EVENTS_QUEUE_URL"]
ENDPOINT_SECRET = os.environ["STRIPE_WEBHOOK_SECRET"]


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event, context):
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8")
    signature = (event.get("headers") or {}).get("stripe-signature", "")
    try:
        stripe_event = stripe.Webhook.construct_event(body, signature, ENDPOINT_SECRET)
    except (ValueError, stripe.SignatureVerificationError):
        logger.warning("invalid webhook")
        return {"statusCode": 400, "body": json.dumps({"error": "invalid"})}
    sqs.send_message(QueueUrl=QUEUE_URL, MessageBody=body)
    metrics.add_metric(name="Enqueued", unit=MetricUnit.Count, value=1)
    logger.info("enqueued", extra={"event_id": stripe_event.id, "event_type": stripe_event.type})
    return {"statusCode": 200, "body": json.dumps({"received": True})}
