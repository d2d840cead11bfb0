"""How large a recording may be to be kept (MEDIA_KEEP_AUDIO, docs/media.md).

A kept recording goes into the person's `/export`, base64 inside its message, and the
export never sends a file larger than EXPORT_MAX_BYTES, nor splits one message across
files: a recording whose message would not fit one export file is transcribed as
always but not kept, so that keeping audio can never make an export impossible.
"""

from __future__ import annotations

from config.settings import Settings

# The JSON of a message beside its recording: the text twice (the content and the
# attachment's transcript), each character at most 6 bytes escaped ("\u001f"), plus the
# other fields, the part's header and indentation.
_ESCAPED_CHAR_BYTES = 6
_OTHER_FIELDS_BYTES = 16 * 1024


def kept_audio_max_bytes(settings: Settings) -> int:
    """The largest recording kept: at most MEDIA_MAX_BYTES, and small enough that its
    message, with the recording base64-encoded (4 bytes for 3), fits one export file."""
    text = 2 * settings.limits.max_message_chars * _ESCAPED_CHAR_BYTES
    room = settings.export_max_bytes - text - _OTHER_FIELDS_BYTES
    return max(0, min(settings.media_max_bytes, room * 3 // 4))
