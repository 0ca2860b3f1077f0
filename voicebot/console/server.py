"""The console's server inside `voicebot run`: bound at start (a port in use stops the start with a
clear error), stopped at the end of the drain. Its database engine is its own (a small pool)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from voicebot.config import Settings, host_port
from voicebot.console import app
from voicebot.console.auth import LoginLimiter
from voicebot.db.engine import DatabaseParams, create_engine, sessionmaker
from voicebot.dialplan.versions import VersionStore
from voicebot.errors import ConfigError
from voicebot.logs import get_logger
from voicebot.supervisor.health import Snapshot

log = get_logger(__name__)


class ConsoleServer:
    def __init__(
        self,
        settings: Settings,
        database_url: str,
        shared_url: str,
        run_dir: Path,
        health: Callable[[], Snapshot],
    ) -> None:
        cs = settings.console
        self.listen = cs.listen
        engine = create_engine(DatabaseParams(url=database_url, pool_size=2))
        self.ctx = app.Context(
            settings=settings,
            run_dir=run_dir,
            health=health,
            engine=engine,
            db=sessionmaker(engine),
            versions=VersionStore(settings.dialplan_store.resolve()),
            shared_url=shared_url,
            limiter=LoginLimiter(cs.login_failures, cs.login_window_s),
            jinja=app.jinja_env(),
            https=cs.tls_cert is not None or cs.behind_https_proxy,
        )
        self.tls: ssl.SSLContext | None = None
        if cs.tls_cert is not None and cs.tls_key is not None:
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                self.tls.load_cert_chain(cs.tls_cert, cs.tls_key)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"console.tls_cert/tls_key cannot be used: {exc}") from None
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.listen}/"

    async def start(self) -> None:
        host, port = host_port(self.listen)
        self.runner = web.AppRunner(app.build(self.ctx), access_log=None, handle_signals=False)
        await self.runner.setup()
        try:
            await web.TCPSite(self.runner, host, port, ssl_context=self.tls).start()
        except OSError as exc:
            await self.stop()
            raise ConfigError(
                f"the admin console cannot listen on {self.listen} ({exc.strerror}): set console.listen "
                'to a free address, or "" to turn it off'
            ) from None
        log.info("console.listening", url=self.url)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        await self.ctx.engine.dispose()
