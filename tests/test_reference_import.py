"""pulse reference import: reading the IT centre's files, validating them, naming bad rows by file and row."""
from __future__ import annotations

from pathlib import Path

import pytest

from pulse.reference_import import (DEFAULT_COMMUNE_CODE, communes_of, parse_duration, parse_level, parse_online,
                                    procedure_code, read_file, run_import)
from schemas.reference import REFERENCE_DIR, from_document, load_reference, to_document

HA_TINH = Path(__file__).resolve().parent / "fixtures" / "reference" / "ha-tinh"


def ha_tinh(**kw):
    return run_import([HA_TINH / "don-vi.csv", HA_TINH / "thu-tuc.xlsx"], load_reference(),
                      communes_of_province="42", **kw)


def test_ha_tinh_from_dvcqg_and_national_database_columns():
    r = ha_tinh()
    assert r.ok, r.report()
    ref = r.reference
    assert ref.province.code == "000.00.00.H42" and ref.province.name == "Ủy ban nhân dân tỉnh Hà Tĩnh"
    assert ref.province.gso_code == "42" and r.province_code == "42"
    assert len(ref.units_of_kind("department")) == 5
    communes = ref.units_of_kind("commune")
    assert len(communes) == 69                        # every ward and commune of Hà Tĩnh (2025)
    # a commune the units file names (matched by Mã ĐVHC) keeps the file's agency code
    song_tri = next(u for u in communes if u.gso_code == "18754")
    assert (song_tri.code, song_tri.name) == ("000.01.60.H42", "Ủy ban nhân dân phường Sông Trí")
    assert all(u.parent_code == "000.00.00.H42" for u in communes)
    p = ref.procedures
    assert set(p) == {"1.001193", "1.000894", "1.001190", "2.000815", "1.009994", "1.004227", "2.001610"}
    assert (p["1.001193"].legal_working_days, p["1.001193"].online, p["1.001193"].level) == (0.5, "full", "commune")
    assert (p["1.000894"].legal_working_days, p["1.000894"].online) == (0.5, "partial")     # "0,5 ngày làm việc"
    assert (p["1.001190"].legal_working_days, p["1.001190"].online) == (0.5, "none")        # 04 giờ, mức độ 2
    assert (p["2.000815"].legal_working_days, p["2.000815"].level) == (10.0, "province")    # "Không quá 10 ..."
    assert p["1.004227"].legal_working_days == 22.0                                         # 30 calendar days
    assert any("30 calendar days" in w.reason for w in r.warnings)
    assert ref.fields["G09-TP03"].name == "Lý lịch tư pháp"
    assert ref.fields["G09-TP03"].department_code == "000.00.01.H42"   # from Cơ quan thực hiện "Sở Tư pháp"
    d = r.diffs
    assert len(d["units"].added) == 75 and len(d["units"].removed) == 110
    assert "1.001193" in d["procedures"].changed and not d["fields"].kept
    assert from_document(to_document(ref)) == ref


def test_the_bundled_csv_files_read_back_unchanged():
    r = run_import(sorted(REFERENCE_DIR.glob("*.csv")), load_reference())
    assert r.ok, r.report()
    assert r.reference == load_reference()
    assert all(not (d.added or d.changed or d.removed) for d in r.diffs.values())


def test_communes_of_bac_ninh_reproduce_the_bundled_communes():
    bundled = {u.code: u for u in load_reference().units_of_kind("commune")}
    made = communes_of("Bắc Ninh", "000.00.00.H24", DEFAULT_COMMUNE_CODE)
    assert [(u.code, u.name, u.gso_code) for u in made] == [(c, bundled[c].name, bundled[c].gso_code)
                                                            for c in sorted(bundled)]
    assert communes_of("24", "x")[0].name == communes_of("bac ninh", "x")[0].name
    with pytest.raises(ValueError, match="not one of the 34 provinces"):
        communes_of("Hà Tây", "x")


@pytest.mark.parametrize("text,days", [
    ("15 ngày làm việc", 15.0), ("03 ngày làm việc", 3.0), ("0,5 ngày làm việc", 0.5), ("Trong ngày", 0.5),
    ("Ngay trong ngày làm việc", 0.5), ("04 giờ làm việc", 0.5), ("16 giờ", 2.0), ("7", 7.0), (20, 20.0),
    ("Không quá 05 ngày làm việc kể từ ngày nhận đủ hồ sơ hợp lệ", 5.0), ("thoi han 10 ngay lam viec", 10.0),
    ("30 ngày", 22.0), ("01 tháng", 22.0), ("2 tuần", 10.0),
])
def test_resolution_times(text, days):
    assert parse_duration(text)[0] == days


@pytest.mark.parametrize("text", ["", "theo quy định", "ngày làm việc", None])
def test_unreadable_resolution_times(text):
    days, why = parse_duration(text)
    assert days is None and why


def test_levels_and_online_levels():
    assert parse_level("Cấp Tỉnh")[0] == "province" and parse_level("Cap xa")[0] == "commune"
    assert parse_level("Cấp Tỉnh, Cấp Xã")[0] == "commune"
    assert "district level" in parse_level("Cấp Huyện")[1]
    assert parse_level("Cấp Bộ")[0] is None
    for value, want in [("Toàn trình", "full"), ("DVC trực tuyến một phần", "partial"), (4, "full"),
                        ("Mức độ 3", "partial"), ("2", "none"), (1.0, "none"), ("", "none"), ("full", "full")]:
        assert parse_online(value)[0] == want, value
    assert "outside 1-4" in parse_online("5")[1]
    assert parse_online("Mức độ 0")[0] is None
    assert "unknown online level" in parse_online("nửa trình")[1]
    assert procedure_code(1.00119) == "1.001190" and procedure_code("2.000815.000.00.00.H55") == "2.000815"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_rows_are_named_by_file_and_row(tmp_path):
    units = _write(tmp_path / "don-vi.csv",
                   "Ma dinh danh,Ten don vi,Ma co quan cap tren\n"
                   "000.00.00.H42,UBND tỉnh Hà Tĩnh,\n"
                   "000.00.01.H42,Sở Tư pháp,\n"
                   "000.00.01.H42,Sở Tư pháp (bản trùng),\n"        # line 4: duplicate
                   "000.00.02.H42,,\n"                              # line 5: no name
                   "000.00.03.H42,Sở Y tế,000.00.99.H42\n"          # line 6: unknown parent
                   "Sở X y tế,Sở Nội vụ,\n")                        # line 7: not a code
    procs = _write(tmp_path / "thu-tuc.csv",
                   "Mã TTHC;Tên TTHC;Mã lĩnh vực;Tên lĩnh vực;Cấp thực hiện;Thời hạn giải quyết;Mức độ\n"
                   "1.001193;Đăng ký khai sinh;G09-TP01;Hộ tịch;Cấp Xã;Trong ngày;4\n"
                   "1.000894;Đăng ký kết hôn;G09-TP01;Hộ tịch;Cấp Xã;theo quy định;3\n"     # line 3: time
                   "1.000656;Đăng ký khai tử;G09-TP01;Hộ tịch;Cấp Xã;1 ngày làm việc;5\n"  # line 4: level 5
                   "1.001022;Nhận cha mẹ con;G09-TP01;Hộ tịch;Cấp Huyện;3 ngày làm việc;3\n"  # line 5: district
                   "1.001193;Đăng ký khai sinh lần hai;G09-TP01;Hộ tịch;Cấp Xã;1;4\n"       # line 6: duplicate
                   "2.000001;Thủ tục không tên lĩnh vực;;;Cấp Tỉnh;5 ngày làm việc;3\n"     # line 7: no field
                   "2.000002;;G09-TP01;Hộ tịch;Cấp Tỉnh;5 ngày làm việc;toàn trình\n")      # line 8: no name
    r = run_import([units, procs], load_reference())
    assert not r.ok and r.reference is None
    got = {str(e) for e in r.errors}

    def has(where: str, *words: str) -> bool:
        return any(e.startswith(f"{where}: ") and all(w in e for w in words) for e in got)
    assert has(f"{units}:4", "duplicate unit code 000.00.01.H42", f"{units}:3")
    assert has(f"{units}:5", "no name")
    assert has(f"{units}:6", "unknown parent unit 000.00.99.H42")
    assert has(f"{units}:7", "not a code the event contract accepts")
    assert has(f"{procs}:3", "unreadable resolution time")
    assert has(f"{procs}:4", "outside 1-4")
    assert has(f"{procs}:5", "no district level")
    assert has(f"{procs}:6", "duplicate procedure code 1.001193", f"{procs}:2")
    assert has(f"{procs}:7", "no field code")
    assert has(f"{procs}:8", "no name")
    assert len(got) == 10, sorted(got)
    assert any("nothing written" in line for line in r.report())


def test_unknown_field_codes_against_a_fields_file(tmp_path):
    fields = _write(tmp_path / "linh-vuc.csv", "Mã lĩnh vực,Tên lĩnh vực\nG09-TP01,Hộ tịch\n")
    procs = _write(tmp_path / "thu-tuc.csv",
                   "Ma thu tuc,Ten thu tuc,Ma linh vuc,Cap thuc hien,Thoi han giai quyet,Muc do DVC\n"
                   "1.001193,Đăng ký khai sinh,G09-TP01,Cấp Xã,Trong ngày,Toàn trình\n"
                   "1.000894,Đăng ký kết hôn,G09-TP77,Cấp Xã,1 ngày làm việc,Một phần\n")
    r = run_import([fields, procs], load_reference())
    assert [str(e) for e in r.errors] == [f"{procs}:3: procedure 1.000894: unknown field code G09-TP77 (not in the fields)"]


def test_an_xlsx_below_title_rows_and_its_bad_row(tmp_path):
    from openpyxl import Workbook
    wb = Workbook()
    ws = wb.active
    ws.title = "TTHC"
    ws.append(["DANH MỤC THỦ TỤC HÀNH CHÍNH"])
    ws.append(["Ngày xuất: 01/12/2026"])
    ws.append([])
    ws.append(["STT", "Mã thủ tục", "Tên thủ tục", "Mã lĩnh vực", "Lĩnh vực", "Cấp thực hiện", "Thời hạn giải quyết",
               "Mức độ DVC"])
    ws.append([1, "1.001193", "Đăng ký khai sinh", "G09-TP01", "Hộ tịch", "Cấp Xã", "Trong ngày", 4])
    ws.append([2, "1.000894", "Đăng ký kết hôn", "G09-TP01", "Hộ tịch", "Cấp Xã", "", 3])    # row 6: no time
    path = tmp_path / "thu-tuc.xlsx"
    wb.save(path)
    r = run_import([path], load_reference())
    assert [str(e) for e in r.errors] == [f"{path}[TTHC]:6: procedure 1.000894: no resolution time"]
    ws.delete_rows(6)
    wb.save(path)
    r = run_import([path], load_reference())
    assert r.ok, r.report()
    # procedures and their fields replaced, the units kept (not in the files)
    assert set(r.reference.procedures) == {"1.001193"} and set(r.reference.fields) == {"G09-TP01"}
    assert r.diffs["units"].kept and r.reference.units == load_reference().units


def test_files_that_cannot_be_read(tmp_path):
    nohead = _write(tmp_path / "notes.csv", "a,b\n1,2\n")
    latin = tmp_path / "thu-tuc.csv"
    latin.write_bytes(b"M\xe3 th\xf9 t\xf9c,T\xean th\xf9 t\xf9c\n")   # a legacy 8-bit export, not UTF-8
    fake = _write(tmp_path / "thu-tuc.xlsx", "not a workbook")
    _write(tmp_path / "x.pdf", "%PDF-1.4")
    problems = [str(p) for path in (nohead, latin, fake, tmp_path / "missing.csv", tmp_path / "x.pdf")
                for p in read_file(path)]
    assert problems[0].startswith(f"{nohead}: no header row with a known code column")
    assert problems[1].startswith(f"{latin}: not UTF-8 text")
    assert problems[2].startswith(f"{fake}: not a readable XLSX workbook")
    assert problems[3] == f"{tmp_path / 'missing.csv'}: no such file"
    assert problems[4].startswith(f"{tmp_path / 'x.pdf'}: unsupported file type")


def test_communes_alone_replace_the_communes_and_keep_the_other_units():
    bundled = load_reference()
    r = run_import([], bundled, communes_of_province="24")
    assert r.ok, r.report()
    assert r.reference.units == bundled.units          # the bundled communes are vietnam-provinces' own
    assert all(not (d.added or d.changed or d.removed) for d in r.diffs.values())
    assert r.diffs["procedures"].kept and not r.diffs["units"].kept
