"""Telling every replica sharing the database that something changed, so each can drop what it cached.

On PostgreSQL a background loop LISTENs on a channel over a connection of its own, and `signal()` sends a NOTIFY
that every listening replica (this one too) receives within milliseconds. While that connection is down,
`reliable` is False: a replica then cannot know what the others changed, and must not trust its cache. SQLite is
the single-replica default (one process owns the database), so a signal only reaches this process and is always
reliable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

RETRY_SECONDS = 2.0
CHECK_SECONDS = 5.0  # how often a quiet listening connection is checked
APPLICATION_NAME = "wopr-broadcast"  # how the listening connection shows in pg_stat_activity
# notified by the database itself on every change to a bot's row (the trigger of migration 0020), so no code path
# and no replica can change a bot without the others hearing of it
FLEET_CHANNEL = "wopr_fleet_changes"


class Broadcast:
    """Background loop `broadcast`: one channel, signalled by any replica, heard by all."""

    name = "broadcast"

    def __init__(
        self, database_url: str, channel: str, *, retry: float = RETRY_SECONDS, own: str | None = None
    ) -> None:
        self._url = database_url
        self._own = own  # the payload of notifications this replica caused itself (not delivered: already known)
        self._channel = channel
        self._retry = retry
        self._single = make_url(database_url).get_backend_name() != "postgresql"
        self._listeners: list[Callable[[], None]] = []
        self._connection: Any = None  # the driver's connection that listens (PostgreSQL)
        self._listening = self._single
        self._lock = asyncio.Lock()  # one statement at a time on the listening connection

    @property
    def reliable(self) -> bool:
        """Whether a change made by any replica reaches this one now."""
        if self._single:
            return True
        connection = self._connection
        return self._listening and connection is not None and not connection.is_closed()

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call `callback` on every signal (from any replica), and whenever signals may have been missed."""
        self._listeners.append(callback)

    def _deliver(self, *notification: object) -> None:
        if self._own is not None and len(notification) == 4 and notification[3] == self._own:
            return  # (connection, pid, channel, payload): a change this replica made and counted at its commit
        for callback in self._listeners:
            callback()

    async def signal(self) -> None:
        """Tell every replica (after the change is committed)."""
        self._deliver()
        connection = self._connection
        if connection is not None and not connection.is_closed():
            try:
                async with self._lock:
                    await connection.execute("SELECT pg_notify($1, '')", self._channel)
            except Exception as err:  # the listening loop notices the lost connection and reconnects
                log.warning("could not signal the other replicas", extra={"reason": type(err).__name__})

    async def run(self, stop: asyncio.Event) -> None:
        if self._single:
            await stop.wait()
            return
        engine = create_async_engine(
            self._url, poolclass=NullPool, connect_args={"server_settings": {"application_name": APPLICATION_NAME}}
        )
        try:
            while not stop.is_set():
                try:
                    async with engine.connect() as connection:
                        raw: Any = (await connection.get_raw_connection()).driver_connection
                        await raw.add_listener(self._channel, self._deliver)
                        self._connection = raw
                        self._listening = True
                        self._deliver()  # what changed while no one listened is unknown: drop it all
                        while not stop.is_set() and not raw.is_closed():
                            await self._pause(stop, CHECK_SECONDS)
                            async with self._lock:  # outside any transaction: notifications arrive at once
                                await raw.execute("SELECT 1")
                except Exception as err:
                    log.warning("listening for other replicas failed; retrying", extra={"reason": type(err).__name__})
                finally:
                    self._listening = False
                    self._connection = None
                    self._deliver()
                await self._pause(stop, self._retry)
        finally:
            await engine.dispose()

    @staticmethod
    async def _pause(stop: asyncio.Event, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await stop.wait()
        except TimeoutError:
            pass
