"""The bot's own texts and slash-command descriptions in the person's language, through
real discord.py and the fake Discord API."""

from __future__ import annotations

from adapters.discord import DiscordAdapter
from core.commands.registry import COMMANDS
from core.i18n import texts
from core.services import Services
from fakes.discord_gateway import DISCORD_LOCALES, FakeDiscord, user_payload
from tests.adapters.discord.conftest import deliver

CLAIRE = user_payload(6161, "claire")


async def _answer(fake: FakeDiscord, adapter: DiscordAdapter, name: str, **kwargs: object) -> str:
    interaction = fake.command_interaction(CLAIRE, name, **kwargs)  # type: ignore[arg-type]
    await deliver(fake, adapter, "INTERACTION_CREATE", interaction)
    [first, *_] = fake.interaction_messages[str(interaction["token"])]
    return str(first["content"])


async def test_an_interaction_in_french_gets_french(
    adapter: DiscordAdapter, fake_discord: FakeDiscord, services: Services
) -> None:
    help_text = await _answer(fake_discord, adapter, "help", locale="fr")
    assert help_text.startswith("Écris-moi simplement pour discuter. Commandes :")
    assert "/forget <number|all> - Oublier une chose (voir /memory) ou tout" in help_text
    # Kept: a plain DM carries no locale, and is answered in the last one told.
    user = await services.users.find(f"discord:{CLAIRE['id']}")
    assert user is not None and user.locale == "fr"


async def test_language_switches_on_discord(
    adapter: DiscordAdapter, fake_discord: FakeDiscord
) -> None:
    switched = await _answer(fake_discord, adapter, "language", args="es", locale="fr")
    assert switched.startswith("A partir de ahora te escribo en Español.")
    assert (await _answer(fake_discord, adapter, "retry", locale="fr")) == (
        "No hay nada que reintentar."
    )
    back = await _answer(fake_discord, adapter, "language", args="auto", locale="ru")
    assert back == "Я снова следую языку твоего приложения: Русский."


async def test_slash_command_descriptions_are_localised(
    adapter: DiscordAdapter, fake_discord: FakeDiscord
) -> None:
    memory = COMMANDS["memory"].description
    assert fake_discord.description_in("memory", "en-US") == memory
    assert fake_discord.description_in("memory", "de") == texts("de").gettext(memory)
    assert fake_discord.description_in("memory", "pt-BR") == texts("pt").gettext(memory)
    assert fake_discord.description_in("memory", "es-419") == texts("es").gettext(memory)
    assert fake_discord.description_in("memory", "ja") == memory  # no catalog: English
    for command in fake_discord.commands:
        assert not command.get("name_localizations")  # names are what people type
        localised = command.get("description_localizations") or {}
        assert set(localised) <= DISCORD_LOCALES
        if not COMMANDS[command["name"]].admin:
            assert {"de", "es-ES", "fr", "pt-BR", "ru", "uk"} <= set(localised), command["name"]
