"""A person's username and display name follow their renames on Discord, through the
real discord.py client: `/ban @name` finds whoever has that name now."""

from __future__ import annotations

from core.services import Services
from fakes.discord_gateway import FakeDiscord, user_payload
from tests.adapters.discord.conftest import StartAdapter, deliver

ADMIN_ID = 9000
ANN_ID = 5252
OTHER_ID = 5353


async def test_a_rename_reaches_the_identity_and_ban_picks_the_renamed_person(
    start_adapter: StartAdapter, fake_discord: FakeDiscord, services: Services
) -> None:
    adapter = await start_adapter(admin_ids=f"discord:{ADMIN_ID}")
    admin = user_payload(ADMIN_ID, "boss")

    async def say(author: dict[str, object], text: str) -> list[str]:
        channel = fake_discord.dm_channel_id(int(str(author["id"])))
        seen = len(fake_discord.texts_in(channel))
        await deliver(
            fake_discord, adapter, "MESSAGE_CREATE", fake_discord.dm_message(author, text)
        )
        return fake_discord.texts_in(channel)[seen:]

    await say(user_payload(ANN_ID, "ann_old"), "hello")
    await say(admin, "hello")
    ann = await services.users.find(f"discord:{ANN_ID}")
    assert ann is not None
    assert (await say(admin, "/user @ann_old"))[0].startswith(f"User {ann.id}: Ann_Old,")
    renamed = {**user_payload(ANN_ID, "ann_new"), "global_name": "Ann Renamed"}
    await say(renamed, "I changed my name")
    ann = await services.users.get(ann.id)
    assert ann is not None and ann.display_name == "Ann Renamed"
    [identity] = await services.users.identities(ann.id)
    assert identity.username == "ann_new"

    assert await say(admin, "/ban @ann_old") == ["No user @ann_old."]
    # Someone else takes the freed name: it is theirs now.
    await say(user_payload(OTHER_ID, "ann_old"), "hi")
    other = await services.users.find(f"discord:{OTHER_ID}")
    assert other is not None
    assert (await say(admin, "/user @ann_old"))[0].startswith(f"User {other.id}: Ann_Old,")
    assert await say(admin, "/ban @ann_new") == [f"User {ann.id} is banned."]
