"""Ingestion auth as Mixpanel documents it: HTTP Basic with a service account, or the project token as username."""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class Credentials:
    """Who may send to the project: a service account (`/import`'s documented auth) and/or the project token."""

    project_id: str = ""
    username: str = ""
    secret: str = ""
    project_token: str = ""

    def __post_init__(self) -> None:
        if bool(self.username) != bool(self.secret):
            raise ValueError("a service account needs both a username and a secret")
        if self.username and not self.project_id:
            raise ValueError("a service account needs the project_id it belongs to")
        if not self.username and not self.project_token:
            raise ValueError("give a service account (project_id, username, secret) and/or a project_token")

    def secret_value(self) -> dict[str, str]:
        """These credentials as the `MixpanelCredentials` secret holds them for the forwarder (its set fields)."""
        fields = {
            "project_id": self.project_id,
            "service_account_username": self.username,
            "service_account_secret": self.secret,
            "project_token": self.project_token,
        }
        return {name: value for name, value in fields.items() if value}

    def authenticate(self, authorization: str | None, project_id: str | None, *, engage: bool = False) -> str | None:
        """The auth method a request used ("service_account" or "project_token"), or None when it is not valid.

        `/import` ties a service account to the `project_id` query parameter; with the token as Basic username
        and an empty password, project_id may be omitted. `/engage` has no project_id.
        """
        pair = _basic_credentials(authorization)
        if pair is None:
            return None
        user, password = pair
        if self.username and same_secret(user, self.username) and same_secret(password, self.secret):
            if engage or (project_id is not None and same_secret(project_id, self.project_id)):
                return "service_account"
            return None
        token_ok = bool(self.project_token) and same_secret(user, self.project_token) and password == ""
        # A project_id sent alongside the token must still be this project's.
        if token_ok and (
            project_id is None or engage or not self.project_id or same_secret(project_id, self.project_id)
        ):
            return "project_token"
        return None


# What the local stack uses unless told otherwise; service account usernames look like this in Mixpanel.
DEMO_CREDENTIALS = Credentials(
    project_id="1",
    username="devstack.1.mp-service-account",
    secret="devstack-demo-secret",
    project_token="devstack-demo-token",
)


# The local stack's test project (test-mode webhooks, with TestEventsTo=test-project), beside the demo one.
DEMO_TEST_CREDENTIALS = Credentials(
    project_id="2",
    username="devstack-test.2.mp-service-account",
    secret="devstack-test-secret",
    project_token="devstack-test-token",
)


def same_secret(given: str, expected: str) -> bool:
    """Compare in constant time, so a wrong credential or `$token` leaks nothing through timing."""
    return hmac.compare_digest(given.encode(), expected.encode())


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """(user, password) from a Basic header; Mixpanel accepts base64 or plain text after `Basic `."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    value = value.strip()
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = value
    if ":" not in decoded:
        return decoded, ""
    user, _, password = decoded.partition(":")
    return user, password
