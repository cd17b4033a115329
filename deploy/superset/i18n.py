"""Vietnamese language pack for Superset: read the hand-written .po, build what Superset reads.

The source of truth is ``translations/vi/LC_MESSAGES/messages.po`` (msgids from Superset's
own ``messages.pot``, translated by hand with the boards' administrative vocabulary). Superset
reads two forms of it, both build output that is never committed:

* ``messages.mo`` - the backend catalogue (Flask-Babel: server-rendered text, API messages);
* ``messages.json`` - the front end's language pack (Jed layout, fetched by the SPA from
  ``/superset/language_pack/vi/``).

    python deploy/superset/i18n.py build --out <superset>/translations/vi/LC_MESSAGES
    python deploy/superset/i18n.py check [--pot <superset>/translations/messages.pot]
    python deploy/superset/i18n.py stats

Standard library only, so it runs in Superset's venv (install.sh) and in the pipeline's venv
(the remainder script and the browser tests), neither of which has to carry Babel for it.
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PO = HERE / "translations" / "vi" / "LC_MESSAGES" / "messages.po"
LANG = "vi"
PLURAL_FORMS = "nplurals=1; plural=0;"  # Vietnamese has no grammatical plural


@dataclass
class Entry:
    msgid: str
    msgid_plural: str | None = None
    msgstr: list[str] = field(default_factory=list)
    msgctxt: str | None = None
    flags: set[str] = field(default_factory=set)
    line: int = 0

    @property
    def translated(self) -> bool:
        return bool(self.msgstr) and all(s for s in self.msgstr) and "fuzzy" not in self.flags


def _unquote(s: str, path: Path, line: int) -> str:
    s = s.strip()
    if not (s.startswith('"') and s.endswith('"')):
        raise ValueError(f"{path}:{line}: expected a quoted string, got {s[:40]!r}")
    # PO strings use C escapes, a subset of Python's; ast keeps non-ASCII text as it is.
    return ast.literal_eval(s)


def read_po(path: Path) -> tuple[dict[str, str], list[Entry]]:
    """(header fields, entries); the header entry (msgid "") is not among the entries."""
    entries: list[Entry] = []
    cur: Entry | None = None
    key: str | None = None
    flags: set[str] = set()
    header: dict[str, str] = {}

    def finish():
        nonlocal cur
        if cur is not None:
            if cur.msgid == "" and cur.msgctxt is None:
                for ln in (cur.msgstr[0] if cur.msgstr else "").split("\n"):
                    if ":" in ln:
                        k, v = ln.split(":", 1)
                        header[k.strip()] = v.strip()
            else:
                entries.append(cur)
        cur = None

    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        ln = raw.strip()
        if not ln:
            continue
        if ln.startswith("#,"):
            flags |= {f.strip() for f in ln[2:].split(",") if f.strip()}
            continue
        if ln.startswith("#"):
            continue
        m = re.match(r"^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(.*)$", ln)
        if m:
            word, idx, rest = m.group(1), m.group(2), m.group(3)
            val = _unquote(rest, path, n)
            if word in ("msgctxt",) or (word == "msgid" and (cur is None or cur.msgstr)):
                finish()
                cur = Entry(msgid="", flags=flags, line=n)
                flags = set()
            if word == "msgctxt":
                cur.msgctxt, key = val, "msgctxt"
            elif word == "msgid":
                if cur is None:
                    cur = Entry(msgid="", flags=flags, line=n)
                    flags = set()
                cur.msgid, key = val, "msgid"
            elif word == "msgid_plural":
                cur.msgid_plural, key = val, "msgid_plural"
            else:
                i = int(idx or 0)
                while len(cur.msgstr) <= i:
                    cur.msgstr.append("")
                cur.msgstr[i], key = val, f"msgstr:{i}"
        elif ln.startswith('"'):
            if cur is None or key is None:
                raise ValueError(f"{path}:{n}: continuation line outside an entry")
            val = _unquote(ln, path, n)
            if key.startswith("msgstr:"):
                cur.msgstr[int(key[7:])] += val
            else:
                setattr(cur, key, getattr(cur, key) + val)
        else:
            raise ValueError(f"{path}:{n}: cannot parse {ln[:60]!r}")
    finish()
    return header, entries


# printf-style placeholders (%s, %d, %(name)s) and str.format ones ({name}), as Superset uses both
_PH = re.compile(r"%\((\w+)\)[sdifr]|%[sdif]|\{(\w*)\}")


def placeholders(s: str) -> list[str]:
    return sorted(m.group(0) for m in _PH.finditer(s) if m.group(0) != "%%")


def problems(entries: list[Entry], pot: Path | None = None) -> list[str]:
    out = []
    seen: set[tuple] = set()
    for e in entries:
        k = (e.msgctxt, e.msgid)
        if k in seen:
            out.append(f"line {e.line}: duplicate msgid {e.msgid!r}")
        seen.add(k)
        if not e.translated:
            continue
        want = placeholders(e.msgid)
        for s in e.msgstr:
            # a translation may drop a %s the reader does not need (plural count), never invent one
            if not set(placeholders(s)) <= set(want) or (placeholders(s) != want and not e.msgid_plural):
                out.append(f"line {e.line}: placeholders {want} in {e.msgid!r} but {placeholders(s)} in {s!r}")
        if len(e.msgstr) != 1:
            out.append(f"line {e.line}: {len(e.msgstr)} plural forms for {e.msgid!r}; Vietnamese has one")
    if pot is not None and pot.exists():
        _, src = read_po(pot)
        known = {(e.msgctxt, e.msgid) for e in src}
        for e in entries:
            if (e.msgctxt, e.msgid) not in known:
                out.append(f"line {e.line}: {e.msgid!r} is not in Superset's catalogue {pot}")
    return out


def write_mo(entries: list[Entry], header: str, path: Path) -> None:
    """GNU gettext .mo (little endian, no hash table), as Python's msgfmt.py writes it."""
    msgs: dict[bytes, bytes] = {b"": header.encode("utf-8")}
    for e in entries:
        if not e.translated:
            continue
        k = e.msgid if e.msgctxt is None else f"{e.msgctxt}\x04{e.msgid}"
        if e.msgid_plural is not None:
            k += "\x00" + e.msgid_plural
        msgs[k.encode("utf-8")] = "\x00".join(e.msgstr).encode("utf-8")
    keys = sorted(msgs)
    ids = strs = b""
    offsets = []
    for k in keys:
        offsets.append((len(ids), len(k), len(strs), len(msgs[k])))
        ids += k + b"\x00"
        strs += msgs[k] + b"\x00"
    n = len(keys)
    keystart = 7 * 4 + 16 * n
    valuestart = keystart + len(ids)
    koffsets, voffsets = [], []
    for o1, l1, o2, l2 in offsets:
        koffsets += [l1, o1 + keystart]
        voffsets += [l2, o2 + valuestart]
    out = struct.pack("Iiiiiii", 0x950412DE, 0, n, 7 * 4, 7 * 4 + n * 8, 0, 0)
    out += struct.pack(f"{len(koffsets)}i", *koffsets) + struct.pack(f"{len(voffsets)}i", *voffsets)
    path.write_bytes(out + ids + strs)


def language_pack(entries: list[Entry]) -> dict:
    """The front end's Jed layout, as Superset's own messages.json files have it."""
    data: dict = {"": {"domain": "superset", "plural_forms": PLURAL_FORMS, "lang": LANG}}
    for e in entries:
        if e.translated and e.msgctxt is None:
            data[e.msgid] = list(e.msgstr)
    return {"domain": "superset", "locale_data": {"superset": data}}


def translations(po: Path = PO) -> dict[str, str]:
    """msgid -> Vietnamese, translated entries only (for the remainder script and tests)."""
    return {e.msgid: e.msgstr[0] for e in read_po(po)[1] if e.translated}


def build(out: Path, po: Path = PO, pot: Path | None = None) -> int:
    header_fields, entries = read_po(po)
    bad = problems(entries, pot)
    if bad:
        raise SystemExit(f"{po}:\n  " + "\n  ".join(bad))
    header = "".join(f"{k}: {v}\n" for k, v in {
        "Project-Id-Version": header_fields.get("Project-Id-Version", "Superset"),
        "Language": LANG, "MIME-Version": "1.0", "Content-Type": "text/plain; charset=utf-8",
        "Content-Transfer-Encoding": "8bit", "Plural-Forms": PLURAL_FORMS}.items())
    out.mkdir(parents=True, exist_ok=True)
    write_mo(entries, header, out / "messages.mo")
    (out / "messages.json").write_text(json.dumps(language_pack(entries), ensure_ascii=False, indent=1),
                                       encoding="utf-8")
    n = sum(e.translated for e in entries)
    print(f"vi language pack: {n} strings -> {out}/messages.mo, messages.json")
    return n


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--pot", type=Path, default=None, help="fail on msgids Superset does not have")
    c = sub.add_parser("check")
    c.add_argument("--pot", type=Path, default=None)
    sub.add_parser("stats")
    a = p.parse_args(argv)
    if a.cmd == "build":
        build(a.out, pot=a.pot)
    elif a.cmd == "check":
        bad = problems(read_po(PO)[1], a.pot)
        if bad:
            sys.exit("\n".join(bad))
        print("messages.po ok")
    else:
        _, entries = read_po(PO)
        print(f"{sum(e.translated for e in entries)} translated, {sum(not e.translated for e in entries)} not")


if __name__ == "__main__":
    main()
