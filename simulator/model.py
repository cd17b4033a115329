"""A realistic province feed: dossier lifecycles and kiosk ratings, as contract bytes.

``generate(config)`` yields ``SimEvent``s in event-time order (each day's events sorted by
time; a dossier's later events wait in a heap until their day comes), deterministically
for a given ``SimConfig.seed``. Every dossier draws from its own random stream derived from
(seed, day, index), so switching an anomaly on for one unit leaves every other dossier
byte-identical.

Volumes and mixes (defaults; all in SimConfig):
* ~240,000 dossiers a year for the province (DOMAIN.md seeds), times ``scale``; ~80% at
  communes, mostly same-day civil-status and certification procedures; ~20% at departments.
* channels: online ~35%, public postal ~3%, the rest at the counter.
* outcomes: ~2% late on average with unit-level variation, the rest early or on time;
  ~5% with a supplement round (10% of those with a second round, which makes them late
  under the index rules); ~1% not accepted / withdrawn / stopped.
* ratings: ~35% of counter visits rate the service at the unit's kiosk on return; ~90%
  satisfied or very satisfied; ~15% of kiosks have three levels.
Promised dates (NgayHenTra) come from rules.calendar: received time + the procedure's
legal working days.

Anomalies (``Anomaly.parse``): ``unit_falling_behind:UNIT`` (that unit's late share ramps
from its normal level to ~60% over the window, with more supplement rounds),
``kiosk_silent:KIOSK`` (the kiosk sends nothing from the window's midpoint on),
``malformed:P`` (share P of events replaced by broken bytes, one named defect each),
``duplicates:P`` (share P re-sent with the same id a few events later), ``out_of_order:P``
(share P swapped with the same key's next event of the day).
"""
from __future__ import annotations

import heapq
import json
import math
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Iterator

from rules.calendar import VIETNAM_TZ, WorkingCalendar, default_calendar
from schemas.contracts import (DOSSIER_CONTRACT_VERSION, RATING_CONTRACT_VERSION, THREE_LEVEL_MAP,
                               SupplementRound)
from schemas.reference import Procedure, Reference, Unit, load_reference

DOSSIER_TOPIC = "dossier-events"
RATING_TOPIC = "ratings"
SOURCE_SYSTEM = "motcua-bacninh"

# How often each procedure is filed, relative to 1 (simulation knowledge, not reference
# data): copy certification and civil status dominate at communes, land and judicial
# records at departments.
PROCEDURE_WEIGHTS = {
    "2.000815": 30, "2.000884": 8, "1.001193": 10, "1.000656": 3, "1.000894": 4, "2.000635": 6,
    "1.004873": 6, "2.001035": 4, "1.012790": 3, "1.012805": 2, "2.000720": 3, "2.000575": 2,
    "1.009994": 2, "1.001776": 2,
    "1.012749": 15, "1.012760": 8, "2.000488": 12, "2.001610": 6, "2.002004": 8, "2.001727": 3,
    "1.002809": 10, "1.002856": 4, "1.005092": 4,
}
ONLINE_BASE = {"full": 1.0, "partial": 0.55, "none": 0.0}
BUSINESS_FIELDS = {"TC-DKDN", "TC-HKD", "CT-LTHH", "XD-DB"}

FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Ngô", "Dương", "Lý"]
MIDDLE = ["Văn", "Thị", "Đức", "Minh", "Thu", "Hữu", "Ngọc", "Thanh", "Quang", "Thị Thu"]
GIVEN = ["An", "Bình", "Chi", "Dũng", "Giang", "Hà", "Hải", "Hằng", "Hiếu", "Hoa", "Hùng", "Lan",
         "Linh", "Long", "Mai", "Nam", "Nga", "Phương", "Quân", "Sơn", "Tâm", "Thảo", "Trang", "Tuấn", "Yến"]
COMMENTS_GOOD = ["Cán bộ hướng dẫn tận tình", "Giải quyết nhanh, đúng hẹn", "Thái độ phục vụ tốt",
                 "Rất hài lòng", "Thủ tục đơn giản, dễ hiểu"]
COMMENTS_BAD = ["Phải chờ lâu", "Hẹn trả kết quả bị trễ", "Hướng dẫn chưa rõ ràng", "Phải đi lại nhiều lần"]
MALFORMED_KINDS = ("invalid_json", "invalid_utf8", "missing_field", "bad_datetime", "wrong_type",
                   "unknown_field", "not_in_set")


@dataclass(frozen=True)
class Anomaly:
    kind: str      # unit_falling_behind | kiosk_silent | malformed | duplicates | out_of_order
    target: str = ""   # unit code or kiosk id
    share: float = 0.0

    KINDS = ("unit_falling_behind", "kiosk_silent", "malformed", "duplicates", "out_of_order")

    @classmethod
    def parse(cls, text: str) -> "Anomaly":
        kind, _, arg = text.partition(":")
        if kind not in cls.KINDS or not arg:
            raise ValueError(f"anomaly {text!r}: expected one of {', '.join(k + ':...' for k in cls.KINDS)}")
        if kind in ("unit_falling_behind", "kiosk_silent"):
            return cls(kind, target=arg)
        share = float(arg)
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"anomaly {text!r}: share must be in [0, 1]")
        return cls(kind, share=share)


@dataclass
class SimConfig:
    start: date = date(2026, 11, 1)
    days: int = 1
    scale: float = 0.1
    seed: int = 1
    dossiers_per_year: int = 240_000
    working_days_per_year: int = 250
    commune_share: float = 0.80          # of dossiers, at commune level
    online_share: float = 0.35
    postal_share: float = 0.03
    late_share: float = 0.02             # province average; units vary around it
    unit_late_spread: float = 0.8        # lognormal sigma of the unit-level late multiplier
    supplement_share: float = 0.05
    second_supplement_share: float = 0.10   # of dossiers with a first round
    not_accepted_share: float = 0.004
    withdrawn_share: float = 0.004
    stopped_share: float = 0.002
    weekend_online_factor: float = 0.10  # weekend online filings, relative to a weekday's
    rating_share: float = 0.35           # of counter (direct) returns that rate at the kiosk
    three_level_kiosk_share: float = 0.15
    satisfied_share: float = 0.90        # levels 4-5 (5-level kiosks) / "satisfied" (3-level)
    early_min_working_days: float = 1.0  # as Settings.early_min_working_days: for the expected mix
    anomalies: tuple[Anomaly, ...] = ()

    def anomaly(self, kind: str) -> list[Anomaly]:
        return [a for a in self.anomalies if a.kind == kind]

    @property
    def end(self) -> datetime:
        return datetime.combine(self.start + timedelta(days=self.days), time(0), VIETNAM_TZ)


@dataclass(slots=True)
class SimEvent:
    topic: str              # logical topic name: 'dossier-events' | 'ratings'
    key: bytes              # dossier_code / kiosk_id
    value: bytes            # contract JSON (or broken bytes for a 'malformed:*' anomaly)
    event_time: datetime
    id: str = ""            # event_id / rating_id
    anomaly: str | None = None   # None, 'malformed:<reason>', 'duplicate', 'out_of_order'
    judgement: str | None = None  # on closing dossier events: early/on_time/late/not_accepted/withdrawn/stopped
    unit_code: str = ""
    code: int = 0           # the status (dossier events) or level (ratings) in value; 0: read it from value


@dataclass
class Summary:
    """What was generated: counts per kind, channel, status, anomaly; the judgement mix."""
    events: Counter = field(default_factory=Counter)        # per topic
    statuses: Counter = field(default_factory=Counter)
    channels: Counter = field(default_factory=Counter)      # per new dossier
    judgements: Counter = field(default_factory=Counter)    # per closing event emitted
    planned: Counter = field(default_factory=Counter)       # outcome of every dossier started, even if it closes after the window
    anomalies: Counter = field(default_factory=Counter)
    rating_levels: Counter = field(default_factory=Counter)
    dossiers: int = 0
    supplements: Counter = field(default_factory=Counter)   # rounds -> dossiers (started in window)

    def add(self, ev: SimEvent) -> None:
        self.events[ev.topic] += 1
        if ev.anomaly:
            kind = ev.anomaly.split(":")[0]
            self.anomalies[kind] += 1
            if kind != ev.anomaly:   # 'malformed:<reason>' also counted by reason
                self.anomalies[ev.anomaly] += 1
        if ev.judgement:
            self.judgements[ev.judgement] += 1

    def shares(self, counter: Counter, keys=None) -> dict:
        total = sum(counter.values()) or 1
        return {k: counter[k] / total for k in (keys or sorted(counter))}

    def as_dict(self) -> dict:
        judged = Counter({k: v for k, v in self.judgements.items() if k in ("early", "on_time", "late")})
        sat = sum(v for k, v in self.rating_levels.items() if k >= 4)
        return {
            "dossiers": self.dossiers,
            "events": dict(self.events),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "channels": {str(k): v for k, v in sorted(self.channels.items())},
            "channel_shares": {str(k): round(v, 4) for k, v in self.shares(self.channels).items()},
            "judgements": dict(self.judgements),
            "planned": dict(self.planned),
            "planned_shares": {k: round(v, 4) for k, v in self.shares(
                Counter({k: v for k, v in self.planned.items() if k in ("early", "on_time", "late")}),
                ["early", "on_time", "late"]).items()},
            "judgement_shares": {k: round(v, 4) for k, v in self.shares(judged, ["early", "on_time", "late"]).items()},
            "supplement_rounds": {str(k): v for k, v in sorted(self.supplements.items())},
            "rating_levels": {str(k): v for k, v in sorted(self.rating_levels.items())},
            "satisfied_share": round(sat / (sum(self.rating_levels.values()) or 1), 4),
            "anomalies": dict(self.anomalies),
        }

    def text(self) -> str:
        d = self.as_dict()
        lines = [f"dossiers started: {d['dossiers']}",
                 "events: " + ", ".join(f"{k} {v}" for k, v in d["events"].items()),
                 "channels (1 direct, 2 online, 3 postal): " + ", ".join(f"{k}: {v:.1%}" for k, v in d["channel_shares"].items()),
                 "planned judgement of dossiers started: " + ", ".join(f"{k} {v:.1%}" for k, v in d["planned_shares"].items()),
                 "expected judgement of dossiers finished in the window: " + ", ".join(f"{k} {v:.1%}" for k, v in d["judgement_shares"].items()),
                 "closings: " + ", ".join(f"{k} {v}" for k, v in sorted(d["judgements"].items())),
                 "statuses: " + ", ".join(f"{k}: {v}" for k, v in d["statuses"].items()),
                 f"ratings: satisfied or very satisfied {d['satisfied_share']:.1%}",
                 "anomalies: " + (", ".join(f"{k} {v}" for k, v in sorted(d["anomalies"].items())) or "none")]
        return "\n".join(lines)


# --- the province --------------------------------------------------------------------------

@dataclass
class _UnitProfile:
    unit: Unit
    index: int
    late_multiplier: float
    satisfaction_shift: float
    officers: list[str]
    kiosk_id: str
    kiosk_scale: int


class Province:
    """Units with their (seeded) sizes, late tendency, officers and kiosk."""

    def __init__(self, ref: Reference, cfg: SimConfig):
        rng = random.Random(cfg.seed * 7919 + 17)
        self.ref = ref
        self.profiles: dict[str, _UnitProfile] = {}
        units = [u for u in ref.units.values() if u.kind in ("commune", "department")]
        for i, u in enumerate(sorted(units, key=lambda u: u.code)):
            mult = math.exp(rng.gauss(-cfg.unit_late_spread ** 2 / 2, cfg.unit_late_spread))  # mean 1
            officers = [f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}" for _ in range(rng.randint(3, 8))]
            scale = 3 if rng.random() < cfg.three_level_kiosk_share else 5
            self.profiles[u.code] = _UnitProfile(u, i, mult, rng.gauss(0, 0.03), officers,
                                                 f"KIOSK-{u.code}-1", scale)
        self.communes = [p for p in self.profiles.values() if p.unit.kind == "commune"]
        # wards (phường) are busier than rural communes
        self.commune_weights = list(_cum([
            math.exp(rng.gauss(0, 0.5)) * (1.6 if p.unit.name.startswith("Phường") else 1.0) for p in self.communes]))
        self.commune_procs = ref.procedures_at("commune")
        self.commune_proc_w = list(_cum([PROCEDURE_WEIGHTS.get(p.code, 1) for p in self.commune_procs]))
        self.dept_procs = ref.procedures_at("province")
        self.dept_proc_w = list(_cum([PROCEDURE_WEIGHTS.get(p.code, 1) for p in self.dept_procs]))
        self.online_prob = self._online_probabilities(cfg)
        self._normalise_late_multipliers(cfg)
        self.kiosks = {p.kiosk_id: p for p in self.profiles.values()}

    def _normalise_late_multipliers(self, cfg: SimConfig) -> None:
        """Scale unit late multipliers so their volume-weighted mean is 1: units differ, but
        the province-wide late share stays at cfg.late_share."""
        volume: dict[str, float] = defaultdict(float)
        prev = 0.0
        for p, c in zip(self.communes, self.commune_weights):
            volume[p.unit.code] += cfg.commune_share * (c - prev) / self.commune_weights[-1]
            prev = c
        prev = 0.0
        for proc, c in zip(self.dept_procs, self.dept_proc_w):
            volume[self.ref.department_for(proc).code] += (1 - cfg.commune_share) * (c - prev) / self.dept_proc_w[-1]
            prev = c
        mean = sum(self.profiles[code].late_multiplier * v for code, v in volume.items()) / sum(volume.values())
        for prof in self.profiles.values():
            prof.late_multiplier /= mean

    def _online_probabilities(self, cfg: SimConfig) -> dict[str, float]:
        """Per-procedure online probability among non-postal dossiers, scaled so the
        province-wide online share matches cfg.online_share (full > partial > none)."""
        mix: list[tuple[float, float, str]] = []
        for procs, cw, share in ((self.commune_procs, self.commune_proc_w, cfg.commune_share),
                                 (self.dept_procs, self.dept_proc_w, 1 - cfg.commune_share)):
            total = cw[-1]
            prev = 0.0
            for p, c in zip(procs, cw):
                mix.append((share * (c - prev) / total, ONLINE_BASE[p.online], p.code))
                prev = c
        target = cfg.online_share / max(1e-9, 1 - cfg.postal_share)
        lo, hi = 0.0, 50.0
        for _ in range(60):
            k = (lo + hi) / 2
            got = sum(w * min(1.0, k * b) for w, b, _ in mix)
            lo, hi = (k, hi) if got < target else (lo, k)
        return {code: min(1.0, lo * b) for _, b, code in mix}


def _cum(weights):
    total = 0.0
    for w in weights:
        total += w
        yield total


# --- contract JSON, built directly (see _Lifecycle.emit) ------------------------------------

_PLAIN = re.compile(r"[A-Za-z0-9.:_-]+")


_JS: dict[str, str] = {}


def _js(text: str) -> str:
    """A JSON string (as pydantic writes it: non-ASCII as UTF-8), cached: codes and names repeat."""
    s = _JS.get(text)
    if s is None:
        if len(_JS) > 100_000:
            _JS.clear()
        s = _JS[text] = json.dumps(text, ensure_ascii=False)
    return s


def _jb(flag: bool) -> str:
    return "true" if flag else "false"


def _round_json(r: SupplementRound, iso) -> str:
    parts = [f'{{"requested_at":"{iso(r.requested_at)}"']
    for name in ("resumed_at", "old_promised_at", "new_promised_at"):
        value = getattr(r, name)
        if value is not None:
            parts.append(f',"{name}":"{iso(value)}"')
    parts.append("}")
    return "".join(parts)


# --- one dossier ---------------------------------------------------------------------------

class _Lifecycle:
    """Builds the events of one dossier (all of them, possibly beyond the window)."""

    def __init__(self, sim: "_Simulation", rng: random.Random, unit: _UnitProfile, proc: Procedure,
                 code: str, channel: int, submitted: datetime, day_index: int):
        self.sim, self.rng, self.unit, self.proc, self.code = sim, rng, unit, proc, code
        self.channel, self.submitted, self.day_index = channel, submitted, day_index
        self.events: list[SimEvent] = []
        self.step = 0
        online = channel == 2
        business = proc.field_code in BUSINESS_FIELDS and rng.random() < 0.8
        self.common: dict[str, Any] = dict(
            source_system=SOURCE_SYSTEM, dossier_code=code, procedure_code=proc.code,
            procedure_field=proc.field_code, unit_code=unit.unit.code, channel=channel,
            owner_type=2 if business else 1,
            has_digitised_components=rng.random() < (0.75 if online else 0.35),
            electronic_result=rng.random() < (0.7 if online else 0.15),
            paid_online=(1 if rng.random() < 0.55 else 2) if online and rng.random() < 0.6 else 0,
            vneid_authenticated=online and rng.random() < 0.85,
        )
        self.handler = rng.choice(unit.officers)
        self.verdict = ""
        # the event's JSON around its own fields: see emit()
        c = self.common
        if not _PLAIN.fullmatch(code):
            raise ValueError(f"dossier code {code!r} would need JSON escapes")
        self.unit_code = unit.unit.code
        self._key = code.encode()
        self._isos: dict[datetime, str] = {}
        self._head = f'{{"contract_version":"{DOSSIER_CONTRACT_VERSION}","event_id":"'
        self._mid = (f'","source_system":{_js(c["source_system"])},"dossier_code":{_js(code)},'
                     f'"procedure_code":{_js(c["procedure_code"])},"procedure_field":{_js(c["procedure_field"])},'
                     f'"unit_code":{_js(c["unit_code"])},"channel":{int(channel)},"status":')
        self._handler_json = ',"handler":' + _js(self.handler)
        self._owner = f',"owner_type":{int(c["owner_type"])}'
        self._tail = (f',"has_digitised_components":{_jb(c["has_digitised_components"])},'
                      f'"electronic_result":{_jb(c["electronic_result"])},"paid_online":{int(c["paid_online"])},'
                      f'"vneid_authenticated":{_jb(c["vneid_authenticated"])}}}')

    def emit(self, status: int, at: datetime, *, handler: str | None = None, submitted_at=None, received_at=None,
             promised_at=None, finished_at=None, returned_at=None, refused_at=None, supplements=()) -> None:
        """Append the event with the JSON built here, byte for byte what
        ``schemas.codec.encode(DossierEvent(...))`` gives (field order of the model, absent
        optional values left out; tests/test_simulator.py checks the equality): building a
        pydantic model per event cost more than the rest of the generation."""
        self.step += 1
        event_id = f"{self.code}:{self.step:02d}-{status}"
        iso = self._iso
        parts = [self._head, event_id, '","event_time":"', iso(at), self._mid, str(status)]
        if handler is not None:
            parts.append(self._handler_json if handler == self.handler else ',"handler":' + _js(handler))
        parts.append(self._owner)
        if submitted_at is not None:
            parts.append(',"submitted_at":"' + iso(submitted_at) + '"')
        if received_at is not None:
            parts.append(',"received_at":"' + iso(received_at) + '"')
        if promised_at is not None:
            parts.append(',"promised_at":"' + iso(promised_at) + '"')
        if finished_at is not None:
            parts.append(',"finished_at":"' + iso(finished_at) + '"')
        if returned_at is not None:
            parts.append(',"returned_at":"' + iso(returned_at) + '"')
        if refused_at is not None:
            parts.append(',"refused_at":"' + iso(refused_at) + '"')
        if supplements:
            parts.append(',"supplements":[')
            parts.append(",".join(_round_json(r, iso) for r in supplements))
            parts.append("]")
        else:
            parts.append(',"supplements":[]')
        parts.append(self._tail)
        self.events.append(SimEvent(DOSSIER_TOPIC, self._key, "".join(parts).encode(), at, event_id,
                                    unit_code=self.unit_code, code=status))

    def _iso(self, dt: datetime) -> str:
        s = self._isos.get(dt)
        if s is None:
            s = self._isos[dt] = dt.isoformat()
        return s

    def build(self) -> tuple[list[SimEvent], int]:
        rng, cfg = self.rng, self.sim.cfg
        cal = self.sim.whole_seconds   # unit systems record whole seconds
        legal = self.proc.legal_working_days
        submitted = self.submitted
        if self.channel == 1:
            received = submitted + timedelta(seconds=rng.randint(120, 900))
        else:
            self.emit(1, submitted, submitted_at=submitted)
            received = cal.add_working_days(submitted, rng.uniform(0.02, 0.3))
        base: dict[str, Any] = dict(submitted_at=submitted, received_at=received)  # emit()'s time keywords

        r = rng.random()
        if r < cfg.not_accepted_share:
            refused = received + timedelta(seconds=rng.randint(300, 2400))
            self.emit(3, refused, **base, refused_at=refused, handler=self.handler)
            self.events[-1].judgement = self.verdict = "not_accepted"
            return self.events, 0
        promised = cal.add_working_days(received, legal)
        base["promised_at"] = promised
        self.emit(2, received, **base)
        start = received + timedelta(seconds=rng.randint(60, 600))
        self.emit(4, start, **base, handler=self.handler)

        # the outcome, then the times that produce it
        late_p = min(0.95, cfg.late_share * self.unit.late_multiplier)
        behind = self.sim.behind.get(self.unit.unit.code)
        if behind is not None:
            late_p = max(late_p, 0.6 * (self.day_index + 1) / cfg.days)
        rounds_n = 0
        sup_p = cfg.supplement_share * (2.0 if behind is not None else 1.0)
        if rng.random() < sup_p:
            rounds_n = 2 if rng.random() < cfg.second_supplement_share else 1
        if rounds_n < 2:  # two rounds are late by rule; keep the overall share near late_share
            late_p = max(0.0, late_p - sup_p * cfg.second_supplement_share)
        late = rounds_n < 2 and rng.random() < late_p
        u = rng.random()
        fraction = (1.0 + rng.uniform(0.03, 0.5)) if late else 0.1 + 0.88 * u * u
        work = legal * fraction                       # unit's own working time
        closing = rng.random()
        end_kind = None
        if closing < cfg.withdrawn_share:
            end_kind, work = 7, work * rng.uniform(0.1, 0.9)
        elif closing < cfg.withdrawn_share + cfg.stopped_share:
            end_kind, work = 8, work * rng.uniform(0.1, 0.9)

        # walk the working time from the start of processing, pausing for supplement rounds;
        # the minutes between reception and the handler's start count as work already done
        rounds: list[SupplementRound] = []
        t, done, wait_total = start, min(cal.working_days_between(received, start), work * 0.5), 0.0
        promised_now = promised
        for _ in range(rounds_n if end_kind is None else 0):
            part = (work - done) * rng.uniform(0.2, 0.6)
            t = cal.add_working_days(t, part)
            done += part
            requested = t
            self.emit(5, requested, **{**base, "promised_at": promised_now},
                      supplements=tuple(rounds) + (SupplementRound(requested_at=requested, old_promised_at=promised_now),),
                      handler=self.handler)
            wait = rng.uniform(0.5, 5.0)
            wait_total += wait
            resumed = cal.add_working_days(requested, wait)
            new_promised = cal.add_working_days(promised_now, wait)
            rounds.append(SupplementRound(requested_at=requested, resumed_at=resumed,
                                          old_promised_at=promised_now, new_promised_at=new_promised))
            promised_now = new_promised
            t = resumed
            self.emit(4, resumed, **{**base, "promised_at": promised_now}, supplements=tuple(rounds), handler=self.handler)
        base["promised_at"] = promised_now
        sup = tuple(rounds)
        finish = cal.add_working_days(t, max(0.0, work - done))
        if finish < start:
            finish = start
        if end_kind is not None:
            key = "refused_at" if end_kind == 8 else None
            extra = {key: finish} if key else {}
            self.emit(end_kind, finish, **base, supplements=sup, handler=self.handler, **extra)
            self.events[-1].judgement = self.verdict = "withdrawn" if end_kind == 7 else "stopped"
            return self.events, len(rounds)

        self.emit(9, finish, **base, supplements=sup, finished_at=finish, handler=self.handler)
        # expected judgement, with the index rules: deadline = original promised + waits
        deadline = cal.add_working_days(promised, wait_total) if wait_total else promised
        # late: finished after the deadline, at the instant (rules.timeliness, docs/RULES.md);
        # early: at least early_min_working_days working days before it
        if len(rounds) >= 2 or finish > deadline:
            verdict = "late"
        elif cal.working_days_between(finish, deadline) >= cfg.early_min_working_days:
            verdict = "early"
        else:
            verdict = "on_time"
        self.events[-1].judgement = self.verdict = verdict
        if legal <= 1 and self.channel == 1:
            returned = finish + timedelta(seconds=rng.randint(180, 2700))
        else:
            returned = cal.add_working_days(finish, rng.uniform(0.02, 1.5))
        self.emit(10, returned, **base, supplements=sup, finished_at=finish, returned_at=returned, handler=self.handler)
        if self.channel == 1 and rng.random() < cfg.rating_share:
            self.sim.rating(self, returned + timedelta(seconds=rng.randint(10, 240)), verdict)
        return self.events, len(rounds)


class _WholeSeconds:
    """The calendar, with results truncated to whole seconds."""

    def __init__(self, cal: WorkingCalendar):
        self.cal = cal
        self.working_days_between = cal.working_days_between

    def add_working_days(self, start: datetime, days: float) -> datetime:
        return self.cal.add_working_days(start, days).replace(microsecond=0)


# --- the whole run -------------------------------------------------------------------------

class _Simulation:
    def __init__(self, cfg: SimConfig, ref: Reference | None = None, cal: WorkingCalendar | None = None):
        self.cfg = cfg
        self.ref = ref or load_reference()
        self.cal = cal or default_calendar()
        self.province = Province(self.ref, cfg)
        self.behind = {a.target: a for a in cfg.anomaly("unit_falling_behind")}
        for code in self.behind:
            if code not in self.province.profiles:
                raise ValueError(f"unit_falling_behind: unknown unit {code}")
        self.silent_from = {}
        mid = datetime.combine(cfg.start, time(0), VIETNAM_TZ) + timedelta(days=cfg.days / 2)
        for a in cfg.anomaly("kiosk_silent"):
            if a.target not in self.province.kiosks:
                raise ValueError(f"kiosk_silent: unknown kiosk {a.target}")
            self.silent_from[a.target] = mid
        self.whole_seconds = _WholeSeconds(self.cal)
        self.pending: list = []   # heap of (event_time, seq, SimEvent)
        self.seq = 0
        self.summary = Summary()

    def rating(self, life: _Lifecycle, at: datetime, verdict: str) -> None:
        unit, rng, cfg = life.unit, life.rng, self.cfg
        silent = self.silent_from.get(unit.kiosk_id)
        sat = cfg.satisfied_share + unit.satisfaction_shift - (0.25 if verdict == "late" else 0.0)
        sat = min(0.995, max(0.3, sat))
        r = rng.random()
        if unit.kiosk_scale == 3:
            raw = 3 if r < sat else (2 if r < sat + (1 - sat) * 0.65 else 1)
            level = int(THREE_LEVEL_MAP[raw])
        else:
            if r < sat:
                level = 5 if rng.random() < 0.65 else 4
            else:
                level = rng.choices((3, 2, 1), (0.6, 0.3, 0.1))[0]
        criteria = {}
        if rng.random() < 0.4:
            for c in rng.sample(("officer", "time", "procedure", "result", "access"), rng.randint(1, 3)):
                criteria[c] = max(1, min(5, level + rng.choice((-1, 0, 0, 0, 1))))
        comment = None
        if rng.random() < 0.05:
            comment = rng.choice(COMMENTS_GOOD if level >= 4 else COMMENTS_BAD)
        rating_id = f"{unit.kiosk_id}:{life.code}"
        if silent is not None and at >= silent:
            return  # the kiosk is silent: the citizen's rating never leaves it
        # KioskRating's fields in the model's order, absent optional values left out: the
        # bytes schemas.codec.encode(KioskRating(...)) gives (checked by tests/test_simulator.py)
        doc = {"contract_version": RATING_CONTRACT_VERSION, "rating_id": rating_id, "event_time": at.isoformat(),
               "source_system": "kiosk", "kiosk_id": unit.kiosk_id, "unit_code": unit.unit.code,
               "counter_id": f"Quầy {1 + unit.officers.index(life.handler) % 4}", "officer_id": life.handler,
               "dossier_code": life.code, "procedure_code": life.proc.code, "level": level,
               "scale": unit.kiosk_scale, "criteria": criteria}
        if comment is not None:
            doc["comment"] = comment
        value = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        ev = SimEvent(RATING_TOPIC, unit.kiosk_id.encode(), value, at, rating_id, unit_code=unit.unit.code, code=level)
        life.events.append(ev)

    def day_dossiers(self, day: date, day_index: int) -> None:
        cfg, prov, cal = self.cfg, self.province, self.cal
        day_seed = (cfg.seed * 1_000_003 + day.toordinal()) * 1_009
        rng = random.Random(day_seed)
        per_day = cfg.dossiers_per_year * cfg.scale / cfg.working_days_per_year
        working = cal.is_working_day(day)
        if working:
            mean = per_day
        else:  # only online filings on days off
            mean = per_day * cfg.online_share * cfg.weekend_online_factor
        n = max(0, round(rng.gauss(mean, math.sqrt(mean)))) if mean > 0 else 0
        counters: dict[str, int] = defaultdict(int)
        for i in range(n):
            drng = random.Random(day_seed * 100_003 + i)
            if drng.random() < cfg.commune_share:
                unit = drng.choices(prov.communes, cum_weights=prov.commune_weights)[0]
                proc = drng.choices(prov.commune_procs, cum_weights=prov.commune_proc_w)[0]
            else:
                proc = drng.choices(prov.dept_procs, cum_weights=prov.dept_proc_w)[0]
                unit = prov.profiles[self.ref.department_for(proc).code]
            if not working:
                channel = 2
            elif drng.random() < cfg.postal_share:
                channel = 3
            else:
                channel = 2 if drng.random() < prov.online_prob[proc.code] else 1
            submitted = self._submission_time(drng, day, channel, working)
            counters[unit.unit.code] += 1
            code = f"{unit.unit.code}-{day:%y%m%d}-{counters[unit.unit.code]:04d}"
            life = _Lifecycle(self, drng, unit, proc, code, channel, submitted, day_index)
            events, rounds = life.build()
            self.summary.planned[life.verdict] += 1
            self.summary.dossiers += 1
            self.summary.channels[channel] += 1
            self.summary.supplements[rounds] += 1
            for ev in events:
                self.seq += 1
                heapq.heappush(self.pending, (ev.event_time, self.seq, ev))

    def _submission_time(self, rng: random.Random, day: date, channel: int, working: bool) -> datetime:
        midnight = datetime.combine(day, time(0), VIETNAM_TZ)
        if channel == 2:  # online: any time 06:00-23:30, busier in office hours
            if rng.random() < 0.7 and working:
                return self._in_sessions(rng, midnight)
            return midnight + timedelta(seconds=rng.randint(6 * 3600, 23 * 3600 + 1800))
        return self._in_sessions(rng, midnight)

    def _in_sessions(self, rng: random.Random, midnight: datetime) -> datetime:
        (a1, b1), (a2, b2) = self.cal._sess_secs[0], self.cal._sess_secs[-1]
        if rng.random() < 0.6:   # mornings are busier at one-stop counters
            s = rng.uniform(a1, b1 - 600)
        else:
            s = rng.uniform(a2, b2 - 900)
        return midnight + timedelta(seconds=int(s))


def generate(config: SimConfig, summary: Summary | None = None, *, ref: Reference | None = None,
             cal: WorkingCalendar | None = None) -> Iterator[SimEvent]:
    """Yield the feed's events in event-time order (anomalies applied); fill ``summary``."""
    sim = _Simulation(config, ref, cal)
    if summary is not None:
        sim.summary = summary
    s = sim.summary
    arng = random.Random(config.seed * 31337 + 5)   # anomalies: their own stream
    malformed = sum(a.share for a in config.anomaly("malformed"))
    duplicates = sum(a.share for a in config.anomaly("duplicates"))
    out_of_order = sum(a.share for a in config.anomaly("out_of_order"))
    delayed: list[tuple[int, SimEvent]] = []   # duplicates waiting their turn
    emitted = 0
    for day_index in range(config.days):
        day = config.start + timedelta(days=day_index)
        sim.day_dossiers(day, day_index)
        day_end = datetime.combine(day + timedelta(days=1), time(0), VIETNAM_TZ)
        batch: list[SimEvent] = []
        while sim.pending and sim.pending[0][0] < day_end:
            batch.append(heapq.heappop(sim.pending)[2])
        if out_of_order:
            _swap_out_of_order(batch, arng, out_of_order)
        for ev in batch:
            if malformed and arng.random() < malformed:
                ev = _malform(ev, arng)
            elif duplicates and arng.random() < duplicates:
                dup = SimEvent(ev.topic, ev.key, ev.value, ev.event_time, ev.id, "duplicate", None, ev.unit_code)
                delayed.append((emitted + arng.randint(1, 20), dup))
            _account(s, ev)
            yield ev
            emitted += 1
            while delayed and delayed[0][0] <= emitted:
                dup = delayed.pop(0)[1]
                s.add(dup)
                yield dup
                emitted += 1
    for _, dup in delayed:
        s.add(dup)
        yield dup


def _account(s: Summary, ev: SimEvent) -> None:
    s.add(ev)
    if ev.anomaly and ev.anomaly.startswith("malformed"):
        return
    if ev.topic == DOSSIER_TOPIC:
        s.statuses[ev.code or _status_of(ev.value)] += 1
    else:
        s.rating_levels[ev.code or _level_of(ev.value)] += 1


def _status_of(value: bytes) -> int:
    i = value.index(b'"status":') + 9
    j = i
    while value[j:j + 1].isdigit():
        j += 1
    return int(value[i:j])


def _level_of(value: bytes) -> int:
    i = value.index(b'"level":') + 8
    return int(value[i:i + 1])


def _swap_out_of_order(batch: list[SimEvent], rng: random.Random, share: float) -> None:
    """Swap chosen events with the next event of the same key that day: the later status
    arrives first, as when a unit system retries a failed send after newer ones."""
    n = len(batch)
    for i in range(n):
        if rng.random() >= share or batch[i].anomaly:
            continue
        for j in range(i + 1, min(n, i + 400)):
            if batch[j].key == batch[i].key and batch[j].topic == batch[i].topic and not batch[j].anomaly:
                batch[i], batch[j] = batch[j], batch[i]
                batch[i].anomaly = "out_of_order"   # now ahead of an earlier event of its key
                break


def _malform(ev: SimEvent, rng: random.Random) -> SimEvent:
    """Replace the event's bytes with one named defect (the contract reason it must fail with)."""
    kind = rng.choice(MALFORMED_KINDS)
    doc = json.loads(ev.value)
    required = "dossier_code" if ev.topic == DOSSIER_TOPIC else "kiosk_id"
    coded = "status" if ev.topic == DOSSIER_TOPIC else "level"
    if kind == "invalid_json":
        value = ev.value[: max(1, len(ev.value) // 2)]
    elif kind == "invalid_utf8":
        value = ev.value.replace(b'"event_time"', b'"event_time\xff"', 1)
    else:
        if kind == "missing_field":
            del doc[required]
        elif kind == "bad_datetime":
            doc["event_time"] = doc["event_time"][:19]          # drop the +07:00 offset
        elif kind == "wrong_type":
            doc[coded] = str(doc[coded])
        elif kind == "unknown_field":
            doc["MaHoSo" if ev.topic == DOSSIER_TOPIC else "MucDoHaiLong"] = doc.get("dossier_code", "x")
        elif kind == "not_in_set":
            doc[coded] = 11 if ev.topic == DOSSIER_TOPIC else 6
        value = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return SimEvent(ev.topic, ev.key, value, ev.event_time, ev.id, f"malformed:{kind}", None, ev.unit_code)
