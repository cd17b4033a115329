"""Event contracts: what unit systems and kiosk vendors send, as Python models.

The JSON Schema files beside this module (``dossier-status.v1.schema.json``,
``kiosk-rating.v1.schema.json``) are generated from these models with
``python -m schemas.publish`` and committed; ``tests/test_contracts.py`` keeps them in
agreement. Field names are English; each field's description carries the DVCQG sync
name (MaHoSo, TrangThaiHoSo, ...) where the field meets the outside world.

Compatibility rules are in ``schemas/COMPATIBILITY.md``.

The contract checks shape: types, required fields, id patterns, value sets, no unknown
fields. Rules about meaning (date order, known units and procedures, times not in the
future, lifecycle transitions) are data rules and live in ``expectations/``.
"""
from __future__ import annotations

from enum import IntEnum
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.json_schema import JsonDict

# Contract versions: MAJOR.MINOR. A reader accepts every MINOR of the MAJOR it knows.
DOSSIER_CONTRACT = "dossier-status"
RATING_CONTRACT = "kiosk-rating"
DOSSIER_CONTRACT_VERSION = "1.0"
RATING_CONTRACT_VERSION = "1.0"
SUPPORTED_MAJOR = {DOSSIER_CONTRACT: 1, RATING_CONTRACT: 1}
# Largest accepted event, in bytes of UTF-8 JSON (the codec checks it before parsing).
MAX_EVENT_BYTES = 64 * 1024

CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/\-]{0,63}$"
EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{7,127}$"
VERSION_PATTERN = r"^[0-9]+\.[0-9]+$"
# RFC 3339 date-time WITH an offset. Put in the published schema as a pattern because
# JSON Schema validators treat "format": "date-time" as an annotation by default, and a
# naive local time (no +07:00) is the commonest defect of unit systems' payloads.
DATETIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})$"


def version_pattern(contract: str) -> str:
    """Versions a reader of this contract accepts: any MINOR of its MAJOR."""
    return rf"^{SUPPORTED_MAJOR[contract]}\.[0-9]+$"


Code = Annotated[str, Field(pattern=CODE_PATTERN, max_length=64)]
_DT: JsonDict = {"pattern": DATETIME_PATTERN}  # json_schema_extra for every date-time field


def _minor(version: str) -> tuple[int, int] | None:
    try:
        major, minor = version.split(".")
        return int(major), int(minor)
    except (ValueError, AttributeError):
        return None


class DossierStatus(IntEnum):
    """TrangThaiHoSo, DVCQG sync vocabulary."""
    NEW = 1                   # Mới đăng ký
    RECEIVED = 2              # Được tiếp nhận
    NOT_ACCEPTED = 3          # Không được tiếp nhận
    IN_PROGRESS = 4           # Đang xử lý
    SUPPLEMENT_REQUESTED = 5  # Yêu cầu bổ sung giấy tờ
    FINANCIAL_OBLIGATION = 6  # Yêu cầu thực hiện nghĩa vụ tài chính
    WITHDRAWN = 7             # Công dân yêu cầu rút hồ sơ
    STOPPED = 8               # Dừng xử lý
    FINISHED = 9              # Đã xử lý xong
    RETURNED = 10             # Đã trả kết quả


class Channel(IntEnum):
    """KenhThucHien: 1 direct at the counter (also when empty), 2 online, 3 public postal."""
    DIRECT = 1
    ONLINE = 2
    POSTAL = 3


class RatingLevel(IntEnum):
    """Five satisfaction levels; reports quote the share of levels 4 and 5."""
    VERY_DISSATISFIED = 1  # Rất không hài lòng (RKHL)
    DISSATISFIED = 2       # Không hài lòng (KHL)
    NEUTRAL = 3            # Bình thường (BT)
    SATISFIED = 4          # Hài lòng (HL)
    VERY_SATISFIED = 5     # Rất hài lòng (RHL)


LEVEL_CODES = {1: "RKHL", 2: "KHL", 3: "BT", 4: "HL", 5: "RHL"}
# A three-level kiosk (dissatisfied / neutral / satisfied) maps onto the five levels.
THREE_LEVEL_MAP = {1: RatingLevel.DISSATISFIED, 2: RatingLevel.NEUTRAL, 3: RatingLevel.SATISFIED}

# Rated criteria: SIPAS's five factors plus what counter kiosks commonly ask.
CRITERIA = ("overall", "access", "procedure", "officer", "time", "result", "feedback")


class _Contract(BaseModel):
    # Unknown fields are rejected: a typo in a field name must not pass as "absent".
    # The one exception is an event of a NEWER minor version than this reader's: its
    # extra fields are the optional ones that minor added, so the reader drops them
    # (schemas.codec does this with is_newer_minor and strip_unknown; COMPATIBILITY.md).
    # Not strict here, so Python code may build events from plain ints and strings;
    # schemas.codec validates bytes with strict=True ("5" is not 5, 1 is not true),
    # exactly as the published JSON Schema says.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # The contract version this reader implements; set by each contract class.
    reader_version: ClassVar[str] = "1.0"
    # Nested models, by field name, whose unknown fields a newer minor may also extend.
    nested_models: ClassVar[dict[str, type[BaseModel]]] = {}

    @classmethod
    def is_newer_minor(cls, version: object) -> bool:
        """True for a version of this reader's MAJOR with a higher MINOR (e.g. 1.3 read by 1.0)."""
        if version == cls.reader_version or type(version) is not str:
            return False
        theirs, ours = _minor(version), _minor(cls.reader_version)
        return theirs is not None and ours is not None and theirs[0] == ours[0] and theirs[1] > ours[1]

    @classmethod
    def contract_name(cls) -> str:  # pragma: no cover - overridden
        raise NotImplementedError


def strip_unknown(model: type[BaseModel], data: dict) -> dict:
    """Drop keys the model does not know, also inside its nested models (newer-minor events only)."""
    known = model.model_fields
    out = {k: v for k, v in data.items() if k in known}
    for name, sub in getattr(model, "nested_models", {}).items():
        value = out.get(name)
        if isinstance(value, list):
            out[name] = [strip_unknown(sub, x) if type(x) is dict else x for x in value]
        elif type(value) is dict:
            out[name] = strip_unknown(sub, value)
    return out


class SupplementRound(BaseModel):
    """One round of DanhSachHoSoBoSung: the unit asked for more documents."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    requested_at: AwareDatetime = Field(description="When the supplement was requested (NgayYeuCauBoSung)", json_schema_extra=_DT)
    resumed_at: AwareDatetime | None = Field(None, description="When the citizen's documents arrived and processing resumed (NgayTiepNhanBoSung)", json_schema_extra=_DT)
    old_promised_at: AwareDatetime | None = Field(None, description="Promised date before the round (NgayHenTraTruoc)", json_schema_extra=_DT)
    new_promised_at: AwareDatetime | None = Field(None, description="Promised date after the round (NgayHenTraMoi)", json_schema_extra=_DT)


class DossierEvent(_Contract):
    """A status change of one dossier, as a unit's one-stop system syncs it (contract dossier-status)."""

    reader_version: ClassVar[str] = DOSSIER_CONTRACT_VERSION
    nested_models: ClassVar[dict[str, type[BaseModel]]] = {"supplements": SupplementRound}

    contract_version: str = Field(DOSSIER_CONTRACT_VERSION, pattern=version_pattern(DOSSIER_CONTRACT),
                                  description="MAJOR.MINOR of the dossier-status contract; readers accept any 1.x")
    event_id: str = Field(pattern=EVENT_ID_PATTERN, description="Unique id of this status change; the idempotency key")
    event_time: AwareDatetime = Field(description="When the status changed (ThoiDiemXuLy), with its UTC offset (+07:00)", json_schema_extra=_DT)
    ingest_time: AwareDatetime | None = Field(None, description="When motcua-pulse accepted the event; set by the front door", json_schema_extra=_DT)
    source_system: str = Field(min_length=1, max_length=64, description="Sending system, e.g. the IT centre's one-stop software instance")

    dossier_code: Code = Field(description="MaHoSo")
    procedure_code: Code = Field(description="MaTTHC")
    procedure_field: Code = Field(description="MaLinhVuc")
    unit_code: Code = Field(description="DonViXuLy: code of the processing unit")
    channel: Channel = Field(Channel.DIRECT, description="KenhThucHien: 1 direct, 2 online, 3 public postal")
    status: DossierStatus = Field(description="TrangThaiHoSo 1-10")
    handler: str | None = Field(None, max_length=128, description="NguoiXuLy")
    owner_type: int | None = Field(None, ge=1, le=9, description="LoaiDoiTuong: 1 citizen, 2 business, ...")

    submitted_at: AwareDatetime | None = Field(None, description="NgayNopHoSo", json_schema_extra=_DT)
    received_at: AwareDatetime | None = Field(None, description="NgayTiepNhan", json_schema_extra=_DT)
    promised_at: AwareDatetime | None = Field(None, description="NgayHenTra: the promised return date currently in force", json_schema_extra=_DT)
    finished_at: AwareDatetime | None = Field(None, description="NgayKetThucXuLy", json_schema_extra=_DT)
    returned_at: AwareDatetime | None = Field(None, description="NgayTra", json_schema_extra=_DT)
    refused_at: AwareDatetime | None = Field(None, description="NgayTuChoi", json_schema_extra=_DT)
    supplements: tuple[SupplementRound, ...] = Field((), description="DanhSachHoSoBoSung")

    has_digitised_components: bool = Field(False, description="HoSoCoThanhPhanSoHoa")
    electronic_result: bool = Field(False, description="Result issued electronically (DanhSachGiayToKetQua có bản điện tử)")
    paid_online: Literal[0, 1, 2] = Field(0, description="DuocThanhToanTrucTuyen: 0 no, 1 on DVCQG, 2 on the local gateway")
    vneid_authenticated: bool = Field(False, description="TaiKhoanDuocXacThucVoiVNeID")

    @classmethod
    def contract_name(cls) -> str:
        return DOSSIER_CONTRACT


class KioskRating(_Contract):
    """A citizen's rating at a counter kiosk or tablet (contract kiosk-rating)."""

    reader_version: ClassVar[str] = RATING_CONTRACT_VERSION

    contract_version: str = Field(RATING_CONTRACT_VERSION, pattern=version_pattern(RATING_CONTRACT),
                                  description="MAJOR.MINOR of the kiosk-rating contract; readers accept any 1.x")
    rating_id: str = Field(pattern=EVENT_ID_PATTERN, description="Unique id of the rating, made by the kiosk; the idempotency key")
    event_time: AwareDatetime = Field(description="When the citizen rated, with its UTC offset (+07:00)", json_schema_extra=_DT)
    ingest_time: AwareDatetime | None = Field(None, description="When motcua-pulse accepted the rating; set by the front door", json_schema_extra=_DT)
    source_system: str = Field("kiosk", min_length=1, max_length=64, description="Kiosk vendor or system")

    kiosk_id: Code = Field(description="Kiosk or tablet id")
    unit_code: Code = Field(description="Unit whose counter the kiosk serves")
    counter_id: str | None = Field(None, max_length=64, description="Counter (quầy) number or id")
    officer_id: str | None = Field(None, max_length=128, description="Officer rated (NguoiXuLy)")
    dossier_code: Code | None = Field(None, description="MaHoSo of the dossier the rating is about, if known")
    procedure_code: Code | None = Field(None, description="MaTTHC, if known")

    level: RatingLevel = Field(description="1 very dissatisfied (RKHL) ... 5 very satisfied (RHL)")
    scale: Literal[3, 5] = Field(5, description="Levels on the kiosk; a 3-level kiosk's answer is mapped onto level")
    criteria: dict[Literal["overall", "access", "procedure", "officer", "time", "result", "feedback"], RatingLevel] = Field(
        default_factory=dict, description="Optional per-criterion levels (1-5)")
    comment: str | None = Field(None, max_length=1000, description="Free-text feedback")

    @classmethod
    def contract_name(cls) -> str:
        return RATING_CONTRACT


def level_from_kiosk(raw: int, scale: int) -> RatingLevel:
    """Map a kiosk's raw answer onto the five levels (3-level kiosks: 1/2/3 -> KHL/BT/HL)."""
    if scale == 5:
        return RatingLevel(raw)
    if scale == 3:
        return THREE_LEVEL_MAP[raw]
    raise ValueError(f"unsupported kiosk scale {scale}")


def satisfied(level: int) -> bool:
    """Reports quote "% satisfied or very satisfied"."""
    return level >= RatingLevel.SATISFIED


CONTRACTS = {DOSSIER_CONTRACT: DossierEvent, RATING_CONTRACT: KioskRating}
