"""What an App Store notification is checked against: the app (secret `AppStoreConfig`) and Apple's root.

The signature, the certificate chain to Apple's root, the bundle id, the app's Apple id and the environment
are checked by Apple's `app-store-server-library` (`SignedDataVerifier`); this module only decides what it
is given. Its import costs ~0.2 s (cryptography, pyOpenSSL, PyJWT), so it happens on the first App Store
webhook of a container, never on another route's cold start.

Online revocation checks (OCSP) are off, for three reasons: with them on, the library checks the chain at
the current time instead of the notification's `signedDate`, so a notification older than its signing
certificate (Apple retries for 3 days, its history API goes back 180 days, a dead letter may be redriven
later) would be refused forever; each cache miss waits on two OCSP requests to Apple (30 s timeout each) in
a receiver that must answer within seconds; and an OCSP outage would refuse every notification.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .base import PayloadInvalid, SignatureInvalid

# The environments a deployment may accept. Xcode and LocalTesting are absent on purpose: the library
# skips every signature check for them.
ENVIRONMENTS = ("Production", "Sandbox")
SHIPPED_ROOTS = (Path(__file__).parent / "apple_roots" / "AppleRootCA-G3.cer",)


class AppStoreConfigInvalid(ValueError):
    """AppStoreConfig cannot be used; the message names the field."""


@dataclass(frozen=True)
class AppStoreConfig:
    """The secret `AppStoreConfig`: which app's notifications are accepted, from which environments."""

    bundle_id: str
    app_apple_id: int | None
    environments: tuple[str, ...]

    @classmethod
    def from_secret(cls, raw: str) -> AppStoreConfig:
        try:
            data = json.loads(raw)
        except ValueError:
            raise AppStoreConfigInvalid("AppStoreConfig is not JSON") from None
        if not isinstance(data, dict):
            raise AppStoreConfigInvalid("AppStoreConfig: expected a JSON object")
        bundle_id = data.get("bundle_id")
        if not isinstance(bundle_id, str) or not bundle_id.strip():
            raise AppStoreConfigInvalid("AppStoreConfig.bundle_id: expected the app's bundle id")
        given = data.get("environment", "Production")
        names = [given] if isinstance(given, str) else given
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise AppStoreConfigInvalid(
                'AppStoreConfig.environment: expected "Production", "Sandbox" or both in a list'
            )
        environments = tuple(dict.fromkeys(name.strip() for name in names))
        unknown = [name for name in environments if name not in ENVIRONMENTS]
        if unknown:
            raise AppStoreConfigInvalid(f"AppStoreConfig.environment: {unknown} not in {list(ENVIRONMENTS)}")
        app_apple_id = data.get("app_apple_id")
        if app_apple_id is not None and (isinstance(app_apple_id, bool) or not isinstance(app_apple_id, int)):
            raise AppStoreConfigInvalid("AppStoreConfig.app_apple_id: expected the app's Apple id, a number")
        if "Production" in environments and app_apple_id is None:
            raise AppStoreConfigInvalid("AppStoreConfig.app_apple_id is required for Production")
        return cls(bundle_id.strip(), app_apple_id, environments)


def verify_notification(signed_payload: str, secrets: Sequence[str], roots: tuple[str, ...]) -> dict[str, Any]:
    """The decoded notification once Apple's library accepted it; raises SignatureInvalid with its status."""
    if not secrets:
        raise SignatureInvalid("AppStoreConfig is not set")
    try:
        config = AppStoreConfig.from_secret(secrets[0])
    except AppStoreConfigInvalid as error:
        raise SignatureInvalid(str(error)) from None
    library = _library()
    refusal = "no environment configured"
    for environment in config.environments:
        verifier = _verifier(config, environment, roots)
        try:
            verifier.verify_and_decode_notification(signed_payload)
        except library.VerificationException as error:
            refusal = error.status.name
            if error.status is library.VerificationStatus.INVALID_ENVIRONMENT:
                continue  # a Sandbox notification to a deployment that also takes Sandbox: try the next
            raise SignatureInvalid(f"App Store signedPayload refused: {refusal}") from None
        return decode(signed_payload)
    raise SignatureInvalid(f"App Store signedPayload refused: {refusal} (accepted: {', '.join(config.environments)})")


def decode(signed: str) -> dict[str, Any]:
    """A JWS's payload without checking it: for payloads the receiver verified (the notification, and the
    transaction and renewal info it signs as part of itself)."""
    import jwt

    try:
        payload = jwt.decode(signed, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise PayloadInvalid("not a JWS") from None
    if not isinstance(payload, dict):
        raise PayloadInvalid("JWS payload is not a JSON object")
    return payload


def prepare() -> None:
    """Load the library ahead (SnapStart's snapshot), when no webhook waits for it."""
    _library()


@dataclass(frozen=True)
class _Library:
    SignedDataVerifier: Any
    VerificationException: Any
    VerificationStatus: Any
    Environment: Any


# In the Lambda layer, pyOpenSSL is kept off the path (layers/common/Makefile): botocore would import it on
# every cold start. Only this provider needs it, so it joins the path here; elsewhere (a venv) it is on it.
APPSTORE_ONLY_PACKAGES = Path(__file__).resolve().parents[2] / "appstore_only_packages"


@cache
def _library() -> _Library:
    if APPSTORE_ONLY_PACKAGES.is_dir() and str(APPSTORE_ONLY_PACKAGES) not in sys.path:
        sys.path.append(str(APPSTORE_ONLY_PACKAGES))
    from appstoreserverlibrary.models.Environment import Environment
    from appstoreserverlibrary.signed_data_verifier import (
        SignedDataVerifier,
        VerificationException,
        VerificationStatus,
    )

    return _Library(SignedDataVerifier, VerificationException, VerificationStatus, Environment)


@cache
def _verifier(config: AppStoreConfig, environment: str, roots: tuple[str, ...]) -> Any:
    """One verifier per app, environment and roots: it keeps the parsed roots."""
    library = _library()
    return library.SignedDataVerifier(
        root_certificates=root_certificates(roots),
        enable_online_checks=False,  # see the module docstring
        environment=library.Environment(environment),
        bundle_id=config.bundle_id,
        app_apple_id=config.app_apple_id,
    )


@cache
def root_certificates(paths: tuple[str, ...] = ()) -> list[bytes]:
    """DER bytes of the trusted roots: the shipped Apple Root CA - G3 unless APPSTORE_ROOT_CERTIFICATES names others."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    found = []
    for path in [Path(p) for p in paths] or list(SHIPPED_ROOTS):
        data = path.read_bytes()
        certificate = (
            x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
        )
        found.append(certificate.public_bytes(Encoding.DER))
    return found
