"""Benchmark baseline: the common recipe's forwarder (SQS batch -> mixpanel SDK, BufferedConsumer)."""

import json
import os

import boto3  # noqa: F401 (the recipe imports it at the top of every handler)
import mixpanel
import stripe
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from mixpanel.credentials import ServiceAccountCredentials

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)
consumer = mixpanel.BufferedConsumer(
    import_url=os.environ["MIXPANEL_IMPORT_URL"],
    credentials=ServiceAccountCredentials(
        username=os.environ["MIXPANEL_SERVICE_ACCOUNT_USERNAME"],
        secret=os.environ["MIXPANEL_SERVICE_ACCOUNT_SECRET"],
        project_id=os.environ["MIXPANEL_PROJECT_ID"],
    ),
)
mp = mixpanel.Mixpanel(os.environ["MIXPANEL_PROJECT_TOKEN"], consumer=consumer)


def record_handler(record):
    event = stripe.Event.construct_from(json.loads(record.body), None)
    obj = event.data.object
    amount = getattr(obj, "amount_total", None) or getattr(obj, "amount_paid", None) or 0
    metadata = getattr(obj, "metadata", None) or {}
    mp.import_data(
        None,
        metadata["user_id"] if "user_id" in metadata else obj.customer,  # noqa: SIM401 (a StripeObject has no .get)
        "Purchase Completed",
        event.created,
        {"Revenue": amount / 100, "Currency": obj.currency.upper(), "Order ID": obj.id},
    )


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event, context):
    response = process_partial_response(event, record_handler, processor, context)
    consumer.flush()
    return response
