"""The `wopr-platform` command: serve, migrate, version."""

from __future__ import annotations

import argparse
import asyncio
import sys

from wopr_platform import __version__
from wopr_platform.core.logging import configure_logging, for_people
from wopr_platform.core.settings import Settings, SettingsError, load_settings


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as err:
        print(f"wopr-platform: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def _configure_logging(settings: Settings) -> None:
    console = for_people(settings.log_format, env=settings.env, terminal=sys.stderr.isatty())
    configure_logging(settings.log_level, console=console)


def _serve() -> int:
    from wopr_platform.app.asgi import create_app
    from wopr_platform.app.build import check_settings
    from wopr_platform.app.server import PlatformServer, server_config

    settings = _settings_or_exit()
    try:
        check_settings(settings)
    except SettingsError as err:
        print(f"wopr-platform: {err}", file=sys.stderr)
        return 2
    _configure_logging(settings)
    app = create_app(settings)
    config = server_config(app, settings)
    server = PlatformServer(config, before_shutdown=app.state.events.close)
    server.run()
    return 0 if server.started else 3  # the start-up failed (logged): e.g. a production check refused it


def _migrate() -> int:
    from wopr_platform.db.engine import create_engine
    from wopr_platform.db.migrate import upgrade

    settings = _settings_or_exit()
    _configure_logging(settings)

    async def run() -> None:
        engine = create_engine(settings.database_url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    print("database is at the newest schema")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = argparse.ArgumentParser(prog="wopr-platform", description="Control plane for WOPR bot fleets.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the API and the background loops")
    sub.add_parser("migrate", help="apply database migrations and exit")
    sub.add_parser("version", help="print the version")
    args = parser.parse_args(argv)
    if args.command == "version":
        print(__version__)
        return 0
    if args.command == "migrate":
        return _migrate()
    return _serve()
