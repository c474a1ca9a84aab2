"""What a payment means, before any Mixpanel, SQS or Lambda: money, facts, identity, the catalog,
redaction, customer totals and message outcomes. Imports nothing outside this package."""
