"""Apple's side of App Store Server Notifications, locally: a test certificate chain and a JWS signer.

The chain has Apple's shape (a root, an intermediate with Apple's WWDR marker OID, a leaf with the App
Store receipt-signing OID, all P-256) so that Apple's `app-store-server-library` verifies it exactly as it
verifies Apple's, once the receiver trusts this root instead (APPSTORE_ROOT_CERTIFICATES). It is made with
`cryptography` when first needed and kept in the local stack's state directory; the JWS is PyJWT's ES256
with the chain in `x5c`, as Apple sends. `Chain.generate(...)` also makes the broken chains the tests need
(another root, an expired leaf).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Apple's marker extensions, which the library requires on the leaf and the intermediate.
LEAF_OID = "1.2.840.113635.100.6.11.1"
INTERMEDIATE_OID = "1.2.840.113635.100.6.2.1"
NESTED = ("signedTransactionInfo", "signedRenewalInfo")
LOCAL_BUNDLE_ID = "com.example.revenuewebhooks"
LOCAL_APP_APPLE_ID = 1234567890


@dataclass(frozen=True)
class Chain:
    """A root, an intermediate and a leaf certificate, and the leaf's private key (PEM/DER bytes)."""

    root_der: bytes
    intermediate_der: bytes
    leaf_der: bytes
    leaf_key_pem: bytes

    @classmethod
    def generate(
        cls,
        *,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        leaf_not_after: dt.datetime | None = None,
        name: str = "Local App Store Test",
    ) -> Chain:
        """A fresh chain valid from `not_before` (default 2015) to `not_after` (default 2045); `leaf_not_after`
        ends the leaf earlier (an expired certificate)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        start = not_before or dt.datetime(2015, 1, 1, tzinfo=dt.UTC)
        end = not_after or dt.datetime(2045, 1, 1, tzinfo=dt.UTC)
        keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
        names = [
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, f"{name} {role}"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "revenue-webhooks tests"),
                ]
            )
            for role in ("Root CA", "Intermediate CA", "Signing")
        ]
        certificates: list[Any] = []
        for index, key in enumerate(keys):
            issuer = index - 1 if index else 0
            ca = index < 2
            builder = (
                x509.CertificateBuilder()
                .subject_name(names[index])
                .issuer_name(names[issuer])
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(start)
                .not_valid_after(leaf_not_after if index == 2 and leaf_not_after else end)
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=not ca,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=ca,
                        crl_sign=ca,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(keys[issuer].public_key()), critical=False
                )
            )
            marker = {1: INTERMEDIATE_OID, 2: LEAF_OID}.get(index)
            if marker:
                builder = builder.add_extension(
                    x509.UnrecognizedExtension(x509.ObjectIdentifier(marker), b"\x05\x00"), critical=False
                )
            certificates.append(builder.sign(keys[issuer], hashes.SHA256()))
        der = [certificate.public_bytes(serialization.Encoding.DER) for certificate in certificates]
        key_pem = keys[2].private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cls(der[0], der[1], der[2], key_pem)

    # ---- files --------------------------------------------------------------------------------

    def save(self, directory: Path) -> Path:
        """Write the chain; returns the root's path (what APPSTORE_ROOT_CERTIFICATES names)."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in (
            ("root.der", self.root_der),
            ("intermediate.der", self.intermediate_der),
            ("leaf.der", self.leaf_der),
            ("leaf-key.pem", self.leaf_key_pem),
        ):
            (directory / name).write_bytes(data)
        (directory / "leaf-key.pem").chmod(0o600)
        return directory / "root.der"

    @classmethod
    def load_or_generate(cls, directory: Path) -> Chain:
        """The chain kept in `directory`, made there on first use (the local stack's and `make event`'s)."""
        try:
            return cls(
                (directory / "root.der").read_bytes(),
                (directory / "intermediate.der").read_bytes(),
                (directory / "leaf.der").read_bytes(),
                (directory / "leaf-key.pem").read_bytes(),
            )
        except FileNotFoundError:
            chain = cls.generate()
            chain.save(directory)
            return chain

    # ---- signing ------------------------------------------------------------------------------

    def sign(self, payload: dict[str, Any]) -> str:
        """An ES256 JWS of `payload` with this chain in `x5c` (leaf, intermediate, root), as Apple signs."""
        import jwt

        x5c = [base64.b64encode(der).decode() for der in (self.leaf_der, self.intermediate_der, self.root_der)]
        return jwt.encode(payload, self.leaf_key_pem, algorithm="ES256", headers={"x5c": x5c})

    def notification_body(self, notification: dict[str, Any]) -> bytes:
        """The body Apple POSTs for a decoded notification: nested transaction and renewal info signed
        first (when given as objects), then the whole as `{"signedPayload": ...}`."""
        payload = copy.deepcopy(notification)
        data = payload.get("data")
        if isinstance(data, dict):
            for field in NESTED:
                if isinstance(data.get(field), dict):
                    data[field] = self.sign(data[field])
        return json.dumps({"signedPayload": self.sign(payload)}).encode()


def local_config(environments: tuple[str, ...] = ("Production", "Sandbox")) -> str:
    """The AppStoreConfig secret of the local stack and the tests: the sample app, both environments."""
    return json.dumps(
        {"bundle_id": LOCAL_BUNDLE_ID, "app_apple_id": LOCAL_APP_APPLE_ID, "environment": list(environments)}
    )
