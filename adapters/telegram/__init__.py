"""Telegram: receive updates (polling or webhook), translate, render, send. See docs/telegram.md."""

from adapters.telegram.adapter import TelegramAdapter

__all__ = ["TelegramAdapter"]
