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
    viewers: Mapping[str, str]  # name -> password hash
    tokens: Mapping[str, str]  # token -> name
    secret: bytes
    session_s: float = 12 * 3600
    max_failures: int = 5
    lockout_s: float = 60.0
    max_tracked_names: int = 10_000
    decoy: str = ""  # the hash checked for unknown names; default: one made with ITERATIONS
    clock: Callable[[], float] = time.time
    _failures: dict[str, list[float]] = field(default_factory=dict)

    def locked_for(self, name: str) -> float:
        """Seconds until this name may try again (0: now). Slows down password guessing."""
        recent = [t for t in self._failures.get(name, []) if self.clock() - t < self.lockout_s]
        self._failures[name] = recent
        if len(recent) < self.max_failures:
            return 0.0
        return max(0.0, recent[0] + self.lockout_s - self.clock())

    def login(self, name: str, password: str) -> str | None:
        """A session cookie value for good credentials, else None (and the failure counts)."""
        encoded = self.viewers.get(name)
        # An unknown name costs the same hashing as a known one.
        ok = verify_password(password, encoded or self.decoy or _decoy())
        if not (encoded and ok):
            if len(self._failures) >= self.max_tracked_names:  # guessing with made-up names costs no memory
                cutoff = self.clock() - self.lockout_s
                self._failures = {n: times for n, times in self._failures.items() if times and times[-1] > cutoff}
            self._failures.setdefault(name, []).append(self.clock())
            return None
        self._failures.pop(name, None)
        return self.issue(name)

    def issue(self, name: str) -> str:
        body = _b64(orjson.dumps({"u": name, "exp": int(self.clock() + self.session_s)}))
        return f"{body}.{self._sign(body)}"

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self.secret, body.encode(), hashlib.sha256).digest())

    def session_user(self, cookie: str | None) -> str | None:
        if not cookie or "." not in cookie:
            return None
        body, signature = cookie.rsplit(".", 1)
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            claims = orjson.loads(_unb64(body))
        except (ValueError, orjson.JSONDecodeError):
            return None
        if claims.get("exp", 0) < self.clock() or claims.get("u") not in self.names():
            return None  # expired, or the account (or token) was removed since
        return claims["u"]

    def names(self) -> set[str]:
        return {*self.viewers, *self.tokens.values()}

    def renewal(self, cookie: str | None) -> str | None:
        """A fresh cookie for a valid session past half its life, so that a screen left on
        stays logged in while it keeps asking; None when no renewal is due."""
        user = self.session_user(cookie)
        if user is None:
            return None
        claims = orjson.loads(_unb64(cookie.rsplit(".", 1)[0]))
        return self.issue(user) if claims["exp"] - self.clock() < self.session_s / 2 else None

    def token_user(self, authorization: str | None) -> str | None:
        return caller_of(self.tokens, bearer_credential(authorization))
