"""The front doors over HTTP: kiosk ratings and unit-system (DVCQG-style) dossier sync.

    python -m frontdoor --host 127.0.0.1 --port 8000 [--credentials PATH]

Endpoints (OpenAPI at /openapi.json, docs at /docs):

* ``GET  /health`` — 200 when Kafka is reachable, 503 otherwise (body says which).
* ``GET  /metrics`` — Prometheus text format: responses by route and status, request
  times (frontdoor.metrics).
* ``POST /v1/ratings`` — one KioskRating (contract kiosk-rating) as JSON.
  201 ``{"rating_id", "duplicate": false}`` once Kafka acknowledged it (acks=all);
  200 ``{"duplicate": true}`` for a resubmit of the same rating_id with the same content
  (nothing is produced); 409 for the same rating_id with different content.
* ``POST /v1/ratings:batch`` (alias ``/v1/ratings/batch``) — a JSON list of ratings,
  e.g. from a kiosk that was offline; 200 with one result per item, 503 if Kafka failed
  for any item (the client resends the batch; accepted items come back as duplicates).
* ``POST /v1/dossiers/sync`` — a DVCQG sync payload: one dossier with its status history
  (QuaTrinhXuLy), a list, or ``{"data": [...]}``. One DossierEvent per history record,
  with deterministic event ids (frontdoor.dvcqg). Source credentials only; the events'
  source_system is the credential id.

Order of checks (a request failing one is answered without touching Kafka):
413 body over Settings.max_request_bytes (Content-Length, then counted while reading) ->
401/403 credential (frontdoor.credentials) -> 422 contract, with ``errors: [{field,
reason}]`` -> 403 scope (a kiosk posts only its own kiosk_id and units in its scope) ->
429 per-kiosk token bucket (Settings.kiosk_rate_limit_per_minute, burst of one minute,
Retry-After in seconds) -> duplicate check -> produce and wait for the ack (503 if none).

Idempotency: a bounded in-memory cache of recently accepted rating_ids / event_ids
(``RECENT_IDS`` entries, per process) answers resubmits without producing. It is a
courtesy, not the guarantee: after a restart, with several API processes, or for
resubmits older than the cache, a duplicate reaches Kafka and downstream dedup drops it
(the Faust worker and ClickHouse both key on rating_id / event_id).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import signal
import threading
import time
from collections import OrderedDict
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from pydantic.json_schema import models_json_schema

from frontdoor import dvcqg
from frontdoor.credentials import AuthError, Credential, CredentialStore
from frontdoor.metrics import ApiMetrics, CountResponses
from frontdoor.publisher import AsyncPublisher, kafka_reachable
from pulse.config import Settings
from pulse.kafka_security import KafkaConnectError, KafkaUnreachableError, preflight
from pulse.topics import DOSSIER_EVENTS, RATINGS
from schemas import codec
from schemas.contracts import MAX_EVENT_BYTES, DossierEvent, KioskRating

RECENT_IDS = 200_000
MAX_BATCH_ITEMS = 1000


# ----------------------------------------------------------------------------- helpers

class RecentIds:
    """Bounded LRU of accepted ids -> content fingerprint; plus ids being produced now."""

    def __init__(self, capacity: int = RECENT_IDS):
        self.capacity = capacity
        self._d: OrderedDict[str, str] = OrderedDict()
        self.inflight: dict[str, asyncio.Future] = {}

    def get(self, key: str) -> str | None:
        fp = self._d.get(key)
        if fp is not None:
            self._d.move_to_end(key)
        return fp

    def add(self, key: str, fp: str) -> None:
        self._d[key] = fp
        self._d.move_to_end(key)
        while len(self._d) > self.capacity:
            self._d.popitem(last=False)

    def __len__(self) -> int:
        return len(self._d)


class TokenBuckets:
    """Per-key token bucket: ``per_minute`` tokens a minute, bursts up to ``capacity``."""

    def __init__(self, per_minute: float, capacity: float | None = None, max_keys: int = 100_000):
        self.rate = per_minute / 60.0
        self.capacity = float(capacity if capacity is not None else max(1.0, per_minute))
        self.max_keys = max_keys
        self._b: dict[str, list[float]] = {}

    def take(self, key: str, n: int = 1, now: float | None = None) -> float:
        """0.0 if n tokens were taken, else seconds until they would be available."""
        now = time.monotonic() if now is None else now
        b = self._b.get(key)
        if b is None:
            if len(self._b) >= self.max_keys:
                self._prune(now)
            b = self._b[key] = [self.capacity, now]
        tokens = min(self.capacity, b[0] + (now - b[1]) * self.rate)
        b[1] = now
        if tokens >= n:
            b[0] = tokens - n
            return 0.0
        b[0] = tokens
        if self.rate <= 0 or n > self.capacity:
            return 60.0
        return (n - tokens) / self.rate

    def _prune(self, now: float) -> None:
        full = [k for k, (t, last) in self._b.items() if t + (now - last) * self.rate >= self.capacity]
        for k in full:
            del self._b[k]
        if len(self._b) >= self.max_keys:  # still full of active keys: drop the oldest half
            for k in sorted(self._b, key=lambda k: self._b[k][1])[: len(self._b) // 2]:
                del self._b[k]


class Oversize(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    cl = request.headers.get("content-length")
    if cl is not None:
        try:
            if int(cl) > limit:
                raise Oversize
        except ValueError:
            pass
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Oversize
        chunks.append(chunk)
    return b"".join(chunks)


def _err(status: int, detail: str, headers: dict | None = None, **extra) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def _field(loc) -> str:
    return ".".join(str(x) for x in loc) if loc else "$"


def contract_errors(model: type[BaseModel], raw: bytes) -> list[dict[str, str]]:
    """Every contract problem of one event, as [{field, reason}] (slow path, errors only)."""
    if len(raw) > MAX_EVENT_BYTES:
        return [{"field": "$", "reason": f"event is {len(raw)} bytes, more than {MAX_EVENT_BYTES}"}]
    try:
        model.model_validate_json(raw, strict=True)
    except ValidationError as e:
        out = []
        for err in e.errors(include_url=False, include_context=False, include_input=False):
            if err["type"] == "json_invalid":
                out.append({"field": "$", "reason": f"invalid JSON: {err['msg']}"})
            else:
                out.append({"field": _field(err["loc"]), "reason": err["msg"]})
        return out
    return []


def decode_event(model: type[BaseModel], raw: bytes):
    """(model instance, None) or (None, [{field, reason}])."""
    try:
        return codec.decode_as(model, raw), None
    except ValueError:  # ContractError
        errors = contract_errors(model, raw)
        if not errors:
            try:
                codec.decode_as(model, raw)
            except ValueError as e:
                errors = [{"field": getattr(e, "field", None) or "$", "reason": str(getattr(e, "message", e))}]
        return None, errors


def _fingerprint(model: BaseModel) -> str:
    return hashlib.sha256(codec.encode(model.model_copy(update={"ingest_time": None}))).hexdigest()


# ----------------------------------------------------------------------------- OpenAPI models

class FieldError(BaseModel):
    field: str = Field(description="Path of the offending field, e.g. 'level' or 'QuaTrinhXuLy[0].ThoiDiemXuLy'; '$' for the whole body")
    reason: str


class ErrorBody(BaseModel):
    detail: str


class InvalidBody(BaseModel):
    detail: str
    errors: list[FieldError]


class RatingAccepted(BaseModel):
    rating_id: str
    duplicate: bool = Field(description="True when this rating_id was already accepted: nothing was produced again")
    ingest_time: str | None = None


class ItemResult(BaseModel):
    index: int
    id: str | None = Field(None, description="rating_id, or MaHoSo for dossiers")
    status: str = Field(description="accepted | duplicate | invalid | forbidden | rate_limited | conflict | unavailable")
    errors: list[FieldError] = []
    event_ids: list[str] = []


class BatchResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[ItemResult]


class SyncResult(BaseModel):
    dossiers: int
    events: int
    produced: int
    duplicates: int
    rejected: int
    results: list[ItemResult]


class Health(BaseModel):
    status: str
    kafka_reachable: bool
    bootstrap: str
    recent_ids: int
    credentials: int


_COMMON: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong credential"},
    403: {"model": ErrorBody, "description": "Revoked credential, or outside the credential's scope"},
    413: {"model": ErrorBody, "description": "Body larger than the limit"},
    422: {"model": InvalidBody, "description": "Invalid payload; each problem names its field"},
    503: {"model": ErrorBody, "description": "Kafka did not acknowledge; nothing was accepted, retry"},
}
_AUTH_HEADERS = [
    {"name": "X-Pulse-Key-Id", "in": "header", "required": False, "schema": {"type": "string"}},
    {"name": "X-Pulse-Timestamp", "in": "header", "required": False, "schema": {"type": "string"}},
    {"name": "X-Pulse-Signature", "in": "header", "required": False, "schema": {"type": "string"}},
]

DVCQG_RECORD_SCHEMA = {
    "type": "object",
    "description": "A status-history record (QuaTrinhXuLy)",
    "properties": {
        "MaHoSo": {"type": "string"}, "NguoiXuLy": {"type": "string"},
        "ThoiDiemXuLy": {"type": "string", "description": "yyyyMMddHHmmss local time, or ISO 8601"},
        "TrangThai": {"type": "integer", "minimum": 1, "maximum": 10},
        "NgayBatDau": {"type": "string"}, "NgayKetThucTheoQuyDinh": {"type": "string"},
    },
    "required": ["TrangThai", "ThoiDiemXuLy"],
}
DVCQG_DOSSIER_SCHEMA = {
    "type": "object",
    "description": "A dossier as one-stop systems sync it to DVCQG, with its status history",
    "properties": {
        "MaHoSo": {"type": "string"}, "MaTTHC": {"type": "string"}, "TenTTHC": {"type": "string"},
        "MaLinhVuc": {"type": "string"}, "DonViXuLy": {"type": "string"},
        "KenhThucHien": {"type": "integer", "enum": [1, 2, 3]},
        "LoaiDoiTuong": {"type": "integer"},
        "NgayNopHoSo": {"type": "string"}, "NgayTiepNhan": {"type": "string"},
        "NgayHenTra": {"type": "string"}, "TrangThaiHoSo": {"type": "integer", "minimum": 1, "maximum": 10},
        "NgayKetThucXuLy": {"type": "string"}, "NgayTra": {"type": "string"}, "NgayTuChoi": {"type": "string"},
        "HoSoCoThanhPhanSoHoa": {"type": "integer", "enum": [0, 1]},
        "DuocThanhToanTrucTuyen": {"type": "integer", "enum": [0, 1, 2]},
        "TaiKhoanDuocXacThucVoiVNeID": {"type": "integer", "enum": [0, 1]},
        "DanhSachHoSoBoSung": {"type": "array", "items": {"type": "object", "properties": {
            "NgayYeuCauBoSung": {"type": "string"}, "NgayTiepNhanBoSung": {"type": "string"},
            "NgayHenTraTruoc": {"type": "string"}, "NgayHenTraMoi": {"type": "string"}}}},
        "QuaTrinhXuLy": {"type": "array", "items": {"$ref": "#/components/schemas/DvcqgStatusRecord"}},
    },
    "required": ["MaHoSo", "MaTTHC", "MaLinhVuc", "DonViXuLy", "QuaTrinhXuLy"],
}


def _body(schema: dict, description: str) -> dict:
    return {"requestBody": {"required": True, "description": description,
                            "content": {"application/json": {"schema": schema}}},
            "parameters": _AUTH_HEADERS}


# ----------------------------------------------------------------------------- app

def create_app(settings: Settings, credentials: CredentialStore | str | Path | None = None,
               producer=None) -> FastAPI:
    """The API. ``credentials``: a CredentialStore or a file path (default: from settings).
    ``producer``: an AsyncPublisher, or a kafka-python producer to wrap, or None (own one)."""
    if credentials is None:
        store = CredentialStore.from_settings(settings)
    elif isinstance(credentials, CredentialStore):
        store = credentials
    else:
        store = CredentialStore(Path(credentials))
    publisher = producer if isinstance(producer, AsyncPublisher) else AsyncPublisher(settings, producer)
    tz = ZoneInfo(settings.timezone)
    ratings_topic = settings.topic(RATINGS.name)
    dossier_topic = settings.topic(DOSSIER_EVENTS.name)
    limit = settings.max_request_bytes
    buckets = TokenBuckets(settings.kiosk_rate_limit_per_minute)
    recent = RecentIds(RECENT_IDS)

    async def lifespan(app):
        # A wrong SASL password or CA file: refuse to start, with the preflight's message
        # (pulse.kafka_security), instead of answering 503 for ever. A broker that is merely
        # down is not a reason: the API starts while Kafka is down and publishes once it is up.
        try:
            await asyncio.get_running_loop().run_in_executor(None, preflight, settings)
        except KafkaUnreachableError as e:
            logging.getLogger("motcua.frontdoor").warning("%s (starting anyway)", e)
        except KafkaConnectError as e:
            logging.getLogger("motcua.frontdoor").error("refusing to start: %s", e)
            raise

        def warm():
            try:
                p = publisher._get()
                for t in (ratings_topic, dossier_topic):
                    p.partitions_for(t)
            except Exception:
                pass
        threading.Thread(target=warm, daemon=True).start()
        if threading.current_thread() is threading.main_thread():
            try:
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, store.reload)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        yield
        await asyncio.get_running_loop().run_in_executor(None, publisher.close)

    app = FastAPI(title="motcua-pulse front doors", version="1.0",
                  description=__doc__, lifespan=lifespan)
    app.state.settings, app.state.credentials, app.state.publisher = settings, store, publisher
    app.state.recent, app.state.buckets = recent, buckets
    # every response counted by route template and status, served at /metrics (frontdoor.metrics)
    api_metrics = app.state.metrics = ApiMetrics()
    app.add_middleware(CountResponses, metrics=api_metrics)

    # -- common request steps ---------------------------------------------------------

    async def admit(request: Request) -> tuple[bytes, Credential] | JSONResponse:
        try:
            body = await read_body(request, limit)
        except Oversize:
            return _err(413, f"request body larger than {limit} bytes")
        try:
            cred = store.authenticate(request.headers, body)
        except AuthError as e:
            return _err(e.status, e.reason, headers={"WWW-Authenticate": "Bearer"} if e.status == 401 else None)
        return body, cred

    def scope_problem(cred: Credential, r: KioskRating) -> str | None:
        if cred.kind == "kiosk" and r.kiosk_id != cred.id:
            return f"kiosk {cred.id} may not post ratings for kiosk_id {r.kiosk_id}"
        if not cred.covers_unit(r.unit_code):
            return f"unit_code {r.unit_code} is outside the credential's scope"
        return None

    async def produce_ratings(items: list[KioskRating]) -> list[BaseException | None]:
        now = datetime.now(tz)
        stamped = [r.model_copy(update={"ingest_time": now}) for r in items]
        return await publisher.publish_many(
            [(ratings_topic, r.kiosk_id.encode(), codec.encode(r)) for r in stamped])

    # -- endpoints ----------------------------------------------------------------------

    @app.get("/metrics", include_in_schema=False)
    async def metrics():
        """Prometheus text format: responses by route and status, request times, the process."""
        return api_metrics.response()

    @app.get("/health", response_model=Health, responses={503: {"model": Health}})
    async def health():
        ok = await asyncio.get_running_loop().run_in_executor(None, kafka_reachable, settings)
        body = Health(status="ok" if ok else "degraded", kafka_reachable=ok, bootstrap=settings.kafka_bootstrap,
                      recent_ids=len(recent), credentials=len(store.all()))
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    @app.post("/v1/ratings", status_code=201, response_model=RatingAccepted,
              responses={200: {"model": RatingAccepted, "description": "Duplicate: already accepted"},
                         409: {"model": ErrorBody, "description": "rating_id reused with different content"},
                         429: {"model": ErrorBody, "description": "Kiosk over its rate limit; see Retry-After"},
                         **_COMMON},
              openapi_extra=_body({"$ref": "#/components/schemas/KioskRating"}, "One kiosk rating"))
    async def post_rating(request: Request):
        got = await admit(request)
        if isinstance(got, JSONResponse):
            return got
        body, cred = got
        rating, errors = decode_event(KioskRating, body)
        if errors:
            return _err(422, "invalid rating", errors=errors)
        problem = scope_problem(cred, rating)
        if problem:
            return _err(403, problem)
        wait = buckets.take(rating.kiosk_id)
        if wait:
            return _err(429, f"kiosk {rating.kiosk_id} is over {settings.kiosk_rate_limit_per_minute} ratings/minute",
                        headers={"Retry-After": str(max(1, math.ceil(wait)))})
        fp = _fingerprint(rating)
        rid = rating.rating_id
        while True:
            prev = recent.get(rid)
            if prev is not None:
                if prev != fp:
                    return _err(409, f"rating_id {rid} was already accepted with different content")
                return JSONResponse({"rating_id": rid, "duplicate": True}, status_code=200)
            pending = recent.inflight.get(rid)
            if pending is None:
                break
            await asyncio.shield(pending)  # an identical resubmit racing the first: wait for it
        fut = asyncio.get_running_loop().create_future()
        recent.inflight[rid] = fut
        try:
            now = datetime.now(tz)
            stamped = rating.model_copy(update={"ingest_time": now})
            (res,) = await publisher.publish_many([(ratings_topic, rating.kiosk_id.encode(), codec.encode(stamped))])
            if res is None:
                recent.add(rid, fp)
        finally:
            del recent.inflight[rid]
            fut.set_result(None)
        if res is not None:
            return _err(503, f"Kafka did not acknowledge the rating: {res}", headers={"Retry-After": "5"})
        return JSONResponse({"rating_id": rid, "duplicate": False, "ingest_time": now.isoformat()}, status_code=201)

    async def post_ratings_batch(request: Request):
        got = await admit(request)
        if isinstance(got, JSONResponse):
            return got
        body, cred = got
        try:
            items = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            return _err(422, "invalid batch", errors=[{"field": "$", "reason": f"invalid JSON: {e}"}])
        if isinstance(items, dict) and isinstance(items.get("ratings"), list):
            items = items["ratings"]
        if not isinstance(items, list):
            return _err(422, "invalid batch", errors=[{"field": "$", "reason": "expected a JSON list of ratings"}])
        if len(items) > MAX_BATCH_ITEMS:
            return _err(422, "batch too long", errors=[{"field": "$", "reason": f"at most {MAX_BATCH_ITEMS} ratings per batch"}])
        results: list[dict] = []
        to_send: list[tuple[int, KioskRating, str]] = []
        in_batch: dict[str, str] = {}
        retry_after = 0.0
        for i, item in enumerate(items):
            raw = json.dumps(item, ensure_ascii=False).encode()
            r, errors = decode_event(KioskRating, raw)
            rid = item.get("rating_id") if isinstance(item, dict) and isinstance(item.get("rating_id"), str) else None
            res: dict[str, Any] = {"index": i, "id": rid, "status": "accepted", "errors": []}
            results.append(res)
            if errors:
                res.update(status="invalid", errors=[{**e, "field": f"[{i}].{e['field']}"} for e in errors])
                continue
            problem = scope_problem(cred, r)
            if problem:
                res.update(status="forbidden", errors=[{"field": f"[{i}]", "reason": problem}])
                continue
            fp = _fingerprint(r)
            prev = recent.get(r.rating_id) or in_batch.get(r.rating_id) or (
                fp if r.rating_id in recent.inflight else None)
            if prev is not None:
                res.update(status="duplicate" if prev == fp else "conflict")
                continue
            wait = buckets.take(r.kiosk_id)
            if wait:
                retry_after = max(retry_after, wait)
                res.update(status="rate_limited", errors=[{"field": f"[{i}].kiosk_id", "reason": "over the kiosk's rate limit"}])
                continue
            in_batch[r.rating_id] = fp
            to_send.append((i, r, fp))
        outcome = await produce_ratings([r for _, r, _ in to_send])
        failed = 0
        for (i, r, fp), err in zip(to_send, outcome):
            if err is None:
                recent.add(r.rating_id, fp)
            else:
                failed += 1
                results[i].update(status="unavailable", errors=[{"field": f"[{i}]", "reason": f"Kafka: {err}"}])
        counts = {s: sum(1 for x in results if x["status"] == s) for s in ("accepted", "duplicate")}
        payload = {"accepted": counts["accepted"], "duplicates": counts["duplicate"],
                   "rejected": len(results) - counts["accepted"] - counts["duplicate"], "results": results}
        headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after else None
        if failed:
            return JSONResponse({"detail": f"Kafka did not acknowledge {failed} ratings; resend the batch", **payload},
                                status_code=503, headers={"Retry-After": "5"})
        return JSONResponse(payload, status_code=200, headers=headers)

    batch_kwargs: dict[str, Any] = dict(
        response_model=BatchResult, responses={**_COMMON, 503: {"model": BatchResult, "description": "Kafka failed for some items"}},
        openapi_extra=_body({"type": "array", "maxItems": MAX_BATCH_ITEMS, "items": {"$ref": "#/components/schemas/KioskRating"}},
                            "Ratings, e.g. a kiosk's backlog after being offline"))
    app.post("/v1/ratings:batch", **batch_kwargs)(post_ratings_batch)
    app.post("/v1/ratings/batch", **batch_kwargs, include_in_schema=False)(post_ratings_batch)

    @app.post("/v1/dossiers/sync", response_model=SyncResult,
              responses={**_COMMON, 503: {"model": SyncResult, "description": "Kafka failed for some events"}},
              openapi_extra=_body({"oneOf": [
                  {"$ref": "#/components/schemas/DvcqgDossier"},
                  {"type": "array", "maxItems": MAX_BATCH_ITEMS, "items": {"$ref": "#/components/schemas/DvcqgDossier"}},
              ]}, "One DVCQG dossier with its status history, or a list"))
    async def post_dossier_sync(request: Request):
        got = await admit(request)
        if isinstance(got, JSONResponse):
            return got
        body, cred = got
        if cred.kind != "source":
            return _err(403, "only source (unit system) credentials may sync dossiers")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            return _err(422, "invalid sync payload", errors=[{"field": "$", "reason": f"invalid JSON: {e}"}])
        batch = dvcqg.is_batch(payload)
        try:
            dossiers = dvcqg.iter_dossiers(payload)
        except dvcqg.DvcqgError as e:
            return _err(422, "invalid sync payload", errors=e.problems)
        if len(dossiers) > MAX_BATCH_ITEMS:
            return _err(422, "batch too long", errors=[{"field": "$", "reason": f"at most {MAX_BATCH_ITEMS} dossiers per request"}])
        now = datetime.now(tz)
        results: list[dict[str, Any]] = []
        to_send: list[tuple[int, DossierEvent]] = []
        n_events, dups = 0, 0
        for i, d in enumerate(dossiers):
            code = d.get("MaHoSo") if isinstance(d, dict) and isinstance(d.get("MaHoSo"), str) else None
            res: dict[str, Any] = {"index": i, "id": code, "status": "accepted", "errors": [], "event_ids": []}
            results.append(res)
            prefix = f"[{i}]." if batch else ""
            try:
                events = dvcqg.convert_dossier(d, cred.id, ingest_time=now, tz=settings.timezone)
            except dvcqg.DvcqgError as e:
                res.update(status="invalid", errors=[{"field": prefix + p["field"], "reason": p["reason"]} for p in e.problems])
                continue
            if events and not cred.covers_unit(events[0].unit_code):
                res.update(status="forbidden", errors=[{"field": prefix + "DonViXuLy",
                                                        "reason": f"unit {events[0].unit_code} is outside the credential's scope"}])
                continue
            n_events += len(events)
            res["event_ids"] = [ev.event_id for ev in events]
            fresh = [ev for ev in events if recent.get(ev.event_id) is None]
            dups += len(events) - len(fresh)
            if not fresh:
                res["status"] = "duplicate"
            for ev in fresh:
                to_send.append((i, ev))
        if not batch and results and results[0]["status"] in ("invalid", "forbidden"):
            r0 = results[0]
            code = 422 if r0["status"] == "invalid" else 403
            return _err(code, "invalid sync payload" if code == 422 else r0["errors"][0]["reason"], errors=r0["errors"])
        outcome = await publisher.publish_many(
            [(dossier_topic, ev.dossier_code.encode(), codec.encode(ev)) for _, ev in to_send])
        failed = 0
        for (i, ev), err in zip(to_send, outcome):
            if err is None:
                recent.add(ev.event_id, ev.event_id)
            else:
                failed += 1
                results[i].update(status="unavailable")
                results[i]["errors"].append({"field": f"[{i}]", "reason": f"Kafka: {err}"})
        payload = {"dossiers": len(results), "events": n_events, "produced": len(to_send) - failed,
                   "duplicates": dups,
                   "rejected": sum(1 for r in results if r["status"] not in ("accepted", "duplicate")),
                   "results": results}
        if failed:
            return JSONResponse({"detail": f"Kafka did not acknowledge {failed} events; resend", **payload},
                                status_code=503, headers={"Retry-After": "5"})
        return JSONResponse(payload, status_code=200)

    def custom_openapi():
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        _, defs = models_json_schema([(KioskRating, "validation"), (DossierEvent, "validation")],
                                     ref_template="#/components/schemas/{model}")
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        comps.update(defs.get("$defs", {}))
        comps["DvcqgStatusRecord"] = DVCQG_RECORD_SCHEMA
        comps["DvcqgDossier"] = DVCQG_DOSSIER_SCHEMA
        schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        schema["security"] = [{"bearer": []}, {}]
        app.openapi_schema = schema
        return schema

    # FastAPI's documented way to extend the generated schema: replace the app's openapi method
    app.openapi = custom_openapi  # type: ignore[method-assign]
    return app
