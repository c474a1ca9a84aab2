"""The services: the receiver (verify, filter, enqueue) and the forwarder (facts, ledger, Mixpanel), each
depending only on the small ports declared in ports.py; bootstrap.py gives them their adapters."""
