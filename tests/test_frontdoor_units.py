"""Pure parts of the front door: token buckets, recent-id cache, credential checks."""
from __future__ import annotations

import time

import pytest

from frontdoor.api import RecentIds, TokenBuckets
from frontdoor.credentials import (AuthError, Credential, CredentialStore, hash_secret, load_file, new_credential,
                                   save_file, sign)


def test_token_bucket_burst_then_refill():
    b = TokenBuckets(per_minute=60)          # 1/s, burst 60
    now = 1000.0
    assert all(b.take("k", now=now) == 0 for _ in range(60))
    wait = b.take("k", now=now)
    assert wait == pytest.approx(1.0)
    assert b.take("other", now=now) == 0     # per kiosk
    assert b.take("k", now=now + 1.0) == 0
    assert b.take("k", n=120, now=now + 500) == 60.0   # more than the burst can ever hold


def test_token_bucket_bounded_keys():
    b = TokenBuckets(per_minute=60, max_keys=100)
    for i in range(1000):
        b.take(f"k{i}", now=float(i))
    assert len(b._b) <= 100


def test_recent_ids_bounded_lru():
    r = RecentIds(capacity=3)
    for k in "abcd":
        r.add(k, k.upper())
    assert r.get("a") is None and r.get("d") == "D" and len(r) == 3


def _store():
    c, tok = new_credential("K1", "kiosk", ["U1"])
    g, gtok = new_credential("K2", "kiosk", ["U1"])
    g = Credential(**{**g.__dict__, "revoked": True})
    return CredentialStore(creds={"K1": c, "K2": g}), tok, gtok


def test_bearer():
    store, tok, gtok = _store()
    assert store.authenticate({"authorization": f"Bearer {tok}"}, b"").id == "K1"
    for bad in ("", "Bearer ", f"Basic {tok}", f"Bearer {tok[:-1]}", "Bearer nodot", f"Bearer X{tok}"):
        with pytest.raises(AuthError) as e:
            store.authenticate({"authorization": bad} if bad else {}, b"")
        assert e.value.status == 401
    with pytest.raises(AuthError) as e:
        store.authenticate({"authorization": f"Bearer {gtok}"}, b"")
    assert e.value.status == 403


def test_hmac_window_and_replay():
    store, tok, _ = _store()
    body = b'{"x": 1}'
    h = {k.lower(): v for k, v in sign(tok, body).items()}
    assert store.authenticate(h, body).id == "K1"
    with pytest.raises(AuthError, match="replayed"):
        store.authenticate(h, body)
    old = {k.lower(): v for k, v in sign(tok, body, timestamp=int(time.time()) - 301).items()}
    with pytest.raises(AuthError, match="window"):
        store.authenticate(old, body)
    fresh = {k.lower(): v for k, v in sign(tok, body, timestamp=int(time.time()) - 1).items()}
    with pytest.raises(AuthError, match="invalid signature"):
        store.authenticate(fresh, body + b" ")


def test_file_round_trip_and_reload(tmp_path):
    p = tmp_path / "c.yaml"
    c, tok = new_credential("S1", "source", ["*"])
    save_file(p, {"S1": c})
    assert (p.stat().st_mode & 0o777) == 0o600
    assert load_file(p)["S1"].secret_sha256 == hash_secret(tok.split(".", 1)[1])
    store = CredentialStore(p, reload_interval_s=0)
    assert store.authenticate({"authorization": f"Bearer {tok}"}, b"").covers_unit("anything")
    save_file(p, {"S1": Credential(**{**c.__dict__, "revoked": True})})
    with pytest.raises(AuthError) as e:
        store.authenticate({"authorization": f"Bearer {tok}"}, b"")
    assert e.value.status == 403
