"""File import: exports from unit systems or kiosk vendors -> Kafka.

    python -m frontdoor.importer FILE... [--format jsonl|csv] [--kind dossier|rating|dvcqg]
                                 [--source ID] [--rejects PATH] [--quiet]

Kinds
* ``rating``  — one KioskRating (contract kiosk-rating) per JSONL line or CSV row.
* ``dossier`` — one DossierEvent (contract dossier-status) per line/row.
* ``dvcqg``   — one DVCQG dossier object with its status history (QuaTrinhXuLy) per JSONL
  line; converted by frontdoor.dvcqg into one event per history record. ``--source``
  (default ``dvcqg``) becomes source_system and is part of the deterministic event id:
  use the same id as the unit system's API credential to deduplicate against its pushes.

CSV: the header names contract fields; empty cells are absent; ``criteria`` and
``supplements`` cells hold JSON; numbers and booleans are converted from text.
Format defaults from the file extension (.csv -> csv, else jsonl); kind defaults to rating.

Every line is checked against the contract before it is produced; a bad line is
reported with its FILE:LINE and reason and never stops the import. Messages are
produced with acks=all and the import waits for every acknowledgement: a line counts as
accepted only when Kafka acknowledged it. ingest_time is set to the import time.

Exit code: 0 when every line was accepted; 1 when some lines were rejected (the good
lines ARE imported — fix the listed lines and re-import the file: ids are deterministic,
so lines already imported are dropped downstream by rating_id / event_id dedup); 2 when
the import could not run (unreadable file, Kafka unavailable or not acknowledging).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

from tqdm import tqdm

from frontdoor import dvcqg
from frontdoor.api import contract_errors
from frontdoor.publisher import make_producer
from pulse.config import Settings
from pulse.kafka_security import preflight
from pulse.topics import DOSSIER_EVENTS, RATINGS
from schemas import codec
from schemas.contracts import DossierEvent, KioskRating

KINDS = ("rating", "dossier", "dvcqg")
_JSON_CELLS = {"criteria", "supplements"}
_BOOL_CELLS = {"has_digitised_components", "electronic_result", "vneid_authenticated"}
_INT_CELLS = {"level", "scale", "status", "channel", "owner_type", "paid_online"}


@dataclass
class Rejected:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class Summary:
    lines: int = 0
    accepted: int = 0      # lines whose messages Kafka acknowledged
    messages: int = 0      # messages acknowledged (dvcqg: one per history record)
    rejected: list[Rejected] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.rejected else 0

    def render(self, max_listed: int = 50) -> str:
        out = [f"lines: {self.lines}  accepted: {self.accepted}  messages produced: {self.messages}  "
               f"rejected: {len(self.rejected)}  ({self.seconds:.1f}s)"]
        for r in self.rejected[:max_listed]:
            out.append(f"  rejected {r}")
        if len(self.rejected) > max_listed:
            out.append(f"  ... and {len(self.rejected) - max_listed} more (see --rejects)")
        return "\n".join(out)


class ImportFailed(Exception):
    pass


def _csv_value(key: str, v: str):
    if v == "":
        return None
    if key in _JSON_CELLS:
        return json.loads(v)
    if key in _BOOL_CELLS:
        s = v.strip().lower()
        if s in ("1", "true", "yes"):
            return True
        if s in ("0", "false", "no"):
            return False
        return v
    if key in _INT_CELLS:
        try:
            return int(v)
        except ValueError:
            return v
    return v


def iter_records(path: Path, fmt: str) -> Iterator[tuple[int, object]]:
    """(line number, parsed object or an Exception) — never raises for one bad line."""
    with open(path, "r", encoding="utf-8-sig", newline="") as f:
        if fmt == "jsonl":
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    yield n, json.loads(line)
                except ValueError as e:
                    yield n, ValueError(f"invalid JSON: {e}")
        else:
            reader = csv.DictReader(f)
            for row in reader:
                n = reader.line_num
                try:
                    if None in row:
                        raise ValueError("more cells than header columns")
                    yield n, {k: _csv_value(k, v) for k, v in row.items() if k and _csv_value(k, v or "") is not None}
                except ValueError as e:
                    yield n, ValueError(f"bad CSV row: {e}")


def _count_lines(path: Path) -> int | None:
    try:
        with open(path, "rb") as f:
            return sum(buf.count(b"\n") for buf in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return None


def run_import(files: list[Path], settings: Settings, kind: str = "rating", fmt: str | None = None,
               source: str = dvcqg.DEFAULT_SOURCE, producer=None, progress: bool = True,
               flush_every: int = 5000) -> Summary:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    own = producer is None
    if own:
        try:
            # a wrong password or CA file: the preflight's clear message, not a late timeout
            preflight(settings)
            producer = make_producer(settings, linger_ms=20, batch_size=256 * 1024)
        except Exception as e:  # noqa: BLE001
            raise ImportFailed(f"Kafka unavailable at {settings.kafka_bootstrap}: {e}") from e
    topic = settings.topic(RATINGS.name if kind == "rating" else DOSSIER_EVENTS.name)
    model = KioskRating if kind == "rating" else DossierEvent
    tz = ZoneInfo(settings.timezone)
    summary = Summary()
    lock = threading.Lock()
    # per line: messages still unacknowledged, and whether any failed
    pending: dict[tuple[str, int], list] = {}
    t0 = time.monotonic()

    def settle(key, err):
        with lock:
            st = pending[key]
            st[0] -= 1
            if err is not None and st[1] is None:
                st[1] = err
            if st[0] == 0:
                del pending[key]
                if st[1] is None:
                    summary.accepted += 1
                    summary.messages += st[2]
                else:
                    summary.rejected.append(Rejected(key[0], key[1], f"Kafka did not acknowledge: {st[1]}"))

    def reject(name, n, reason):
        with lock:
            summary.rejected.append(Rejected(name, n, reason))

    try:
        for path in files:
            path = Path(path)
            name = str(path)
            f = fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
            if kind == "dvcqg" and f != "jsonl":
                raise ImportFailed("--kind dvcqg reads JSONL (one dossier object per line)")
            if not path.exists():
                raise ImportFailed(f"{name}: no such file")
            bar = tqdm(total=_count_lines(path), unit="line", desc=path.name, disable=not progress,
                       file=sys.stderr, mininterval=0.5)
            last_line = 0
            for n, obj in iter_records(path, f):
                bar.update(n - last_line)
                last_line = n
                summary.lines += 1
                if isinstance(obj, Exception):
                    reject(name, n, str(obj))
                    continue
                now = datetime.now(tz)
                if kind == "dvcqg":
                    try:
                        events = dvcqg.convert_dossier(obj, source, ingest_time=now, tz=settings.timezone)
                    except dvcqg.DvcqgError as e:
                        reject(name, n, "; ".join(f"{p['field']}: {p['reason']}" for p in e.problems))
                        continue
                    msgs = [(e.dossier_code.encode(), codec.encode(e)) for e in events]
                else:
                    if isinstance(obj, dict) and "ingest_time" in obj:
                        obj = {k: v for k, v in obj.items() if k != "ingest_time"}
                    raw = json.dumps(obj, ensure_ascii=False).encode()
                    try:
                        ev = codec.decode_as(model, raw)
                    except ValueError:
                        errs = contract_errors(model, raw) or [{"field": "$", "reason": "invalid"}]
                        reject(name, n, "; ".join(f"{e['field']}: {e['reason']}" for e in errs))
                        continue
                    ev = ev.model_copy(update={"ingest_time": now})
                    key = (ev.kiosk_id if kind == "rating" else ev.dossier_code).encode()
                    msgs = [(key, codec.encode(ev))]
                if not msgs:
                    reject(name, n, "no events")
                    continue
                k = (name, n)
                with lock:
                    pending[k] = [len(msgs), None, len(msgs)]
                for mk, mv in msgs:
                    try:
                        fut = producer.send(topic, key=mk, value=mv)
                    except Exception as e:  # noqa: BLE001 - buffer full / metadata timeout
                        settle(k, e)
                        continue
                    fut.add_callback(lambda md, k=k: settle(k, None))
                    fut.add_errback(lambda e, k=k: settle(k, e))
                if summary.lines % flush_every == 0:
                    producer.flush(timeout=60)
            bar.close()
        producer.flush(timeout=120)
        if pending:
            raise ImportFailed(f"{len(pending)} lines still unacknowledged by Kafka after flush")
    finally:
        if own:
            try:
                producer.close(timeout=10)
            except Exception:
                pass
    summary.rejected.sort(key=lambda r: (r.file, r.line))
    summary.seconds = time.monotonic() - t0
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m frontdoor.importer", description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path, metavar="FILE")
    ap.add_argument("--format", choices=("jsonl", "csv"), default=None, help="default: from the extension")
    ap.add_argument("--kind", choices=KINDS, default="rating")
    ap.add_argument("--source", default=dvcqg.DEFAULT_SOURCE, help="source_system for --kind dvcqg (part of event ids)")
    ap.add_argument("--rejects", type=Path, default=None, help="write every rejected FILE:LINE: reason here")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    settings = Settings.from_env()
    try:
        s = run_import(args.files, settings, kind=args.kind, fmt=args.format, source=args.source,
                       progress=not args.quiet)
    except ImportFailed as e:
        print(f"import failed: {e}", file=sys.stderr)
        return 2
    print(s.render())
    if args.rejects:
        args.rejects.write_text("".join(f"{r}\n" for r in s.rejected), encoding="utf-8")
    return s.exit_code


if __name__ == "__main__":
    sys.exit(main())
