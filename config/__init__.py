"""Settings and the default persona. Imports nothing else of onethread."""

from config.errors import SettingsError
from config.settings import AdminId, EmbeddingProvider, Settings, TelegramMode, load_settings

__all__ = [
    "AdminId",
    "EmbeddingProvider",
    "Settings",
    "SettingsError",
    "TelegramMode",
    "load_settings",
]
