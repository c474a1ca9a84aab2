"""The app stores' side of the local stack: Apple's signer, Google's issuer and Play Developer API.

The receiver verifies App Store and Google Play deliveries asymmetrically (a certificate chain, an OIDC
token): the local stack cannot reuse one shared secret for signing and checking as it does for the other
providers. `Stores` holds what signs (a test chain for Apple, an issuer key for Google, both kept in the
state directory) and says what the functions must be told to trust instead of Apple and Google: their
secrets (AppStoreConfig, GooglePlayPushConfig, GooglePlayCredentials) and three variables
(APPSTORE_ROOT_CERTIFICATES, GOOGLE_OIDC_CERTS_URL, GOOGLE_PLAY_API_URL).
"""

from __future__ import annotations

import json
from pathlib import Path

from revenue_webhooks.providers import sign

from .apple import Chain, local_config
from .google import GoogleStandIn

ROUTES = ("appstore", "googleplay")


class Stores:
    """The local App Store signer and Google stand-in, for `make dev`, `make demo`, `make event` and the tests."""

    def __init__(self, state_dir: Path, *, google_port: int = 0) -> None:
        self.state_dir = state_dir
        self.apple = Chain.load_or_generate(state_dir / "apple")
        self.apple_root = state_dir / "apple" / "root.der"
        self.google = GoogleStandIn(state_dir / "google", port=google_port)
        self.audience = ""  # the push endpoint Pub/Sub posts to: set once the API's port is known

    def start(self, push_endpoint: str) -> Stores:
        """Serve Google's endpoints; `push_endpoint` is the googleplay webhook URL (the tokens' audience)."""
        self.audience = push_endpoint
        self.google.start()
        return self

    def stop(self) -> None:
        self.google.stop()

    def receiver_secrets(self) -> dict[str, str]:
        """Route -> its secret's value, as an operator would put them for a real app."""
        return {"appstore": local_config(), "googleplay": self.google.push_config(self.audience)}

    def forwarder_secrets(self) -> dict[str, str]:
        return {"GooglePlayCredentials": self.google.credentials()}

    def environment(self) -> dict[str, str]:
        """What the functions trust instead of Apple's root and Google's endpoints."""
        return {
            "APPSTORE_ROOT_CERTIFICATES": str(self.apple_root),
            "GOOGLE_OIDC_CERTS_URL": self.google.certs_url,
            "GOOGLE_PLAY_API_URL": self.google.url,
        }

    def deliver(self, route: str, sample: bytes) -> tuple[bytes, dict[str, str]]:
        """A store's delivery of a sample: an App Store notification signed with the local chain (the sample
        is the decoded notification), a Google Play push with a fresh token (the sample is the push body)."""
        if route == "appstore":
            body = self.apple.notification_body(json.loads(sample))
            return body, sign("appstore", body, "")
        if route == "googleplay":
            return sample, sign("googleplay", sample, self.google.push_token(self.audience))
        raise LookupError(f"{route} is not an app store")
