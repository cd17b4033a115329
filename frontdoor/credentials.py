"""Per-kiosk and per-source credentials for the front doors.

File format (YAML; local default ``deploy/local/credentials.yaml``, git-ignored)::

    credentials:
      - id: KIOSK-H12-001          # a kiosk's id IS its kiosk_id in ratings
        kind: kiosk                # kiosk | source
        secret_sha256: 9f86d0...   # sha256 hex of the secret part of the token
        units: ["000.00.01.H12"]   # unit scope; "*" = every unit
        revoked: false
        created_at: "2026-11-20T10:00:00+07:00"
        note: "Quầy 3, TTPVHCC"

Tokens look like ``<id>.<secret>``; only sha256(secret) is stored. ``add`` prints the
token once; it cannot be recovered later (revoke and add a new one).

Two ways to authenticate a request (either is enough):

* Bearer: ``Authorization: Bearer <id>.<secret>``. The server hashes the secret and
  compares with ``hmac.compare_digest`` (constant time; an unknown id is compared against
  a dummy hash so timing does not reveal which ids exist).
* HMAC-SHA256 signature (for kiosks that prefer not to send the token on every request):
  ``X-Pulse-Key-Id: <id>``, ``X-Pulse-Timestamp: <unix seconds>``,
  ``X-Pulse-Signature: hex(HMAC_SHA256(key, "<timestamp>." + raw body))`` where
  ``key = bytes.fromhex(sha256(secret))`` (the client computes it from its token). The
  timestamp must be within ``SIGNATURE_WINDOW_S`` of the server clock and a signature is
  accepted once (replay cache for the window), so a captured request cannot be replayed;
  a retry must be re-signed with a fresh timestamp. Note the consequence: whoever can
  read the credentials file can forge HMAC signatures (not bearer tokens); keep it 0600.

Revocation: ``revoked: true`` -> 403. The store re-reads the file when its mtime/size
changes (checked at most every ``reload_interval_s``) and on ``reload()`` (the API calls
it on SIGHUP).

CLI: ``python -m frontdoor.credentials [--file PATH] add|revoke|list``.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import secrets
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

from pulse.config import REPO_ROOT, Settings

DEFAULT_PATH = REPO_ROOT / "deploy" / "local" / "credentials.yaml"
SIGNATURE_WINDOW_S = 300
KINDS = ("kiosk", "source")
_DUMMY_HASH = hashlib.sha256(b"motcua-pulse-no-such-credential").hexdigest()


def credentials_path(settings: Settings | None) -> Path:
    """Where the credentials file is: Settings.credentials_path (PULSE_CREDENTIALS, else
    <state_dir>/credentials.yaml), or deploy/local/credentials.yaml without settings."""
    if settings is not None:
        return settings.credentials_path
    return DEFAULT_PATH


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def signing_key(token: str) -> bytes:
    """HMAC key a client derives from its token ``<id>.<secret>``."""
    return bytes.fromhex(hash_secret(token.split(".", 1)[1]))


def sign(token: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers for an HMAC-signed request (used by tests, the bench and kiosk clients)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    sig = hmac.new(signing_key(token), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Pulse-Key-Id": token.split(".", 1)[0], "X-Pulse-Timestamp": ts, "X-Pulse-Signature": sig}


@dataclass(frozen=True)
class Credential:
    id: str
    kind: str
    secret_sha256: str
    units: tuple[str, ...] = ()
    revoked: bool = False
    created_at: str | None = None
    note: str | None = None

    def covers_unit(self, unit: str) -> bool:
        return "*" in self.units or unit in self.units


class AuthError(Exception):
    def __init__(self, status: int, reason: str):
        self.status = status
        self.reason = reason
        super().__init__(reason)


def _parse(doc) -> dict[str, Credential]:
    items = (doc or {}).get("credentials", []) if isinstance(doc, dict) else (doc or [])
    out: dict[str, Credential] = {}
    for it in items:
        units = it.get("units", it.get("unit_scope", ()))
        if isinstance(units, str):
            units = [units]
        c = Credential(id=str(it["id"]), kind=str(it.get("kind", "kiosk")),
                       secret_sha256=str(it["secret_sha256"]).lower(), units=tuple(str(u) for u in units or ()),
                       revoked=bool(it.get("revoked", False)), created_at=it.get("created_at"), note=it.get("note"))
        if c.kind not in KINDS:
            raise ValueError(f"credential {c.id}: kind must be one of {KINDS}")
        out[c.id] = c
    return out


def load_file(path: Path) -> dict[str, Credential]:
    if not path.exists():
        return {}
    return _parse(yaml.safe_load(path.read_text(encoding="utf-8")))


def save_file(path: Path, creds: dict[str, Credential]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"credentials": [
        {k: v for k, v in dict(id=c.id, kind=c.kind, secret_sha256=c.secret_sha256, units=list(c.units),
                                revoked=c.revoked, created_at=c.created_at, note=c.note).items() if v is not None}
        for c in creds.values()]}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        os.chmod(tmp, 0o600)
        yaml.safe_dump(doc, f, sort_keys=False, allow_unicode=True)
    os.replace(tmp, path)  # atomic: a reader sees the old or the new file, never half


def new_credential(cred_id: str, kind: str, units: list[str], note: str | None = None) -> tuple[Credential, str]:
    if "." in cred_id or not cred_id:
        raise ValueError("credential id must be non-empty and contain no '.'")
    secret = secrets.token_urlsafe(32)
    c = Credential(id=cred_id, kind=kind, secret_sha256=hash_secret(secret), units=tuple(units),
                   created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), note=note)
    return c, f"{cred_id}.{secret}"


class CredentialStore:
    """Thread-safe view of the credentials file, reloaded when the file changes."""

    def __init__(self, path: Path | None = None, creds: dict[str, Credential] | None = None,
                 reload_interval_s: float = 1.0):
        self.path = Path(path) if path else None
        self.reload_interval_s = reload_interval_s
        self._lock = threading.Lock()
        self._creds: dict[str, Credential] = dict(creds or {})
        self._sig: tuple | None = None
        self._checked = 0.0
        self._seen_sigs: OrderedDict[str, float] = OrderedDict()
        if self.path is not None:
            self.reload()

    @classmethod
    def from_settings(cls, settings: Settings) -> "CredentialStore":
        return cls(credentials_path(settings))

    def _file_sig(self):
        try:
            st = self.path.stat()
            return (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            return None

    def reload(self) -> None:
        if self.path is None:
            return
        sig = self._file_sig()
        creds = load_file(self.path)
        with self._lock:
            self._creds, self._sig, self._checked = creds, sig, time.monotonic()

    def _maybe_reload(self) -> None:
        if self.path is None or time.monotonic() - self._checked < self.reload_interval_s:
            return
        self._checked = time.monotonic()
        if self._file_sig() != self._sig:
            try:
                self.reload()
            except Exception:  # a half-edited file: keep serving the last good set
                pass

    def get(self, cred_id: str) -> Credential | None:
        self._maybe_reload()
        return self._creds.get(cred_id)

    def all(self) -> list[Credential]:
        self._maybe_reload()
        return list(self._creds.values())

    # -- authentication -----------------------------------------------------------

    def authenticate(self, headers, body: bytes, now: float | None = None) -> Credential:
        """The credential of a request, or AuthError(401 missing/wrong, 403 revoked)."""
        auth = headers.get("authorization")
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError(401, "Authorization must be 'Bearer <id>.<secret>'")
            cid, dot, secret = token.strip().partition(".")
            c = self.get(cid)
            ok = hmac.compare_digest(hash_secret(secret), c.secret_sha256 if c else _DUMMY_HASH)
            if not (c and dot and ok):
                raise AuthError(401, "invalid credential")
            if c.revoked:
                raise AuthError(403, "credential revoked")
            return c
        kid, ts, sig = (headers.get("x-pulse-key-id"), headers.get("x-pulse-timestamp"),
                        headers.get("x-pulse-signature"))
        if not (kid or ts or sig):
            raise AuthError(401, "missing credential (Authorization: Bearer, or X-Pulse-Key-Id/-Timestamp/-Signature)")
        if not (kid and ts and sig):
            raise AuthError(401, "incomplete signature headers")
        now = time.time() if now is None else now
        try:
            its = int(ts)
        except ValueError:
            raise AuthError(401, "X-Pulse-Timestamp must be unix seconds") from None
        if abs(now - its) > SIGNATURE_WINDOW_S:
            raise AuthError(401, f"X-Pulse-Timestamp outside the {SIGNATURE_WINDOW_S}s window")
        c = self.get(kid)
        key = bytes.fromhex(c.secret_sha256) if c else bytes.fromhex(_DUMMY_HASH)
        expected = hmac.new(key, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not (hmac.compare_digest(expected, sig.strip().lower()) and c):
            raise AuthError(401, "invalid signature")
        if c.revoked:
            raise AuthError(403, "credential revoked")
        with self._lock:
            cutoff = now - SIGNATURE_WINDOW_S
            while self._seen_sigs and next(iter(self._seen_sigs.values())) < cutoff:
                self._seen_sigs.popitem(last=False)
            if expected in self._seen_sigs:
                raise AuthError(401, "replayed signature (re-sign with a fresh timestamp)")
            self._seen_sigs[expected] = float(its)
        return c


# ----------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m frontdoor.credentials",
                                 description="Manage kiosk and source credentials.")
    ap.add_argument("--file", type=Path, default=None,
                    help=f"credentials file (default: from Settings, else {DEFAULT_PATH})")
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("add", help="add a credential and print its token once")
    a.add_argument("id", help="kiosk id (for kind kiosk) or source system id")
    a.add_argument("--kind", choices=KINDS, default="kiosk")
    a.add_argument("--unit", action="append", default=[], help="unit code in scope (repeat; '*' = all)")
    a.add_argument("--note")
    r = sub.add_parser("revoke", help="mark a credential revoked")
    r.add_argument("id")
    sub.add_parser("list", help="list credentials (never secrets)")
    args = ap.parse_args(argv)

    path = args.file or credentials_path(Settings.from_env())
    creds = load_file(path)
    if args.cmd == "add":
        if args.id in creds:
            print(f"error: credential {args.id!r} exists (revoke it and use a new id)", file=sys.stderr)
            return 2
        if not args.unit:
            print("error: give at least one --unit (or --unit '*')", file=sys.stderr)
            return 2
        c, token = new_credential(args.id, args.kind, args.unit, args.note)
        creds[c.id] = c
        save_file(path, creds)
        print(f"added {c.kind} {c.id} units={','.join(c.units)} in {path}", file=sys.stderr)
        print("token (shown once, store it on the device):", file=sys.stderr)
        print(token)
        return 0
    if args.cmd == "revoke":
        old = creds.get(args.id)
        if old is None:
            print(f"error: no credential {args.id!r}", file=sys.stderr)
            return 2
        creds[old.id] = Credential(**{**old.__dict__, "revoked": True})
        save_file(path, creds)
        print(f"revoked {old.id} (running APIs pick it up within a second, or send SIGHUP)")
        return 0
    for c in creds.values():
        print(f"{c.id}\t{c.kind}\t{','.join(c.units)}\t{'REVOKED' if c.revoked else 'active'}\t{c.created_at or ''}\t{c.note or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
