"""The console's sessions: the bearer token typed once into `/login`, then a cookie.

Input: a request (its cookie, its `Authorization` header, a form's hidden `csrf` field) and the
service's bearer token (None: the service runs without authentication). Output: whether the
request may see a page or carry out an action, and the cookie a good login sets.

The cookie never holds the token. It is ``SID.MAC`` where SID is random and MAC is
HMAC-SHA256 keyed by the token over ``session:SID``: the server keeps no session table, a leaked
cookie does not reveal the token, and changing the token ends every session. The CSRF token of a
session is HMAC-SHA256 keyed by the token over ``csrf:SID``; every action form carries it in a
hidden field and it is compared with `hmac.compare_digest`, on top of ``SameSite=Strict``. A
request carrying ``Authorization: Bearer TOKEN`` is let in without a cookie (a browser never sends
that header on its own, so such a request needs no CSRF token either).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

COOKIE = "intento_session"


@dataclass(frozen=True)
class Session:
    """Who a request is: ``sid`` (None for a bearer-header request) and how it got in."""

    sid: str | None
    via: str  # cookie | bearer | open


class Sessions:
    def __init__(self, token: str | None):
        self.token = token
        # Without a token anyone may look, but actions still need a session's CSRF token: the
        # key is then a secret of this process.
        self._key = (token or secrets.token_hex(32)).encode()

    @property
    def required(self) -> bool:
        return self.token is not None

    def _mac(self, purpose: str, sid: str) -> str:
        return hmac.new(self._key, f"{purpose}:{sid}".encode(), hashlib.sha256).hexdigest()

    def check_token(self, given: str) -> bool:
        if self.token is None:
            return True
        return hmac.compare_digest(given.encode(), self.token.encode())

    def new_cookie(self) -> str:
        sid = secrets.token_urlsafe(18)
        return f"{sid}.{self._mac('session', sid)}"

    def _from_cookie(self, value: str | None) -> str | None:
        if not value or value.count(".") != 1 or len(value) > 200:
            return None
        sid, mac = value.split(".")
        if hmac.compare_digest(mac.encode(), self._mac("session", sid).encode()):
            return sid
        return None

    def session(self, request) -> Session | None:
        """The request's session, or None when it must log in first."""
        sid = self._from_cookie(request.cookies.get(COOKIE))
        if sid is not None:
            return Session(sid, "cookie")
        auth = request.headers.get("authorization")
        if auth is not None and self.token is not None and hmac.compare_digest(auth.encode(), f"Bearer {self.token}".encode()):
            return Session(None, "bearer")
        if self.token is None:
            return Session(None, "open")
        return None

    def csrf(self, session: Session) -> str:
        return self._mac("csrf", session.sid) if session.sid else ""

    def csrf_ok(self, session: Session, given: str | None) -> bool:
        if session.via == "bearer":
            return True
        if session.sid is None or not given:
            return False
        return hmac.compare_digest(given.encode(), self.csrf(session).encode())


def cookie_header(value: str, secure: bool, clear: bool = False) -> str:
    parts = [f"{COOKIE}={'' if clear else value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if clear:
        parts.append("Max-Age=0")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def safe_next(target: str | None) -> str:
    """Where a login goes on to: a path of this site only (never `//host` or a scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target or any(ord(c) < 32 for c in target):
        return "/"
    return target
