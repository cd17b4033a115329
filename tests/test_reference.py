"""Reference data: loads, cross-references hold, codes match the contract patterns, names are real Vietnamese."""
import re
import unicodedata

from schemas.contracts import CODE_PATTERN
from schemas.reference import load_reference


def test_shape_and_cross_references():
    ref = load_reference()
    assert ref is load_reference()  # cached
    assert ref.province.name == "Ủy ban nhân dân tỉnh Bắc Ninh"
    assert len(ref.units_of_kind("commune")) == 99
    assert len(ref.units_of_kind("department")) >= 10
    assert len(ref.procedures) >= 40 and len(ref.fields) >= 15
    assert {p.level for p in ref.procedures.values()} == {"province", "commune"}
    for p in ref.procedures.values():
        assert ref.department_for(p).kind == "department"
    # a commune-level procedure of every big field communes handle
    assert ref.procedures["1.001193"].legal_working_days == 0.5
    assert ref.units["000.00.04.H24"].name == "Sở Tài chính"


def test_codes_fit_the_contract_patterns():
    ref = load_reference()
    for code in [*ref.units, *ref.procedures, *ref.fields]:
        assert re.match(CODE_PATTERN, code), code
    assert all(re.fullmatch(r"000\.\d{2}\.\d{2}\.H24", c) for c in ref.units)
    assert all(re.fullmatch(r"[12]\.\d{6}", c) for c in ref.procedures)


def test_names_keep_their_diacritics_in_nfc():
    ref = load_reference()
    names = [u.name for u in ref.units.values()] + [p.name for p in ref.procedures.values()]
    assert all(unicodedata.is_normalized("NFC", n) for n in names)
    communes = {u.name for u in ref.units_of_kind("commune")}
    assert {"Phường Kinh Bắc", "Phường Từ Sơn", "Xã Yên Phong", "Phường Bắc Giang"} <= communes
    assert ref.units["000.01.50.H24"].former_district == "thành phố Bắc Giang"
