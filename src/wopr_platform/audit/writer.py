"""The audit writer: a bounded queue of records and one background task that stores them in batches."""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from wopr_platform.audit.repository import AuditRepository
from wopr_platform.audit.schemas import AuditRecord
from wopr_platform.db.unit import Database

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000  # records waiting at most; past it a request waits for room (the log is never skipped)
BATCH_SIZE = 500  # records per insert
RETRY_INITIAL = 0.5  # seconds before retrying a batch the database refused; doubles up to RETRY_MAX
RETRY_MAX = 30.0
CLOSE_TIMEOUT = 10.0  # seconds the shutdown waits for the queue to be written
FLUSH_TIMEOUT = 5.0  # seconds a reader waits for the records queued before it


def _transient(err: SQLAlchemyError) -> bool:
    """A lost or refused connection (worth retrying), as opposed to a statement the database rejects."""
    if isinstance(err, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(err, DBAPIError) and err.connection_invalidated


class AuditWriter:
    """Takes records from requests without making them wait for the database; writes them in order, in batches.

    `put` only queues (it waits only when QUEUE_SIZE records are already waiting); the task writes whatever has
    queued since its last insert, so a burst becomes one statement. `flush` waits until everything queued so far is
    stored (GET /audit uses it, so a caller sees its own changes); `close` writes the rest and stops.
    """

    name = "audit-writer"

    def __init__(self, *, queue_size: int = QUEUE_SIZE, batch_size: int = BATCH_SIZE) -> None:
        self._queue: asyncio.Queue[AuditRecord | None] = asyncio.Queue(queue_size)
        self._batch_size = batch_size
        self._db: Database | None = None
        self._task: asyncio.Task[None] | None = None
        self._queued = 0
        self._done = 0  # records stored (or, for a record the database rejects, given up on)
        self._progress = asyncio.Event()

    async def put(self, record: AuditRecord) -> None:
        """Queue one record."""
        if self._task is None or self._task.done():
            log.warning("audit record after the writer stopped", extra={"action": record.action})
        await self._queue.put(record)
        self._queued += 1

    def start(self, db: Database) -> None:
        """Start the writing task on `sessions`."""
        self._db = db
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def flush(self) -> bool:
        """Wait until the records queued before this call are stored; False when that took over FLUSH_TIMEOUT."""
        target = self._queued
        deadline = time.monotonic() + FLUSH_TIMEOUT
        while self._done < target:
            if self._task is None or self._task.done():
                return False
            progress = self._progress
            try:
                await asyncio.wait_for(progress.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return False
        return True

    async def close(self) -> None:
        """Write what is queued, then stop (at shutdown, after the last request)."""
        task = self._task
        if task is None or task.done():
            return
        await self._queue.put(None)
        try:
            await asyncio.wait_for(asyncio.shield(task), CLOSE_TIMEOUT)
        except TimeoutError:
            log.error("audit records not written at shutdown", extra={"records": self._queued - self._done})
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        closing = False
        while not closing:
            first = await self._queue.get()
            batch: list[AuditRecord] = []
            if first is None:
                closing = True
            else:
                batch.append(first)
            # take what else is waiting; on close, everything
            while not self._queue.empty() and (closing or len(batch) < self._batch_size):
                item = self._queue.get_nowait()
                if item is None:
                    closing = True
                else:
                    batch.append(item)
            for start in range(0, len(batch), self._batch_size):
                await self._write(batch[start : start + self._batch_size])

    async def _write(self, batch: list[AuditRecord]) -> None:
        """Store `batch`; retried while the database is unreachable, one by one if it rejects the statement."""
        delay = RETRY_INITIAL
        while True:
            try:
                await self._insert(batch)
                break
            except SQLAlchemyError as err:
                if not _transient(err):
                    await self._write_each(batch)
                    break
                log.warning("audit batch not written; retrying", extra={"records": len(batch), "delay": delay})
            except Exception:  # the database driver's own errors (socket, timeout) are transient too
                log.warning("audit batch not written; retrying", exc_info=True, extra={"records": len(batch)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
        self._advance(len(batch))

    async def _write_each(self, batch: list[AuditRecord]) -> None:
        for record in batch:
            try:
                await self._insert([record])
            except SQLAlchemyError as err:
                log.error(
                    "audit record rejected by the database",
                    extra={"action": record.action, "requestId": record.request_id, "reason": type(err).__name__},
                )

    async def _insert(self, batch: list[AuditRecord]) -> None:
        assert self._db is not None
        async with self._db.unit() as session:
            await AuditRepository(session).add(batch)

    def _advance(self, count: int) -> None:
        self._done += count
        self._progress.set()
        self._progress = asyncio.Event()
