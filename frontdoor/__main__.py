"""python -m frontdoor --host 127.0.0.1 --port 8000 [--credentials PATH] [--workers N]"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn

from frontdoor.api import create_app
from frontdoor.credentials import CredentialStore, credentials_path
from pulse.config import Settings


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    ap = argparse.ArgumentParser(prog="python -m frontdoor", description="Kiosk ratings and dossier sync API")
    ap.add_argument("--host", default=settings.api_host)
    ap.add_argument("--port", type=int, default=settings.api_port)
    ap.add_argument("--credentials", type=Path, default=None,
                    help=f"credentials file (default {credentials_path(settings)})")
    ap.add_argument("--log-level", default="warning")
    args = ap.parse_args(argv)
    store = CredentialStore(args.credentials or credentials_path(settings))
    app = create_app(settings, store)
    # SIGHUP reloads the credentials (installed in the app's lifespan); the file is also
    # re-read within a second of any change.
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
