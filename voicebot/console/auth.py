"""Passwords, roles and the login limit of the admin console (pure: no I/O; time is an argument)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass

ROLES = ("viewer", "analyst", "admin")
# viewer: live calls, call records without what callers said, versions, the report.
# analyst: also transcripts. admin: also publish, canary, promote, roll back, and the audit log.
PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "analyst": frozenset({"read", "transcripts"}),
    "admin": frozenset({"read", "transcripts", "versions", "audit"}),
}
MIN_PASSWORD = 10
# scrypt at n=2**14, r=8 (16 MiB, ~50 ms here): costly to guess offline, cheap enough per login
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def can(role: str, permission: str) -> bool:
    return permission in PERMISSIONS.get(role, frozenset())


class PasswordError(ValueError):
    pass


def check_new_password(password: str, name: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise PasswordError(f"a console password needs at least {MIN_PASSWORD} characters")
    if password.lower() == name.lower():
        raise PasswordError("the password cannot be the user name")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 1024 * 1024, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 * 1024 * 1024,
            dklen=32,
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


# Checked against when the user name is unknown, so a wrong name costs the same time as a wrong password
DUMMY_HASH = hash_password("not a password of anyone's", b"voicebot-console")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def session_alive(created: float, seen: float, now: float, idle_s: float, max_s: float) -> bool:
    """A session ends when unused for ``idle_s`` or ``max_s`` after the login, whichever comes first."""
    return now - seen < idle_s and now - created < max_s


@dataclass
class _Tally:
    first: float
    failures: int


class LoginLimiter:
    """At most ``failures`` failed logins per key (a client address, a user name) within ``window_s``;
    then that key is refused until its window ends, whether the password is right or not. Memory is
    bounded: the oldest keys go first."""

    MAX_KEYS = 10_000

    def __init__(self, failures: int, window_s: float) -> None:
        self.failures, self.window_s = failures, window_s
        self._tallies: OrderedDict[str, _Tally] = OrderedDict()

    def wait_s(self, keys: list[str], now: float) -> float:
        """0 when a login may be tried now; otherwise the seconds until it may."""
        wait = 0.0
        for key in keys:
            tally = self._tallies.get(key)
            if tally is None:
                continue
            if now - tally.first >= self.window_s:
                del self._tallies[key]
            elif tally.failures >= self.failures:
                wait = max(wait, tally.first + self.window_s - now)
        return wait

    def failed(self, keys: list[str], now: float) -> None:
        for key in keys:
            tally = self._tallies.get(key)
            if tally is None or now - tally.first >= self.window_s:
                self._tallies[key] = _Tally(now, 1)
            else:
                tally.failures += 1
            self._tallies.move_to_end(key)
        while len(self._tallies) > self.MAX_KEYS:
            self._tallies.popitem(last=False)

    def succeeded(self, key: str) -> None:
        """A right password clears its user name's tally (not the address's: one account of one's own
        must not reset the count of guesses at others)."""
        self._tallies.pop(key, None)
