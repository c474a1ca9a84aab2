"""Mixpanel: the events and profile updates rendered from facts and totals, and the ingestion client that sends them."""
