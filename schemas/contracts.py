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

from datetime import datetime
from enum import IntEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

# Contract versions: MAJOR.MINOR. A reader accepts every MINOR of the MAJOR it knows.
DOSSIER_CONTRACT = "dossier-status"
RATING_CONTRACT = "kiosk-rating"
DOSSIER_CONTRACT_VERSION = "1.0"
RATING_CONTRACT_VERSION = "1.0"
SUPPORTED_MAJOR = {DOSSIER_CONTRACT: 1, RATING_CONTRACT: 1}

CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/\-]{0,63}$"
EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{7,127}$"
VERSION_PATTERN = r"^[0-9]+\.[0-9]+$"

Code = Annotated[str, Field(pattern=CODE_PATTERN, max_length=64)]


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
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("contract_version", check_fields=False)
    @classmethod
    def _known_major(cls, v: str) -> str:
        major = int(v.split(".")[0])
        expected = SUPPORTED_MAJOR[cls.contract_name()]
        if major != expected:
            raise ValueError(f"unsupported contract major version {major} (this reader knows {expected}.x)")
        return v

    @classmethod
    def contract_name(cls) -> str:  # pragma: no cover - overridden
        raise NotImplementedError


class SupplementRound(BaseModel):
    """One round of DanhSachHoSoBoSung: the unit asked for more documents."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    requested_at: AwareDatetime = Field(description="When the supplement was requested (NgayYeuCauBoSung)")
    resumed_at: AwareDatetime | None = Field(None, description="When the citizen's documents arrived and processing resumed (NgayTiepNhanBoSung)")
    old_promised_at: AwareDatetime | None = Field(None, description="Promised date before the round (NgayHenTraTruoc)")
    new_promised_at: AwareDatetime | None = Field(None, description="Promised date after the round (NgayHenTraMoi)")


class DossierEvent(_Contract):
    """A status change of one dossier, as a unit's one-stop system syncs it (contract dossier-status)."""

    contract_version: str = Field(DOSSIER_CONTRACT_VERSION, pattern=VERSION_PATTERN, description="MAJOR.MINOR of the dossier-status contract")
    event_id: str = Field(pattern=EVENT_ID_PATTERN, description="Unique id of this status change; the idempotency key")
    event_time: AwareDatetime = Field(description="When the status changed (ThoiDiemXuLy), with its UTC offset (+07:00)")
    ingest_time: AwareDatetime | None = Field(None, description="When motcua-pulse accepted the event; set by the front door")
    source_system: str = Field(min_length=1, max_length=64, description="Sending system, e.g. the IT centre's one-stop software instance")

    dossier_code: Code = Field(description="MaHoSo")
    procedure_code: Code = Field(description="MaTTHC")
    procedure_field: Code = Field(description="MaLinhVuc")
    unit_code: Code = Field(description="DonViXuLy: code of the processing unit")
    channel: Channel = Field(Channel.DIRECT, description="KenhThucHien: 1 direct, 2 online, 3 public postal")
    status: DossierStatus = Field(description="TrangThaiHoSo 1-10")
    handler: str | None = Field(None, max_length=128, description="NguoiXuLy")
    owner_type: int | None = Field(None, ge=1, le=9, description="LoaiDoiTuong: 1 citizen, 2 business, ...")

    submitted_at: AwareDatetime | None = Field(None, description="NgayNopHoSo")
    received_at: AwareDatetime | None = Field(None, description="NgayTiepNhan")
    promised_at: AwareDatetime | None = Field(None, description="NgayHenTra: the promised return date currently in force")
    finished_at: AwareDatetime | None = Field(None, description="NgayKetThucXuLy")
    returned_at: AwareDatetime | None = Field(None, description="NgayTra")
    refused_at: AwareDatetime | None = Field(None, description="NgayTuChoi")
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

    contract_version: str = Field(RATING_CONTRACT_VERSION, pattern=VERSION_PATTERN, description="MAJOR.MINOR of the kiosk-rating contract")
    rating_id: str = Field(pattern=EVENT_ID_PATTERN, description="Unique id of the rating, made by the kiosk; the idempotency key")
    event_time: AwareDatetime = Field(description="When the citizen rated, with its UTC offset (+07:00)")
    ingest_time: AwareDatetime | None = Field(None, description="When motcua-pulse accepted the rating; set by the front door")
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
