#!/usr/bin/env bash
# Superset's own virtual environment and the browser used by the board checks.
#
#   deploy/superset/install.sh            # venv (if missing) + vi language pack + chromium (if missing)
#   SUPERSET_VENV=/opt/superset-venv deploy/superset/install.sh
#
# Superset pins SQLAlchemy<2, pandas<2.2 and numpy 1.26, which would hold the pipeline
# back, so it lives in its own venv built from the full freeze in requirements.lock
# (apache-superset 6.1.0 + clickhouse-connect 1.12 + rich, flask-caching<2.5, cachetools;
# see /work/shared/STACK-NOTES.md). Idempotent: venv and chromium are kept when present; the
# Vietnamese language pack is rebuilt each time.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${SUPERSET_VENV:-$REPO/.venv-superset}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [ -x "$VENV/bin/superset" ] && "$VENV/bin/python" -c "import superset, clickhouse_connect" >/dev/null 2>&1; then
    echo "superset venv: present ($VENV)"
else
    echo "superset venv: creating $VENV from requirements.lock"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r "$HERE/requirements.lock"
    "$VENV/bin/python" -c "import superset, clickhouse_connect; print('superset', superset.__version__ if hasattr(superset, '__version__') else '?')"
fi

# Vietnamese language pack (translations/vi/.../messages.po, ours) -> messages.mo + messages.json
# inside the installed Superset, where its backend (Flask-Babel) and /superset/language_pack/vi/
# read them. Build output, never committed; rebuilt on every run (the Makefile reruns this when
# the .po changes), also when the venv already existed.
SUPERSET_TR="$("$VENV/bin/python" -c 'import importlib.util, os; s = importlib.util.find_spec("superset"); print(os.path.join(s.submodule_search_locations[0], "translations"))')"
"$VENV/bin/python" "$HERE/i18n.py" build --out "$SUPERSET_TR/vi/LC_MESSAGES" --pot "$SUPERSET_TR/messages.pot"

if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
    echo "chromium: present ($(command -v chromium || echo /usr/bin/chromium))"
elif [ "${SKIP_CHROMIUM:-0}" = "1" ]; then
    echo "chromium: missing, skipped (SKIP_CHROMIUM=1); browser tests will be skipped"
else
    echo "chromium: installing the Debian package"
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-dejavu-core fonts-liberation
fi
