"""Operator tools for a deployed stack (redrive, replay): what an on-call engineer runs, with only production
dependencies (boto3, requests, the layer). The local stack (devstack/) uses them; they never use it."""
