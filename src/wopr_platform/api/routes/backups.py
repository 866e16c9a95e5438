"""HTTP routes of backups: parse, call one service method, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from wopr_platform.api.auth import Operator
from wopr_platform.api.deps import BackupId, BackupPolicyService, BackupsService, BotId, checked_id
from wopr_platform.api.params import Time, as_utc
from wopr_platform.backups.schemas import (
    BackupCreate,
    BackupList,
    BackupOut,
    BackupUsage,
    PolicyIn,
    PolicyOut,
    RestoreRequest,
)
from wopr_platform.fleet.schemas import BotProfile

router = APIRouter(tags=["backups"])

UPLOAD_PATH = "/backups/upload"
STREAMED_BODIES = frozenset({UPLOAD_PATH})  # bounded by the backups service, not by API_MAX_BODY
ARCHIVE_TYPE = "application/vnd.wopr.backup"


def _bot_query(bot_id: str | None) -> str | None:
    return None if bot_id is None else checked_id(bot_id, "bot")


@router.get("/backups", response_model=BackupList)
async def list_backups(
    principal: Operator,
    backups: BackupsService,
    bot_id: Annotated[str | None, Query(alias="botId", max_length=64)] = None,
    before: Annotated[Time, Query(description="ISO 8601; backups made before it (a page's `nextBefore`)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> BackupList:
    """The tenant's backups (of one bot with `botId`), newest first; `nextBefore` pages on."""
    return await backups.list(principal.tenant_id, bot_id=_bot_query(bot_id), before=as_utc(before), limit=limit)


@router.post("/backups", status_code=201, response_model=BackupOut)
async def create_backup(body: BackupCreate, principal: Operator, backups: BackupsService) -> BackupOut:
    """Back up a bot's data volume now (its container paused while its files are read; `pauseMs` says how long)."""
    return await backups.create(principal.tenant_id, checked_id(body.bot_id, "bot"))


@router.get("/backups/usage", response_model=BackupUsage)
async def backup_usage(principal: Operator, backups: BackupsService) -> BackupUsage:
    """What the tenant's backups take, and its quota."""
    return await backups.usage(principal.tenant_id)


@router.post(UPLOAD_PATH, status_code=201, response_model=BackupOut)
async def upload_backup(
    request: Request,
    principal: Operator,
    backups: BackupsService,
    bot_id: Annotated[str, Query(alias="botId", max_length=64)],
) -> BackupOut:
    """Keep an archive downloaded before (from this platform) as a backup of one of the tenant's bots; the body is
    the archive itself. It is checked whole (seal, manifest, every entry) before it is listed."""
    return await backups.upload(principal.tenant_id, checked_id(bot_id, "bot"), request.stream())


@router.get("/backups/policy", response_model=PolicyOut)
async def tenant_policy(principal: Operator, policies: BackupPolicyService) -> PolicyOut:
    """The tenant's backup policy (schedule, retention, quota) and what applies with the platform's defaults."""
    return await policies.get(principal.tenant_id)


@router.put("/backups/policy", response_model=PolicyOut)
async def set_tenant_policy(body: PolicyIn, principal: Operator, policies: BackupPolicyService) -> PolicyOut:
    return await policies.set(principal.tenant_id, body)


@router.get("/backups/{backup_id}", response_model=BackupOut)
async def get_backup(backup_id: BackupId, principal: Operator, backups: BackupsService) -> BackupOut:
    return await backups.get(principal.tenant_id, backup_id)


@router.get(
    "/backups/{backup_id}/archive",
    response_class=StreamingResponse,
    responses={200: {"content": {ARCHIVE_TYPE: {}}, "description": "the sealed archive, streamed"}},
)
async def download_backup(backup_id: BackupId, principal: Operator, backups: BackupsService) -> StreamingResponse:
    """The backup's sealed archive, streamed as stored (only this platform's key opens it)."""
    backup, body = await backups.download(principal.tenant_id, backup_id)
    return StreamingResponse(
        body,
        media_type=ARCHIVE_TYPE,
        headers={
            "Content-Length": str(backup.archive_bytes),
            "Content-Disposition": f'attachment; filename="{backup.bot_name}-{backup.id}.wopr-backup"',
        },
    )


@router.post("/backups/{backup_id}/restore", response_model=BotProfile)
async def restore_backup(
    backup_id: BackupId, principal: Operator, backups: BackupsService, body: RestoreRequest | None = None
) -> BotProfile:
    """Restore the backup into its bot (or, with `botId`, into another bot of the tenant): the data goes into a
    fresh volume, and the bot moves onto it only once it is whole and checked."""
    into = checked_id(body.bot_id, "bot") if body is not None and body.bot_id else None
    return await backups.restore(principal.tenant_id, backup_id, into_bot_id=into)


@router.delete("/backups/{backup_id}", status_code=204, response_class=Response)
async def delete_backup(backup_id: BackupId, principal: Operator, backups: BackupsService) -> Response:
    await backups.delete(principal.tenant_id, backup_id)
    return Response(status_code=204)


@router.get("/fleet/bots/{bot_id}/backup-policy", response_model=PolicyOut)
async def bot_policy(bot_id: BotId, principal: Operator, policies: BackupPolicyService) -> PolicyOut:
    """The bot's own backup policy, and what applies with its tenant's and the platform's."""
    return await policies.get(principal.tenant_id, bot_id)


@router.put("/fleet/bots/{bot_id}/backup-policy", response_model=PolicyOut)
async def set_bot_policy(
    bot_id: BotId, body: PolicyIn, principal: Operator, policies: BackupPolicyService
) -> PolicyOut:
    return await policies.set(principal.tenant_id, body, bot_id)
