"""Superset for motcua-pulse: set up, run, provision boards and roles.

Run with Superset's own interpreter (the script re-executes itself with it if needed)::

    .venv-superset/bin/python deploy/superset/manage.py init     # metadata DB, admin, superset init
    .venv-superset/bin/python deploy/superset/manage.py start    # gunicorn on 127.0.0.1:SUPERSET_PORT
    .venv-superset/bin/python deploy/superset/manage.py import   # assets bundle -> /api/v1/assets/import/
    .venv-superset/bin/python deploy/superset/manage.py roles    # province / unit leader roles + RLS
    .venv-superset/bin/python deploy/superset/manage.py status | stop

Settings (pulse.config.Settings): PULSE_STATE_DIR (metadata, pid, log, generated secrets
under ``<state>/superset/``), SUPERSET_PORT, SUPERSET_ADMIN_USER, SUPERSET_ADMIN_PASSWORD
(local: generated once, stored in ``<state>/superset/admin_password`` and printed),
CLICKHOUSE_URL (the host, port, user and password the boards' database connection uses,
so one bundle serves the local chDB endpoint and a production cluster).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ASSETS = HERE / "assets"
DEFAULT_VENV = REPO / ".venv-superset"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pulse.config import Settings  # noqa: E402
from pulse import procs  # noqa: E402

DATABASE_NAME = "ClickHouse motcua"
DATABASE_FILE = "databases/ClickHouse_motcua.yaml"
PROVINCE_ROLE = "province_leader"
UNIT_ROLE_PREFIX = "unit_leader_"
UNIT_COLUMNS = ("unit_code",)  # RLS applies to every dataset that has one of these columns
SAMPLE_UNIT_USER = "lanhdao_donvi"
SAMPLE_PROVINCE_USER = "lanhdao_tinh"


# --------------------------------------------------------------------------------------
# paths and environment
# --------------------------------------------------------------------------------------
class Paths:
    def __init__(self, settings: Settings):
        self.dir = Path(settings.state_dir) / "superset"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pid = self.dir / "superset.pid"
        self.log = self.dir / "superset.log"
        self.admin_password = self.dir / "admin_password"
        self.unit_user_password = self.dir / "unit_user_password"
        self.province_user_password = self.dir / "province_user_password"


def superset_env(settings: Settings) -> dict:
    env = dict(os.environ)
    env["SUPERSET_CONFIG_PATH"] = str(HERE / "superset_config.py")
    env["FLASK_APP"] = "superset.app:create_app()"
    env["PULSE_STATE_DIR"] = str(settings.state_dir)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("SUPERSET_LOAD_EXAMPLES", "no")
    # "Today" / "Current month" in time filters are Vietnam calendar days.
    env["TZ"] = settings.timezone
    return env


def venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def base_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.superset_port}"


def _write_secret(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)


def admin_password(settings: Settings, paths: Paths, create: bool = False) -> str:
    """SUPERSET_ADMIN_PASSWORD, else the locally generated one (generated on ``init``)."""
    if settings.superset_admin_password:
        return settings.superset_admin_password
    if paths.admin_password.exists():
        return paths.admin_password.read_text().strip()
    if not create:
        raise SystemExit("no admin password: set SUPERSET_ADMIN_PASSWORD or run `manage.py init` first")
    pw = secrets.token_urlsafe(15)
    _write_secret(paths.admin_password, pw)
    print(f"generated Superset admin password for {settings.superset_admin_user!r}: {pw}")
    print(f"  (stored in {paths.admin_password})")
    return pw


def run_superset(settings: Settings, *args: str) -> None:
    cmd = [venv_bin("superset"), *args]
    print("+ superset " + " ".join(args))
    subprocess.run(cmd, env=superset_env(settings), check=True, cwd=str(REPO))


def app_context(settings: Settings):
    """Superset's Flask app in this process (for users, roles, RLS)."""
    os.environ.update({k: v for k, v in superset_env(settings).items()
                       if k in ("SUPERSET_CONFIG_PATH", "FLASK_APP", "PULSE_STATE_DIR")})
    from superset.app import create_app
    app = create_app()
    return app.app_context()


# --------------------------------------------------------------------------------------
# init / start / stop / status
# --------------------------------------------------------------------------------------
def cmd_init(settings: Settings, paths: Paths, args) -> None:
    t0 = time.monotonic()
    run_superset(settings, "db", "upgrade")
    pw = admin_password(settings, paths, create=True)
    with app_context(settings):
        from superset import security_manager as sm
        from superset.extensions import db
        user = sm.find_user(username=settings.superset_admin_user)
        admin_role = sm.find_role("Admin")
        if admin_role is None:  # first run: roles come from `superset init`, but FAB makes Admin too
            admin_role = sm.add_role("Admin")
        if user is None:
            sm.add_user(settings.superset_admin_user, "Admin", "Pulse",
                        f"{settings.superset_admin_user}@motcua.local", admin_role, password=pw)
            print(f"created admin user {settings.superset_admin_user!r}")
        else:
            sm.reset_password(user.id, pw)
            print(f"admin user {settings.superset_admin_user!r} exists; password synchronised")
        db.session.commit()
    run_superset(settings, "init")
    with app_context(settings):
        grant_public_language_pack()
    print(f"superset init done in {time.monotonic() - t0:.0f} s")


def grant_public_language_pack() -> None:
    """The login page is rendered by the front end, which fetches its language pack from
    /superset/language_pack/<lang>/ before anyone has signed in; without this one permission
    on the (otherwise empty) Public role that request is redirected and the page stays English.
    The pack is Superset's public UI strings, nothing from the metadata."""
    from superset import security_manager as sm
    from superset.extensions import db
    pv = sm.find_permission_view_menu("can_language_pack", "Superset")
    if pv is None:
        raise SystemExit("permission can_language_pack on Superset missing: `superset init` did not run?")
    public = sm.find_role(sm.auth_role_public) or sm.add_role(sm.auth_role_public)
    if pv not in public.permissions:
        sm.add_permission_role(public, pv)
    db.session.commit()


def is_running(paths: Paths) -> bool:
    return procs.pid_alive(procs.read_pid(paths.pid))


def cmd_start(settings: Settings, paths: Paths, args) -> None:
    url = base_url(settings)
    if is_running(paths):
        print(f"superset already running (pid {procs.read_pid(paths.pid)}) at {url}")
        return
    if procs.port_open("127.0.0.1", settings.superset_port):
        raise SystemExit(f"port {settings.superset_port} is taken by another process")
    workers = str(getattr(args, "workers", 2) or 2)
    cmd = [venv_bin("gunicorn"), "--workers", workers, "--worker-class", "gthread", "--threads", "4",
           "--bind", f"127.0.0.1:{settings.superset_port}", "--timeout", "120",
           "--limit-request-line", "0", "--limit-request-field_size", "0",
           "--no-control-socket", "--access-logfile", "-", "superset.app:create_app()"]
    proc = procs.spawn(cmd, paths.log, paths.pid, env=superset_env(settings), cwd=REPO)
    procs.wait_until(lambda: procs.http_ok(f"{url}/health"), timeout=getattr(args, "timeout", 90) or 90,
                     what="superset", alive=lambda: proc.poll() is None, log=paths.log)
    print(f"superset up at {url} (pid {proc.pid}, log {paths.log})")


def cmd_stop(settings: Settings, paths: Paths, args) -> None:
    pid = procs.read_pid(paths.pid)
    if not procs.pid_alive(pid):
        print("superset not running")
    else:
        procs.terminate(pid, timeout=20)
        print(f"superset stopped (pid {pid})")
    paths.pid.unlink(missing_ok=True)


def cmd_status(settings: Settings, paths: Paths, args) -> None:
    url = base_url(settings)
    running = is_running(paths)
    healthy = procs.http_ok(f"{url}/health")
    print(f"superset: {'running pid ' + str(procs.read_pid(paths.pid)) if running else 'not running'}; "
          f"{url}/health {'ok' if healthy else 'unreachable'}")
    if not healthy:
        raise SystemExit(1)


# --------------------------------------------------------------------------------------
# API client (login + CSRF)
# --------------------------------------------------------------------------------------
class Api:
    def __init__(self, url: str, username: str, password: str):
        import requests
        self.url = url.rstrip("/")
        self.s = requests.Session()
        r = self.s.post(f"{self.url}/api/v1/security/login",
                        json={"username": username, "password": password, "provider": "db", "refresh": False},
                        timeout=30)
        if r.status_code != 200:
            raise SystemExit(f"login as {username!r} failed: {r.status_code} {r.text[:200]}")
        self.s.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        r = self.s.get(f"{self.url}/api/v1/security/csrf_token/", timeout=30)
        r.raise_for_status()
        self.s.headers["X-CSRFToken"] = r.json()["result"]
        self.s.headers["Referer"] = self.url

    def get(self, path: str, **kw):
        r = self.s.get(f"{self.url}{path}", timeout=60, **kw)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, **kw):
        return self.s.post(f"{self.url}{path}", timeout=120, **kw)


# --------------------------------------------------------------------------------------
# assets bundle
# --------------------------------------------------------------------------------------
def sqlalchemy_uri(clickhouse_url: str, masked: bool = True) -> tuple[str, str]:
    """(uri with the password masked the way Superset exports it, the password)."""
    from urllib.parse import unquote, urlsplit
    parts = urlsplit(clickhouse_url)
    user = unquote(parts.username or "default")
    password = unquote(parts.password or "")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (8443 if parts.scheme == "https" else 8123)
    database = parts.path.strip("/") or "motcua"
    shown = "XXXXXXXXXX" if masked else quote(password, safe="")
    uri = f"clickhousedb://{quote(user, safe='')}:{shown}@{host}:{port}/{database}"
    if parts.scheme == "https":
        uri += "?secure=true"
    return uri, password


def build_bundle(settings: Settings, assets: Path = ASSETS) -> tuple[bytes, dict]:
    """Zip ``assets/`` as Superset's export layout; the database URI comes from CLICKHOUSE_URL."""
    import yaml
    uri, password = sqlalchemy_uri(settings.clickhouse_url)
    root = "motcua_pulse_assets"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(assets.rglob("*.yaml")):
            rel = path.relative_to(assets).as_posix()
            text = path.read_text(encoding="utf-8")
            if rel.startswith("databases/"):
                doc = yaml.safe_load(text)
                doc["sqlalchemy_uri"] = uri
                text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
            zf.writestr(f"{root}/{rel}", text)
    return buf.getvalue(), {DATABASE_FILE: password}


def fix_filter_scopes(api: Api) -> None:
    """Give every native filter of our dashboards its ``chartsInScope`` (real chart ids).

    The bundle scopes filters by ``scope.excluded`` (a filter on ``field_name`` must not reach
    a chart whose dataset has no such column; "received today" ignores the period filter).
    The importer remaps those ids, but the front end applies a filter to the charts listed in
    ``chartsInScope`` (all charts when absent), which only the filter editor computes.
    """
    import yaml
    for path in sorted((ASSETS / "dashboards").glob("*.yaml")):
        slug = yaml.safe_load(path.read_text(encoding="utf-8"))["slug"]
        dash = api.get(f"/api/v1/dashboard/{slug}")["result"]
        meta = json.loads(dash["json_metadata"] or "{}")
        position = json.loads(dash["position_json"] or "{}")
        chart_ids = sorted(v["meta"]["chartId"] for v in position.values()
                           if isinstance(v, dict) and v.get("type") == "CHART")
        for f in meta.get("native_filter_configuration", []):
            excluded = set(f.get("scope", {}).get("excluded", []))
            f["chartsInScope"] = [c for c in chart_ids if c not in excluded]
            f["tabsInScope"] = []
        r = api.s.put(f"{api.url}/api/v1/dashboard/{dash['id']}", json={"json_metadata": json.dumps(meta)},
                      timeout=60)
        if r.status_code != 200:
            raise SystemExit(f"scoping filters of {slug} failed: {r.status_code} {r.text[:500]}")


def cmd_import(settings: Settings, paths: Paths, args) -> None:
    bundle, passwords = build_bundle(settings)
    api = Api(base_url(settings), settings.superset_admin_user, admin_password(settings, paths))
    r = api.post("/api/v1/assets/import/",
                 files={"bundle": ("motcua_pulse_assets.zip", bundle, "application/zip")},
                 data={"passwords": json.dumps(passwords)})
    if r.status_code != 200:
        raise SystemExit(f"assets import failed: {r.status_code} {r.text[:2000]}")
    fix_filter_scopes(api)
    counts = {kind: api.get(f"/api/v1/{kind}/?q=(page_size:1)")["count"]
              for kind in ("database", "dataset", "chart", "dashboard")}
    print("assets imported: " + ", ".join(f"{v} {k}s" for k, v in counts.items()))


# --------------------------------------------------------------------------------------
# roles and row-level security
# --------------------------------------------------------------------------------------
READ_ONLY_EXCLUDE = {"can_write", "can_add", "can_edit", "can_delete", "muldelete", "can_import_",
                     "can_export", "can_csv", "can_share_chart", "can_share_dashboard"}


def _leader_permissions(sm):
    """Gamma's permissions without the write/export ones, plus saving the filter state."""
    gamma = sm.find_role("Gamma")
    keep = []
    for pv in gamma.permissions:
        name, view = pv.permission.name, pv.view_menu.name
        if name in READ_ONLY_EXCLUDE and view not in ("DashboardFilterStateRestApi",
                                                      "DashboardPermalinkRestApi",
                                                      "ExploreFormDataRestApi"):
            continue
        keep.append(pv)
    return keep


def _set_role(sm, db, name: str, pvs) -> object:
    role = sm.find_role(name) or sm.add_role(name)
    role.permissions = list({pv.id: pv for pv in pvs}.values())
    db.session.merge(role)
    return role


def _units(database) -> list[tuple[str, str]]:
    """Unit codes and names from ClickHouse (the same connection the boards use). The
    reference table lists every unit from the first start, before any dossier arrives."""
    for sql in ("SELECT unit_code, unit_name FROM ref_units FINAL WHERE unit_kind != 'province' ORDER BY unit_code",
                "SELECT DISTINCT unit_code, any(unit_name) FROM v_unit_scoreboard GROUP BY unit_code ORDER BY unit_code",
                "SELECT DISTINCT unit_code, any(unit_name) FROM v_dossier_daily GROUP BY unit_code ORDER BY unit_code"):
        try:
            df = database.get_df(sql, schema=None)
            return [(str(a), str(b)) for a, b in df.itertuples(index=False)]
        except Exception as exc:  # view missing: try the next
            print(f"  units query failed ({exc.__class__.__name__}); trying the next source")
    return []


def cmd_roles(settings: Settings, paths: Paths, args) -> None:
    with app_context(settings):
        from superset import security_manager as sm
        from superset.connectors.sqla.models import RowLevelSecurityFilter, SqlaTable
        from superset.extensions import db
        from superset.models.core import Database
        from superset.utils.core import RowLevelSecurityFilterType

        database = db.session.query(Database).filter_by(database_name=DATABASE_NAME).one_or_none()
        if database is None:
            raise SystemExit(f"database {DATABASE_NAME!r} not found: run `manage.py import` first")
        datasets = db.session.query(SqlaTable).filter_by(database_id=database.id).all()
        base = _leader_permissions(sm)

        def ds_perm(ds):
            return sm.add_permission_view_menu("datasource_access", ds.get_perm())

        # Province leader: every board, every dataset of the boards' database.
        province = _set_role(sm, db, PROVINCE_ROLE, base + [ds_perm(ds) for ds in datasets])

        # Unit leaders: the datasets that have a unit column, filtered to their unit.
        unit_ds = [ds for ds in datasets if {c.column_name for c in ds.columns} & set(UNIT_COLUMNS)]
        unit_pvs = base + [ds_perm(ds) for ds in unit_ds]
        units = _units(database)
        if args.units:
            wanted = set(args.units.split(","))
            units = [u for u in units if u[0] in wanted]
        for code, name in units:
            role = _set_role(sm, db, f"{UNIT_ROLE_PREFIX}{code}", unit_pvs)
            fname = f"unit_{code}"
            rls = db.session.query(RowLevelSecurityFilter).filter_by(name=fname).one_or_none()
            if rls is None:
                rls = RowLevelSecurityFilter(name=fname)
                db.session.add(rls)
            rls.filter_type = RowLevelSecurityFilterType.REGULAR
            rls.group_key = "unit_code"
            rls.clause = "unit_code = '" + code.replace("'", "''") + "'"
            rls.description = f"Lãnh đạo đơn vị {name}: chỉ thấy số liệu của đơn vị mình"
            rls.tables = unit_ds
            rls.roles = [role]
        # Dashboards: published; with DASHBOARD_RBAC, access follows dataset permissions
        # when a dashboard has no roles of its own.
        db.session.commit()
        print(f"roles: {PROVINCE_ROLE} ({len(datasets)} datasets), {len(units)} unit-leader roles "
              f"with RLS on {len(unit_ds)} datasets: {', '.join(sorted(d.table_name for d in unit_ds))}")

        if settings.superset_admin_password and not args.sample_user:
            return  # production: real users come from the province's directory, not from here
        if not units:
            print("no units found in ClickHouse yet: sample unit-leader user not created")
            return
        code, name = units[0] if not args.sample_unit else next(u for u in units if u[0] == args.sample_unit)
        role = sm.find_role(f"{UNIT_ROLE_PREFIX}{code}")
        pw = _sample_user(sm, db, SAMPLE_UNIT_USER, "Lãnh đạo", name[:60], role, paths.unit_user_password)
        print(f"sample unit-leader user {SAMPLE_UNIT_USER!r} ({code} {name}); password: {pw}")
        print(f"  (stored in {paths.unit_user_password})")
        # A sample province leader next to the admin, so leaders never need the admin account
        # (and the boards are checked as leaders see them: Vietnamese by role).
        pw = _sample_user(sm, db, SAMPLE_PROVINCE_USER, "Lãnh đạo", "tỉnh", province, paths.province_user_password)
        print(f"sample province-leader user {SAMPLE_PROVINCE_USER!r}; password: {pw}")
        print(f"  (stored in {paths.province_user_password})")


def _sample_user(sm, db, username: str, first: str, last: str, role, pw_path: Path) -> str:
    if pw_path.exists():
        pw = pw_path.read_text().strip()
    else:
        pw = secrets.token_urlsafe(12)
        _write_secret(pw_path, pw)
    user = sm.find_user(username=username)
    if user is None:
        sm.add_user(username, first, last, f"{username}@motcua.local", role, password=pw)
    else:
        user.roles = [role]
        sm.reset_password(user.id, pw)
    db.session.commit()
    return pw


# --------------------------------------------------------------------------------------
def _ensure_superset_python() -> None:
    try:
        import superset  # noqa: F401
    except ImportError:
        py = DEFAULT_VENV / "bin" / "python"
        if not py.exists():
            raise SystemExit(f"Superset's venv is missing: run deploy/superset/install.sh ({py})") from None
        os.execv(str(py), [str(py), *sys.argv])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("init", help="metadata DB upgrade, admin user, superset init")
    sp = sub.add_parser("start", help="run gunicorn in the background, wait for /health")
    sp.add_argument("--workers", type=int, default=2)
    sp.add_argument("--timeout", type=float, default=90)
    sub.add_parser("stop")
    sub.add_parser("status")
    sub.add_parser("import", help="POST the assets bundle to /api/v1/assets/import/")
    rp = sub.add_parser("roles", help="province/unit leader roles, RLS, sample leader users")
    rp.add_argument("--units", default="", help="comma-separated unit codes (default: all units in ClickHouse)")
    rp.add_argument("--sample-unit", default="", help="unit of the sample unit-leader user")
    rp.add_argument("--sample-user", action="store_true", help="create the sample user even in production")
    sub.add_parser("bundle", help="write the zipped bundle to stdout (inspection)")
    args = p.parse_args(argv)
    if args.cmd in ("init", "start", "roles", "import", "bundle"):
        _ensure_superset_python()
    settings = Settings.from_env()
    paths = Paths(settings)
    if args.cmd == "bundle":
        sys.stdout.buffer.write(build_bundle(settings)[0])
        return
    {"init": cmd_init, "start": cmd_start, "stop": cmd_stop, "status": cmd_status,
     "import": cmd_import, "roles": cmd_roles}[args.cmd](settings, paths, args)


if __name__ == "__main__":
    main()
