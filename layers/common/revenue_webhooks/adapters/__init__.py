"""The AWS side: boto3 clients (aws.py), the SQS message format and sender, the DynamoDB ledger and the
secrets, each implementing a port the services declare (service/ports.py)."""
