"""Builders shared by the broadcast tests: people the bot can reach privately."""

from __future__ import annotations

from core.models import Platform, Role, User
from core.services import Services


async def reachable(
    services: Services,
    platform_user_id: str,
    *,
    platform: Platform = Platform.TELEGRAM,
    admin: bool = False,
) -> User:
    """A user whose private chat is known: `<platform_user_id>-chat`."""
    user, _ = await services.users.get_or_create(
        platform, platform_user_id, private_chat_id=f"{platform_user_id}-chat"
    )
    if not admin:
        return user
    await services.users.set_role(user.id, Role.ADMIN)
    found = await services.users.get(user.id)
    assert found is not None
    return found


async def add_chat(services: Services, user: User, platform: Platform, chat_id: str) -> None:
    """A second, newer identity of `user` with a private chat."""
    async with services.db.connection() as conn:
        await conn.execute(
            "INSERT INTO identities (platform, platform_user_id, user_id, private_chat_id,"
            " created_at) VALUES ($1, $2, $3, $4, now() + interval '1 minute')",
            platform.value,
            f"{chat_id}-id",
            user.id,
            chat_id,
        )
