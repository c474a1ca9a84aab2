"""A local SQS endpoint for `SendMessage` over the JSON protocol, with HTTP keep-alive as SQS has.

moto answers every request with `Connection: close`, so a client measured against it pays a TCP
connect per message that it never pays against SQS. This endpoint only accepts and counts
messages (and their bytes), which is all the receiver's warm-path benchmark needs from SQS, and
answers with the MD5s SQS answers with, which the receiver's sender checks.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from typing import Any

from revenue_webhooks.adapters.sqs import attributes_md5

from .json_endpoint import JsonEndpoint


class SqsEndpoint(JsonEndpoint):
    def __init__(self) -> None:
        super().__init__()
        self.messages = 0
        self.body_bytes = 0
        self._lock = threading.Lock()

    def answer(self, target: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if target.endswith(".SendMessage"):
            body = str(request.get("MessageBody", ""))
            with self._lock:
                self.messages += 1
                self.body_bytes += len(body.encode())
            answer = {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": hashlib.md5(body.encode()).hexdigest()}  # noqa: S324 (SQS's own checksum)
            if request.get("MessageAttributes"):
                answer["MD5OfMessageAttributes"] = attributes_md5(request["MessageAttributes"])
            return 200, answer
        if target.endswith(".GetQueueAttributes"):
            return 200, {"Attributes": {"ApproximateNumberOfMessages": str(self.messages)}}
        return 400, {"__type": "com.amazonaws.sqs#UnsupportedOperation", "message": f"{target} is not emulated"}
