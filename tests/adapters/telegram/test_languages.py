"""The bot's own texts and menus in the person's language, through real
python-telegram-bot against the fake Bot API."""

from __future__ import annotations

from telegram import Bot

from core.i18n import DEFAULT_LANGUAGE, languages, texts
from core.services import Services
from fakes.telegram_api import FakeTelegram, wait_until
from tests.adapters.telegram.helpers import make_adapter, running
from tests.core.engine_helpers import engine_with

HANS = 3101


async def test_a_german_user_gets_german_help_and_notices(
    services: Services, tg: FakeTelegram
) -> None:
    async with running(make_adapter(engine_with(services, limits={"max_message_chars": 20}), tg)):
        tg.push_message("/help", user_id=HANS, language_code="de")
        await wait_until(lambda: len(tg.texts(HANS)) == 1)
        tg.push_message("x" * 21, user_id=HANS, language_code="de")
        await wait_until(lambda: len(tg.texts(HANS)) == 2)
    help_text, too_long = tg.texts(HANS)
    lines = help_text.splitlines()
    assert lines[0] == "Schreib mir einfach, um zu reden. Befehle:"
    assert "/memory [on|off] - Sehen, was ich mir über dich merke" in help_text
    assert "/language [code|auto] - Die Sprache meiner Nachrichten und Menüs" in help_text
    assert too_long.startswith("Diese Nachricht ist zu lang (21 Zeichen; die Grenze liegt bei 20)")


async def test_language_switches_and_returns_to_the_apps(
    services: Services, tg: FakeTelegram
) -> None:
    def last() -> str:
        return tg.texts(HANS)[-1]

    async def say(text: str) -> str:
        before = len(tg.texts(HANS))
        tg.push_message(text, user_id=HANS, language_code="de")
        await wait_until(lambda: len(tg.texts(HANS)) > before)
        return last()

    async with running(make_adapter(engine_with(services), tg)):
        assert (await say("/language")).startswith(
            "Ich schreibe dir auf Deutsch, der Sprache deiner App."
        )
        assert await say("/language es") == (
            "A partir de ahora te escribo en Español. Envía /language auto para volver a "
            "seguir el idioma de tu app."
        )
        assert (await say("/help")).startswith("Escríbeme para hablar. Comandos:")
        shown = await say("/language")
        assert shown.startswith("Te escribo en Español, como elegiste.")
        assert "de (Deutsch)" in shown and "ru (Русский)" in shown and "en (English)" in shown
        assert await say("/language xx") == "Uso: /language [code|auto]"
        assert await say("/language auto") == "Ich folge wieder der Sprache deiner App: Deutsch."
        assert (await say("/help")).startswith("Schreib mir einfach")

    user = await services.users.find(f"telegram:{HANS}")
    assert user is not None and user.language is None and user.locale == "de"


async def test_a_chosen_language_is_kept_and_beats_the_apps(
    services: Services, tg: FakeTelegram
) -> None:
    async with running(make_adapter(engine_with(services), tg)):
        tg.push_message("/language pt-BR", user_id=HANS, language_code="de")
        await wait_until(lambda: len(tg.texts(HANS)) == 1)
        tg.push_message("/nonsense", user_id=HANS, language_code="en")
        await wait_until(lambda: len(tg.texts(HANS)) == 2)
    assert tg.texts(HANS)[1] == (
        "Não conheço o comando /nonsense. Envie /help para ver o que posso fazer."
    )
    user = await services.users.find(f"telegram:{HANS}")
    assert user is not None and user.language == "pt"


async def test_command_menus_are_registered_per_language(
    services: Services, tg: FakeTelegram
) -> None:
    async with running(make_adapter(engine_with(services), tg)):
        pass
    async with Bot(tg.token, base_url=tg.base_url) as bot:
        default = await bot.get_my_commands()
        german = await bot.get_my_commands(language_code="de")
        menus = {code: await bot.get_my_commands(language_code=code) for code in languages()}
    english = {c.command: c.description for c in default}
    assert english["memory"] == "See what I remember about you, or switch memory on/off"
    assert "ban" not in english
    assert {c.command: c.description for c in german}["memory"] == (
        "Sehen, was ich mir über dich merke, oder das Gedächtnis ein-/ausschalten"
    )
    assert menus.pop(DEFAULT_LANGUAGE) == ()  # English is the default menu
    for code, menu in menus.items():
        assert [c.command for c in menu] == [c.command for c in default], code
        t = texts(code)
        assert [c.description for c in menu] == [t.gettext(d) for d in english.values()], code
        assert all(c.description != english[c.command] for c in menu), code
