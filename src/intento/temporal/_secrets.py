"""Secret given values on Temporal: never in a workflow's history.

Input: a request's given values (as JSON) and a key the client and every worker share
(``INTENTO_SECRET_KEY``, else the key file beside the audit log, `audit.secret_key`). Output: the
same values with each `secret` one replaced by ``{"$secret": "hmac-sha256:...", "sealed": ...}``:
the keyed hash the embedded engine records, and the value sealed with AES-GCM under a key
derived from the shared one. Workflow and activity inputs, and so Temporal's history, its UI and
`temporal workflow show`, carry only that; the activities open it to plan and to give handlers
the value. A worker with another key cannot open it and says so.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from intento.audit import redact
from intento.errors import OperationalError
from intento.spec import Spec


class SecretUnreadable(OperationalError):
    """A sealed secret given this key cannot open."""


class SecretKeyMissing(OperationalError):
    """A request with secret givens, and no key to seal them with."""


def _aead(key: bytes) -> AESGCM:
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"intento temporal secret givens").derive(key))


def is_sealed(v: Any) -> bool:
    return isinstance(v, dict) and "$secret" in v and "sealed" in v


def seal(spec: Spec, intent: str, given: dict[str, Any], key: bytes) -> dict[str, Any]:
    """``given`` (JSON values) with every secret value sealed; the others as they are."""
    params = spec.intents[intent].given
    aead = _aead(key)
    hashed = redact(spec, intent, given, key)  # the audit log's keyed hash of each secret
    out = {}
    for name, v in given.items():
        if name in params and params[name].secret and not is_sealed(v):
            # The nonce is a keyed hash of the name and the value (a synthetic IV): the same request
            # seals to the same payload, so its workflow id and idempotency hold; two different
            # values never share a nonce.
            nonce = hmac.new(key, b"nonce\0" + name.encode() + b"\0" + json.dumps(v).encode(), hashlib.sha256).digest()[:12]
            body = aead.encrypt(nonce, json.dumps(v).encode(), name.encode())
            out[name] = {
                "$secret": hashed[name],
                "sealed": base64.b64encode(nonce + body).decode(),
            }
        else:
            out[name] = v
    return out


def unseal(given: dict[str, Any], key: bytes) -> dict[str, Any]:
    """``given`` with every sealed value opened; `SecretUnreadable` names one that will not open."""
    aead = None
    out = {}
    for name, v in given.items():
        if not is_sealed(v):
            out[name] = v
            continue
        aead = aead or _aead(key)
        try:
            raw = base64.b64decode(v["sealed"])
            out[name] = json.loads(aead.decrypt(raw[:12], raw[12:], name.encode()))
        except Exception:
            raise SecretUnreadable(
                f"the secret given `{name}` cannot be opened with this worker's key: start the workers and the runs with the same "
                "INTENTO_SECRET_KEY (or the same key file beside the audit log)"
            ) from None
    return out
