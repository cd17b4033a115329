"""Superset configuration for motcua-pulse (loaded through SUPERSET_CONFIG_PATH).

Offline by design: SQLite metadata in the state directory, an in-memory rate limiter and
cache, a content-security policy limited to 'self', data: and blob:, no telemetry. The
state directory comes from ``pulse.config.Settings`` (PULSE_STATE_DIR); the secret key from
SUPERSET_SECRET_KEY (production) or, locally, a key generated once and kept in
``<state>/superset/secret_key`` (mode 0600).

Production notes: point SUPERSET_METADATA_URI at PostgreSQL (SQLite refuses two datasets
with the same table name in different databases), set SUPERSET_SECRET_KEY, and put a
shared cache (Redis) in SUPERSET_CACHE_REDIS_URL if more than one web node runs.
"""
from __future__ import annotations

import os
import secrets
import sys
from datetime import timedelta
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from pulse.config import Settings  # noqa: E402  (stdlib-only module, safe in Superset's venv)

_settings = Settings.from_env()
STATE_DIR = Path(_settings.state_dir) / "superset"
STATE_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    key = os.environ.get("SUPERSET_SECRET_KEY", "").strip()
    if key:
        return key
    path = STATE_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


# --- core ---------------------------------------------------------------------------
SECRET_KEY = _secret_key()
SQLALCHEMY_DATABASE_URI = os.environ.get(
    "SUPERSET_METADATA_URI", f"sqlite:///{STATE_DIR / 'superset.db'}?check_same_thread=false"
)
SQLALCHEMY_TRACK_MODIFICATIONS = False
APP_NAME = "Một cửa – Pulse"
SUPERSET_WEBSERVER_PORT = _settings.superset_port
SUPERSET_WEBSERVER_TIMEOUT = 120
ROW_LIMIT = 50000
SQL_MAX_ROW = 100000
# Landing page: the province overview (dashboard slug) instead of the welcome page.
DEFAULT_DASHBOARD_SLUG = "tong-quan-tinh"

# --- offline: no telemetry, no outside resources --------------------------------------
# The bundled front end renders a telemetry pixel (scarf.sh); the CSP below blocks it.
SCARF_ANALYTICS = False
MAPBOX_API_KEY = ""
ENABLE_CORS = False  # the default CORS origins are OpenStreetMap tile servers
CORS_OPTIONS: dict = {}
THEME_FONT_URL_ALLOWED_DOMAINS: list[str] = []
ENABLE_UI_THEME_ADMINISTRATION = False
PREVENT_UNSAFE_DB_CONNECTIONS = True

TALISMAN_ENABLED = True
_CSP = {
    "base-uri": ["'self'"],
    "default-src": ["'self'"],
    "img-src": ["'self'", "data:", "blob:"],
    "worker-src": ["'self'", "blob:"],
    "connect-src": ["'self'", "data:", "blob:"],
    "object-src": "'none'",
    # Ant Design / emotion inject <style> elements at run time.
    "style-src": ["'self'", "'unsafe-inline'"],
    "font-src": ["'self'", "data:"],
    "script-src": ["'self'", "'strict-dynamic'"],
    "frame-ancestors": ["'self'"],
}
TALISMAN_CONFIG = {
    "content_security_policy": _CSP,
    "content_security_policy_nonce_in": ["script-src"],
    "force_https": False,
    "session_cookie_secure": False,
}
TALISMAN_DEV_CONFIG = TALISMAN_CONFIG
CONTENT_SECURITY_POLICY_WARNING = False

# --- in-memory rate limiter and caches ---------------------------------------------------
RATELIMIT_ENABLED = True
RATELIMIT_STORAGE_URI = "memory://"
RATELIMIT_APPLICATION = "100 per second"
AUTH_RATE_LIMITED = True
AUTH_RATE_LIMIT = "10 per 10 second"

_redis = os.environ.get("SUPERSET_CACHE_REDIS_URL", "")


def _cache(prefix: str, timeout: int) -> dict:
    if _redis:
        return {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": _redis,
                "CACHE_KEY_PREFIX": prefix, "CACHE_DEFAULT_TIMEOUT": timeout}
    return {"CACHE_TYPE": "SimpleCache", "CACHE_KEY_PREFIX": prefix,
            "CACHE_DEFAULT_TIMEOUT": timeout, "CACHE_THRESHOLD": 2000}


CACHE_CONFIG = _cache("pulse_meta_", 300)
# Boards refresh every 60 s: chart data older than 30 s is never served.
DATA_CACHE_CONFIG = _cache("pulse_data_", 30)
# Filter state and explore state stay in the metadata DB (Superset's default metastore cache).

# --- features ------------------------------------------------------------------------
FEATURE_FLAGS = {
    "DASHBOARD_CROSS_FILTERS": True,
    "DASHBOARD_NATIVE_FILTERS": True,
    "DRILL_TO_DETAIL": True,
    "DRILL_BY": True,
    "DASHBOARD_RBAC": True,
    "DASHBOARD_VIRTUALIZATION": False,  # render every chart at once: boards are wall displays
    "EMBEDDED_SUPERSET": False,
    "ALERT_REPORTS": False,
    "THUMBNAILS": False,
    "ENABLE_TEMPLATE_PROCESSING": False,
    "TAGGING_SYSTEM": False,
}
# Row-level security is always on in Superset 6; the roles are set up by manage.py roles.

# Auto-refresh: boards ship with 60 s; warn on anything more frequent than 30 s.
SUPERSET_DASHBOARD_PERIODICAL_REFRESH_LIMIT = 30
SUPERSET_DASHBOARD_PERIODICAL_REFRESH_WARNING_MESSAGE = (
    "Làm mới dưới 30 giây tạo tải không cần thiết cho ClickHouse / "
    "Refreshing more often than every 30 s loads ClickHouse for no benefit."
)

# --- languages, number format, time -------------------------------------------------
# Superset 6.1 ships no Vietnamese catalogue: deploy/superset/translations/vi/LC_MESSAGES/messages.po
# is ours (hand-translated), built into Superset's translations/vi/ as messages.mo (backend) and
# messages.json (the front end's language pack) by deploy/superset/install.sh.
LANGUAGES = {
    "vi": {"flag": "vn", "name": "Tiếng Việt"},
    "en": {"flag": "us", "name": "English"},
}
# The login page and anyone not signed in: Vietnamese (the province's readers).
BABEL_DEFAULT_LOCALE = os.environ.get("SUPERSET_DEFAULT_LOCALE", "vi")
# Signed-in users without a leader role (administrators, analysts): Superset's editing
# screens are mostly untranslated, so they start in English; either language is one click away.
STAFF_DEFAULT_LOCALE = os.environ.get("SUPERSET_STAFF_LOCALE", "en")
# The roles deploy/superset/manage.py creates for the boards' readers start in Vietnamese.
LEADER_ROLES = {"province_leader"}
LEADER_ROLE_PREFIXES = ("unit_leader_",)
_CHOICE = "pulse_locale_choice"  # session key: the language a user picked in the menu


def _role_locale() -> str:
    from flask_login import current_user
    if not getattr(current_user, "is_authenticated", False):
        return BABEL_DEFAULT_LOCALE
    names = {r.name for r in getattr(current_user, "roles", [])}
    if names & LEADER_ROLES or any(n.startswith(LEADER_ROLE_PREFIXES) for n in names):
        return "vi"
    return STAFF_DEFAULT_LOCALE


def _select_locale() -> str:
    """Flask-Babel's locale selector, replacing FAB's (which pins the first default in the
    session, so a role could never choose): an explicit pick from the language menu wins,
    then the user's roles. ``session["locale"]`` is kept in step because the navbar's
    language picker reads it."""
    from flask import has_request_context, request, session
    if not has_request_context():
        return BABEL_DEFAULT_LOCALE
    asked = request.args.get("_l_")  # FAB's per-request override for API calls
    if asked:
        return asked if asked in LANGUAGES else BABEL_DEFAULT_LOCALE
    chosen = session.get(_CHOICE)
    loc = chosen if chosen in LANGUAGES else _role_locale()
    if session.get("locale") != loc:  # write only on change: no Set-Cookie on every request
        session["locale"] = loc
    return loc


def _remember_language_choice() -> None:
    """Before /lang/<code> (the navbar's language picker) runs: remember that it was a choice."""
    from flask import request, session
    parts = request.path.strip("/").split("/")
    if len(parts) == 2 and parts[0] == "lang" and parts[1] in LANGUAGES:
        session[_CHOICE] = parts[1]


def FLASK_APP_MUTATOR(app) -> None:  # noqa: N802 (Superset's config name)
    app.extensions["babel"].locale_selector = _select_locale
    app.before_request(_remember_language_choice)


# Vietnamese number format: 1.234.567,8 ; 92,4%
D3_FORMAT = {
    "decimal": ",",
    "thousands": ".",
    "grouping": [3],
    "currency": ["", " ₫"],
}
# Vietnamese dates: dd/mm/yyyy, 24-hour clock (the charts' own formats say the same).
D3_TIME_FORMAT = {
    "dateTime": "%H:%M:%S %d/%m/%Y",
    "date": "%d/%m/%Y",
    "time": "%H:%M:%S",
    "periods": ["SA", "CH"],
    "days": ["Chủ nhật", "Thứ hai", "Thứ ba", "Thứ tư", "Thứ năm", "Thứ sáu", "Thứ bảy"],
    "shortDays": ["CN", "T2", "T3", "T4", "T5", "T6", "T7"],
    "months": ["Tháng 1", "Tháng 2", "Tháng 3", "Tháng 4", "Tháng 5", "Tháng 6", "Tháng 7", "Tháng 8",
               "Tháng 9", "Tháng 10", "Tháng 11", "Tháng 12"],
    "shortMonths": ["Th1", "Th2", "Th3", "Th4", "Th5", "Th6", "Th7", "Th8", "Th9", "Th10", "Th11", "Th12"],
}
CURRENCIES = ["VND"]
DEFAULT_TIME_FILTER = "Last week"

# --- security odds and ends ------------------------------------------------------------
WTF_CSRF_ENABLED = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
PERMANENT_SESSION_LIFETIME = timedelta(hours=12)
FAB_ADD_SECURITY_API = True
PUBLIC_ROLE_LIKE = None
SHOW_STACKTRACE = False
