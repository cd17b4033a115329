"""frontdoor.dvcqg: DVCQG sync payload -> DossierEvent contracts (pure, no broker)."""
from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest

from frontdoor.dvcqg import (DvcqgError, convert_dossier, convert_payload, event_id_for, is_batch,
                             iter_dossiers, parse_dvcqg_time)
from schemas.contracts import DossierEvent, DossierStatus

VN = timezone(timedelta(hours=7))

DOSSIER = {
    "MaHoSo": "000.00.01.H12-251120-0001", "MaTTHC": "1.004227", "TenTTHC": "Cấp giấy phép",
    "MaLinhVuc": "G09-XD", "KenhThucHien": "2", "ChuHoSo": "Nguyễn Văn A", "LoaiDoiTuong": 1,
    "DonViXuLy": "000.00.01.H12", "NgayNopHoSo": "20251120080000", "NgayTiepNhan": "20251120083000",
    "NgayHenTra": "20251127170000", "TrangThaiHoSo": 10, "NgayKetThucXuLy": "20251126100000",
    "NgayTra": "20251126143000", "NgayTuChoi": "", "HoSoCoThanhPhanSoHoa": 1, "DuocThanhToanTrucTuyen": 1,
    "TaiKhoanDuocXacThucVoiVNeID": "1",
    "DanhSachHoSoBoSung": [{"NgayYeuCauBoSung": "20251121090000", "NgayTiepNhanBoSung": "20251122090000",
                            "NgayHenTraTruoc": "20251125170000", "NgayHenTraMoi": "20251127170000"}],
    "QuaTrinhXuLy": [
        {"MaHoSo": "000.00.01.H12-251120-0001", "NguoiXuLy": "Trần B", "ThoiDiemXuLy": "20251120080000", "TrangThai": 1},
        {"MaHoSo": "000.00.01.H12-251120-0001", "NguoiXuLy": "Trần B", "ThoiDiemXuLy": "20251120083000", "TrangThai": 2,
         "NgayBatDau": "20251120083000", "NgayKetThucTheoQuyDinh": "20251125170000"},
        {"MaHoSo": "000.00.01.H12-251120-0001", "NguoiXuLy": "Lê C", "ThoiDiemXuLy": "20251121090000", "TrangThai": 5},
        {"MaHoSo": "000.00.01.H12-251120-0001", "NguoiXuLy": "Lê C", "ThoiDiemXuLy": "20251122090000", "TrangThai": 4},
        {"MaHoSo": "000.00.01.H12-251120-0001", "NguoiXuLy": "Lê C", "ThoiDiemXuLy": "20251126100000", "TrangThai": 9},
        {"MaHoSo": "000.00.01.H12-251120-0001", "NguoiXuLy": "Trần B", "ThoiDiemXuLy": "20251126143000", "TrangThai": 10},
    ],
}


# -- dates -----------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("20251120083000", datetime(2025, 11, 20, 8, 30, tzinfo=VN)),
    ("202511200830", datetime(2025, 11, 20, 8, 30, tzinfo=VN)),
    ("20251120", datetime(2025, 11, 20, tzinfo=VN)),
    ("2025-11-20T08:30:00+07:00", datetime(2025, 11, 20, 8, 30, tzinfo=VN)),
    ("2025-11-20T01:30:00Z", datetime(2025, 11, 20, 8, 30, tzinfo=VN)),
    ("2025-11-20T08:30:00", datetime(2025, 11, 20, 8, 30, tzinfo=VN)),   # naive ISO = local time
    ("2025-11-20 08:30:00.123+07:00", datetime(2025, 11, 20, 8, 30, 0, 123000, tzinfo=VN)),
    ("20/11/2025 08:30:00", datetime(2025, 11, 20, 8, 30, tzinfo=VN)),
    ("20/11/2025", datetime(2025, 11, 20, tzinfo=VN)),
    (1763602200000, datetime(2025, 11, 20, 8, 30, tzinfo=VN)),             # epoch ms (OpenCPS)
    ("", None), (None, None), ("   ", None),
])
def test_parse_dvcqg_time(raw, expected):
    got = parse_dvcqg_time(raw)
    assert got == expected
    if got is not None:
        assert got.tzinfo is not None


@pytest.mark.parametrize("raw", ["20251340083000", "2025-13-01", "hôm qua", "32/01/2025", True, [2025]])
def test_parse_dvcqg_time_rejects(raw):
    with pytest.raises(ValueError):
        parse_dvcqg_time(raw)


# -- conversion ------------------------------------------------------------------------

def test_one_event_per_history_record_in_time_order():
    events = convert_dossier(DOSSIER, "src-h12")
    assert [e.status for e in events] == [1, 2, 5, 4, 9, 10]
    assert all(isinstance(e, DossierEvent) for e in events)
    assert [e.event_time for e in events] == sorted(e.event_time for e in events)
    e = events[1]
    assert e.dossier_code == DOSSIER["MaHoSo"] and e.procedure_code == "1.004227"
    assert e.procedure_field == "G09-XD" and e.unit_code == "000.00.01.H12"
    assert e.channel == 2 and e.owner_type == 1 and e.handler == "Trần B"
    assert e.source_system == "src-h12"
    assert e.paid_online == 1 and e.has_digitised_components and e.vneid_authenticated
    assert e.event_time == datetime(2025, 11, 20, 8, 30, tzinfo=VN)


def test_point_in_time_attributes():
    """No event carries a date that had not happened yet at its ThoiDiemXuLy."""
    ev = {e.status: e for e in convert_dossier(DOSSIER, "src")}
    received = ev[DossierStatus.RECEIVED]
    assert received.received_at == datetime(2025, 11, 20, 8, 30, tzinfo=VN)
    assert received.finished_at is None and received.returned_at is None
    assert received.supplements == ()
    # promised date before the supplement round: its NgayHenTraTruoc
    assert received.promised_at == datetime(2025, 11, 25, 17, tzinfo=VN)
    sup = ev[DossierStatus.SUPPLEMENT_REQUESTED]
    assert len(sup.supplements) == 1 and sup.supplements[0].resumed_at is None
    assert sup.promised_at == datetime(2025, 11, 27, 17, tzinfo=VN)
    inprog = ev[DossierStatus.IN_PROGRESS]
    assert inprog.supplements[0].resumed_at == datetime(2025, 11, 22, 9, tzinfo=VN)
    fin = ev[DossierStatus.FINISHED]
    assert fin.finished_at == datetime(2025, 11, 26, 10, tzinfo=VN) and fin.returned_at is None
    ret = ev[DossierStatus.RETURNED]
    assert ret.returned_at == datetime(2025, 11, 26, 14, 30, tzinfo=VN)
    assert ret.refused_at is None


def test_deterministic_ids_same_payload_same_ids():
    a = [e.event_id for e in convert_dossier(DOSSIER, "src")]
    b = [e.event_id for e in convert_dossier(copy.deepcopy(DOSSIER), "src",
                                            ingest_time=datetime.now(timezone.utc))]
    assert a == b and len(set(a)) == len(a)


def test_deterministic_ids_independent_of_date_format_and_order():
    iso = copy.deepcopy(DOSSIER)
    for rec in iso["QuaTrinhXuLy"]:
        t = parse_dvcqg_time(rec["ThoiDiemXuLy"])
        rec["ThoiDiemXuLy"] = t.astimezone(timezone.utc).isoformat()
    iso["QuaTrinhXuLy"].reverse()
    assert ({e.event_id for e in convert_dossier(iso, "src")}
            == {e.event_id for e in convert_dossier(DOSSIER, "src")})


def test_ids_depend_on_source_dossier_status_and_time():
    t = datetime(2025, 11, 20, 8, 30, tzinfo=VN)
    base = event_id_for("s", "HS1", 2, t)
    assert base == event_id_for("s", "HS1", 2, t.astimezone(timezone.utc))
    assert len({base, event_id_for("s2", "HS1", 2, t), event_id_for("s", "HS2", 2, t),
                event_id_for("s", "HS1", 4, t), event_id_for("s", "HS1", 2, t + timedelta(seconds=1))}) == 5
    DossierEvent.model_fields["event_id"]  # the id fits the contract's pattern:
    import re
    from schemas.contracts import EVENT_ID_PATTERN
    assert re.match(EVENT_ID_PATTERN, base)


def test_same_record_twice_in_one_payload_yields_one_event():
    d = copy.deepcopy(DOSSIER)
    d["QuaTrinhXuLy"].append(dict(d["QuaTrinhXuLy"][0]))
    assert len(convert_dossier(d, "src")) == 6


def test_no_history_uses_current_status_and_its_date():
    d = {k: v for k, v in DOSSIER.items() if k not in ("QuaTrinhXuLy", "DanhSachHoSoBoSung")}
    (e,) = convert_dossier(d, "src")
    assert e.status == 10 and e.event_time == datetime(2025, 11, 26, 14, 30, tzinfo=VN)


def test_channel_empty_means_direct_and_defaults():
    d = copy.deepcopy(DOSSIER)
    d["KenhThucHien"] = ""
    d["DuocThanhToanTrucTuyen"] = ""
    e = convert_dossier(d, "src")[0]
    assert e.channel == 1 and e.paid_online == 0


def test_errors_name_every_field():
    d = copy.deepcopy(DOSSIER)
    del d["MaTTHC"]
    d["KenhThucHien"] = 7
    d["QuaTrinhXuLy"][2]["ThoiDiemXuLy"] = "not a date"
    d["QuaTrinhXuLy"][3]["TrangThai"] = 11
    d["QuaTrinhXuLy"][4]["MaHoSo"] = "OTHER"
    with pytest.raises(DvcqgError) as ei:
        convert_dossier(d, "src")
    fields = {p["field"] for p in ei.value.problems}
    assert {"MaTTHC", "KenhThucHien", "QuaTrinhXuLy[2].ThoiDiemXuLy", "QuaTrinhXuLy[3].TrangThai",
            "QuaTrinhXuLy[4].MaHoSo"} <= fields


def test_contract_errors_are_named_with_dvcqg_fields():
    d = copy.deepcopy(DOSSIER)
    d["DonViXuLy"] = "bad unit code with spaces"
    with pytest.raises(DvcqgError) as ei:
        convert_dossier(d, "src")
    assert ei.value.problems[0]["field"] == "DonViXuLy"


def test_payload_shapes():
    assert iter_dossiers(DOSSIER) == [DOSSIER] and not is_batch(DOSSIER)
    assert iter_dossiers([DOSSIER, DOSSIER]) == [DOSSIER, DOSSIER] and is_batch([DOSSIER])
    assert iter_dossiers({"data": [DOSSIER]}) == [DOSSIER] and is_batch({"data": [DOSSIER]})
    out = convert_payload([DOSSIER, {"MaHoSo": "X"}], "src")
    assert out[0][0] == DOSSIER["MaHoSo"] and len(out[0][1]) == 6
    assert isinstance(out[1][1], DvcqgError)
