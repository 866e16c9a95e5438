"""HTTP routes of the platform's users, for platform admins (their need is in api/permissions.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from wopr_platform.accounts.schemas import EMAIL_PATTERN, PlatformAdminIn, UserList, UserSummary
from wopr_platform.api.deps import Users, checked_id

router = APIRouter(tags=["accounts"])


@router.get("/users", response_model=UserList)
async def list_users(
    users: Users,
    after: Annotated[str | None, Query(max_length=254, pattern=EMAIL_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> UserList:
    """Every user of the platform, in email order, a page at a time."""
    return await users.users(after=after.lower() if after else None, limit=limit)


@router.patch("/users/{user_id}", response_model=UserSummary)
async def change_user(
    user_id: Annotated[str, Path(description="the user's id")], body: PlatformAdminIn, users: Users
) -> UserSummary:
    """Grant or withdraw platform admin (the last one cannot be withdrawn)."""
    return await users.set_platform_admin(checked_id(user_id, "user"), body.platform_admin)
