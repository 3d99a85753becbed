"""Who may see the console: viewer accounts (salted PBKDF2 hashes from the configuration),
bearer tokens for screens and scripts, and signed session cookies. No I/O."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Mapping

import orjson

from dti_pulse.credentials import bearer_credential, caller_of

SCHEME = "pbkdf2_sha256"
ITERATIONS = 200_000


class AuthConfigError(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """`pbkdf2_sha256$<iterations>$<salt>$<hash>`: what DTI_CONSOLE_VIEWERS holds, never the password."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{SCHEME}${iterations}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, iterations, salt, digest = encoded.split("$")
        if scheme != SCHEME:
            return False
        expected = hashlib.pbkdf2_hmac("sha256", password.encode(), _unb64(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(expected, _unb64(digest))


@lru_cache(maxsize=1)
def _decoy() -> str:
    return hash_password(secrets.token_urlsafe(16))


def parse_viewers(spec: str) -> dict[str, str]:
    """`alice=pbkdf2_sha256$...,bob=pbkdf2_sha256$...` -> {name: hash}."""
    viewers = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, encoded = item.partition("=")
        if not sep or not name.strip() or not encoded.startswith(SCHEME + "$") or encoded.count("$") != 3:
            raise AuthConfigError(f"expected name=pbkdf2_sha256$..., got {item.split('=')[0]!r}=... "
                                  "(make a hash with `dti-pulse hash-password`)")
        viewers[name.strip()] = encoded
    return viewers


@dataclass
class Authenticator:
    """Logins, sessions and their revocation. A session cookie is signed claims: the user,
    its expiry, a session id (revoked server-side at logout), and a fingerprint of the
    credential it was opened with (a changed password or token ends every session of it)."""
    viewers: Mapping[str, str]  # name -> password hash
    tokens: Mapping[str, str]  # token -> name
    secret: bytes
    session_s: float = 12 * 3600
    max_failures: int = 5  # failed logins from one address for one name before a delay
    lockout_s: float = 60.0  # the first delay; it doubles with each further failure
    max_lockout_s: float = 3600.0
    max_tracked: int = 10_000
    decoy: str = ""  # the hash checked for unknown names; default: one made with ITERATIONS
    clock: Callable[[], float] = time.time
    _failures: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)  # (name, address) -> (n, last)
    _revoked: dict[str, float] = field(default_factory=dict)  # session id -> its expiry

    def _delay(self, failures: int) -> float:
        if failures < self.max_failures:
            return 0.0
        return min(self.max_lockout_s, self.lockout_s * 2 ** (failures - self.max_failures))

    def locked_for(self, name: str, address: str) -> float:
        """Seconds until this name may be tried again from this address (0: now). Per
        address: guesses from one place do not lock the user out of another."""
        failures, last = self._failures.get((name, address), (0, 0.0))
        return max(0.0, last + self._delay(failures) - self.clock())

    def login(self, name: str, password: str, address: str) -> str | None:
        """A session cookie value for good credentials, else None (and the failure counts)."""
        encoded = self.viewers.get(name)
        # An unknown name costs the same hashing as a known one.
        ok = verify_password(password, encoded or self.decoy or _decoy())
        key = (name, address)
        if not (encoded and ok):
            now = self.clock()
            if len(self._failures) >= self.max_tracked:  # guessing with made-up names costs no memory
                self._failures = {k: (n, last) for k, (n, last) in self._failures.items()
                                  if last + self._delay(n) + self.lockout_s > now}
            failures, last = self._failures.get(key, (0, 0.0))
            if now - last > self.max_lockout_s + self.lockout_s:
                failures = 0  # an old streak is forgotten
            self._failures[key] = (failures + 1, now)
            return None
        self._failures.pop(key, None)
        return self.issue(name)

    def _fingerprint(self, name: str) -> str:
        """Changes when the user's password hash (or the tokens issued to the name) change."""
        credential = self.viewers.get(name) or ",".join(sorted(t for t, n in self.tokens.items() if n == name))
        return _b64(hmac.new(self.secret, f"{name}\0{credential}".encode(), hashlib.sha256).digest()[:12])

    def issue(self, name: str) -> str:
        claims = {"u": name, "exp": int(self.clock() + self.session_s), "sid": secrets.token_urlsafe(12),
                  "k": self._fingerprint(name)}
        body = _b64(orjson.dumps(claims))
        return f"{body}.{self._sign(body)}"

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self.secret, body.encode(), hashlib.sha256).digest())

    def _claims(self, cookie: str | None) -> dict | None:
        if not cookie or "." not in cookie:
            return None
        body, signature = cookie.rsplit(".", 1)
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            claims = orjson.loads(_unb64(body))
        except (ValueError, orjson.JSONDecodeError):
            return None
        if not isinstance(claims, dict) or claims.get("exp", 0) < self.clock() or claims.get("sid") in self._revoked:
            return None
        name = claims.get("u")
        if name not in self.names() or not hmac.compare_digest(str(claims.get("k", "")), self._fingerprint(name)):
            return None  # the account or its credential was removed or changed since
        return claims

    def session_user(self, cookie: str | None) -> str | None:
        claims = self._claims(cookie)
        return claims["u"] if claims else None

    def revoke(self, cookie: str | None) -> str | None:
        """Ends a session for good (logout): its cookie is refused from now on, even if a
        copy of it is kept. Returns its user."""
        claims = self._claims(cookie)
        if claims is None:
            return None
        now = self.clock()
        self._revoked = {sid: exp for sid, exp in self._revoked.items() if exp >= now}  # expired ones need no entry
        self._revoked[claims["sid"]] = claims["exp"]
        return claims["u"]

    def names(self) -> set[str]:
        return {*self.viewers, *self.tokens.values()}

    def renewal(self, cookie: str | None) -> str | None:
        """A fresh cookie for a valid session past half its life, so that a screen left on
        stays logged in while it keeps asking; None when no renewal is due. (The old one is
        not revoked: requests already on their way with it must not fail.)"""
        claims = self._claims(cookie)
        if claims is None or claims["exp"] - self.clock() >= self.session_s / 2:
            return None
        return self.issue(claims["u"])

    def token_user(self, authorization: str | None) -> str | None:
        return caller_of(self.tokens, bearer_credential(authorization))
