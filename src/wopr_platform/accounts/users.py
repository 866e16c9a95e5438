"""What a platform admin does with the platform's users: list them, and grant or withdraw platform admin."""

from __future__ import annotations

from sqlalchemy import func, select

from wopr_platform.accounts.schemas import UserList, UserSummary
from wopr_platform.core.errors import Conflict, NotFound
from wopr_platform.db import models
from wopr_platform.db.broadcast import Broadcast
from wopr_platform.db.unit import Database


def _summary(user: models.User) -> UserSummary:
    return UserSummary(id=user.id, email=user.email, platform_admin=user.platform_admin, created_at=user.created_at)


class UserAdmin:
    """The platform's users as a platform admin sees them."""

    def __init__(self, *, db: Database, broadcast: Broadcast | None = None) -> None:
        self._db = db
        self._broadcast = broadcast

    async def users(self, *, after: str | None, limit: int) -> UserList:
        """Users in email order, a page at a time (`after`: the last email of the previous page)."""
        async with self._db.read() as session:
            statement = select(models.User).order_by(models.User.email).limit(limit)
            if after is not None:
                statement = statement.where(models.User.email > after)
            rows = (await session.scalars(statement)).all()
        return UserList(
            users=[_summary(user) for user in rows],
            next_after=rows[-1].email if len(rows) == limit else None,
        )

    async def set_platform_admin(self, user_id: str, admin: bool) -> UserSummary:
        """Grant or withdraw platform admin; the last platform admin cannot be withdrawn."""
        async with self._db.unit() as session:
            user = await session.get(models.User, user_id, with_for_update=True)
            if user is None:
                raise NotFound("user not found", details={"code": "not_found"})
            if user.platform_admin and not admin:
                others = await session.scalar(
                    select(func.count())
                    .select_from(models.User)
                    .where(models.User.platform_admin.is_(True), models.User.id != user_id)
                )
                if not others:
                    raise Conflict("the platform needs at least one admin", details={"code": "last_platform_admin"})
            user.platform_admin = admin
            answer = _summary(user)
        if self._broadcast is not None:
            await self._broadcast.signal()  # cached sessions carry the flag: every replica forgets them
        return answer
