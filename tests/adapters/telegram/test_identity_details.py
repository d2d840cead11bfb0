"""A person's username and display name follow their renames on Telegram, through real
python-telegram-bot polling: `/ban @name` finds whoever has that name now."""

from __future__ import annotations

from dataclasses import replace

from core.engine import Engine
from core.services import Services
from fakes.telegram_api import FakeTelegram, wait_until
from tests.adapters.telegram.helpers import make_adapter, running
from tests.conftest import make_settings
from tests.core.engine_helpers import PERSONA

ADMIN = 900
ANN = 4242
OTHER = 4343


async def test_a_rename_reaches_the_identity_and_ban_picks_the_renamed_person(
    services: Services, tg: FakeTelegram
) -> None:
    services = replace(services, settings=make_settings(admin_ids=f"telegram:{ADMIN}"))
    async with running(make_adapter(Engine(services, persona=PERSONA), tg)):

        async def say(user_id: int, text: str, **sender: str | None) -> list[str]:
            seen = len(tg.texts(user_id))
            update = tg.push_message(text, user_id=user_id, **sender)
            await wait_until(lambda: tg.confirmed_below > update)
            await wait_until(lambda: len(tg.texts(user_id)) > seen)
            return tg.texts(user_id)[seen:]

        await say(ANN, "hello", username="ann_old", first_name="Ann")
        await say(ADMIN, "hello", username="boss", first_name="Boss")
        ann = await services.users.find(f"telegram:{ANN}")
        assert ann is not None
        assert (await say(ADMIN, "/user @ann_old"))[0].startswith(f"User {ann.id}: Ann,")

        await say(ANN, "new name", username="ann_new", first_name="Annika")
        renamed = await services.users.get(ann.id)
        assert renamed is not None and renamed.display_name == "Annika"
        assert [i.username for i in await services.users.identities(ann.id)] == ["ann_new"]
        assert await say(ADMIN, "/ban @ann_old") == ["No user @ann_old."]

        # Someone else takes the freed name: it is theirs now.
        await say(OTHER, "hi", username="ann_old", first_name="Olga")
        other = await services.users.find(f"telegram:{OTHER}")
        assert other is not None
        assert (await say(ADMIN, "/user @ANN_OLD"))[0].startswith(f"User {other.id}: Olga,")
        assert await say(ADMIN, "/ban @ann_new") == [f"User {ann.id} is banned."]

        # Dropping the username on Telegram drops it here too.
        await say(OTHER, "bye", username=None, first_name="Olga")
        assert await say(ADMIN, "/user @ann_old") == ["No user @ann_old."]
