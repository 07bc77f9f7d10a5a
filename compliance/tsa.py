"""RFC 3161 time-stamp tokens for the evidence digest: the request, and checking a token (pure).

The monitor posts the request to `EVIDENCE_TSA_URL` (monitor/evidence_digest.py); the token that comes
back is stored with the digest in the audit trail. `verify_token` checks that a token stamps the
given digest and that its signature verifies with the certificate it carries; whether that
certificate belongs to a TSA you trust is checked with the TSA's CA certificate, e.g.
`openssl ts -verify -digest <digest> -token_in -in token.der -CAfile tsa-ca.pem` (docs/operations.md).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import algos, cms, core, tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa


class TimestampError(Exception):
    pass


@dataclass(frozen=True)
class Stamp:
    token: bytes  # DER of the TimeStampToken (a CMS ContentInfo)
    gen_time: datetime
    serial: int
    tsa: str  # the signing certificate's subject


def request(digest_hex: str) -> tuple[bytes, int]:
    """A DER TimeStampReq for a SHA-256 digest (hex), asking for the TSA's certificate; and its nonce."""
    nonce = secrets.randbits(63)
    req = tsp.TimeStampReq(
        {
            "version": 1,
            "message_imprint": {
                "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                "hashed_message": bytes.fromhex(digest_hex),
            },
            "nonce": nonce,
            "cert_req": True,
        }
    )
    return req.dump(), nonce


def from_response(der: bytes, digest_hex: str, nonce: int) -> Stamp:
    """The token of a TimeStampResp, checked against our request."""
    try:
        # The status first: a refusal carries no token, which asn1crypto's TimeStampResp requires.
        info = tsp.PKIStatusInfo.load(core.Sequence.load(der)[0].dump())
        status = info["status"].native
    except Exception as exc:
        raise TimestampError(f"not a time-stamp response: {exc}") from exc
    if status not in ("granted", "granted_with_mods"):
        text = " ".join(info["status_string"].native or []) if info["status_string"] else ""
        raise TimestampError(f"the TSA refused: {status} {text}".strip())
    try:
        token = tsp.TimeStampResp.load(der)["time_stamp_token"].dump()
    except Exception as exc:
        raise TimestampError(f"not a time-stamp response: {exc}") from exc
    stamp = verify_token(token, digest_hex)
    info = _tst_info(cms.ContentInfo.load(token))
    if info["nonce"].native != nonce:
        raise TimestampError("the response's nonce is not our request's")
    return stamp


def _tst_info(content_info: cms.ContentInfo) -> tsp.TSTInfo:
    if content_info["content_type"].native != "signed_data":
        raise TimestampError("the token is not CMS signed data")
    encap = content_info["content"]["encap_content_info"]
    if encap["content_type"].native != "tst_info":
        raise TimestampError("the token does not hold a TSTInfo")
    return encap["content"].parsed


def verify_token(token: bytes, digest_hex: str) -> Stamp:
    """Check that `token` stamps `digest_hex` and is signed by the certificate it carries."""
    try:
        content_info = cms.ContentInfo.load(token)
        info = _tst_info(content_info)
    except TimestampError:
        raise
    except Exception as exc:
        raise TimestampError(f"not a time-stamp token: {exc}") from exc
    imprint = info["message_imprint"]
    if imprint["hash_algorithm"]["algorithm"].native != "sha256":
        raise TimestampError("the token stamps another hash algorithm's digest")
    if imprint["hashed_message"].native != bytes.fromhex(digest_hex):
        raise TimestampError("the token stamps another digest")
    signed = content_info["content"]
    signer = signed["signer_infos"][0]
    sid = signer["sid"]
    cert = None
    for choice in signed["certificates"] or []:
        c = choice.chosen
        if sid.name == "issuer_and_serial_number" and (
            c.issuer == sid.chosen["issuer"] and c.serial_number == sid.chosen["serial_number"].native
        ):
            cert = c
        elif sid.name == "subject_key_identifier" and c.key_identifier == sid.chosen.native:
            cert = c
    if cert is None:
        raise TimestampError("the token carries no certificate of its signer")
    algorithm = signer["digest_algorithm"]["algorithm"].native
    hash_cls = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}.get(algorithm)
    if hash_cls is None:
        raise TimestampError(f"unsupported digest algorithm {algorithm}")
    content = signed["encap_content_info"]["content"].contents
    attrs = signer["signed_attrs"]
    digests = [a["values"][0].native for a in attrs if a["type"].native == "message_digest"]
    if not digests or digests[0] != hashlib.new(algorithm, content).digest():
        raise TimestampError("the signed attributes do not match the TSTInfo")
    data = b"\x31" + attrs.dump()[1:]  # the signature covers the attributes as a SET
    key = x509.load_der_x509_certificate(cert.dump()).public_key()
    signature = signer["signature"].native
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hash_cls())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hash_cls()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            raise TimestampError("unsupported TSA key type")
    except InvalidSignature:
        raise TimestampError("the token's signature does not verify") from None
    return Stamp(
        token=token,
        gen_time=info["gen_time"].native,
        serial=info["serial_number"].native,
        tsa=cert.subject.human_friendly,
    )
