"""`core.media.plan`: what becomes of attachments, from their metadata alone."""

from __future__ import annotations

import pytest

from core.i18n import Notice
from core.inbound import Attachment
from core.media import texts
from core.media.plan import Abilities, MediaPlan, plan, readable_size
from core.media.prepare import audio_file, image_type
from core.models import MessageType

ALL = Abilities(transcription=True, vision=True, downloads=True, max_bytes=1000)
NONE = Abilities(transcription=False, vision=False, downloads=True, max_bytes=1000)
NO_FILES = Abilities(transcription=True, vision=True, downloads=False, max_bytes=1000)
VOICE = Attachment("voice", mime_type="audio/ogg", size=500, ref="f1")
PHOTO = Attachment("photo", mime_type="image/jpeg", size=500, ref="f2")
PDF = Attachment("document", "a.pdf", "application/pdf", 5, "d")
HUGE = Attachment("voice", size=1001, ref="f")


def test_voice_and_photos_are_planned_when_they_can_be_read() -> None:
    assert plan([VOICE], "", ALL) == MediaPlan(MessageType.VOICE, VOICE)
    assert plan([Attachment("sticker"), PHOTO], "look", ALL) == MediaPlan(MessageType.PHOTO, PHOTO)
    video_note = Attachment("video_note", size=10, ref="f3")
    assert plan([video_note], "", ALL) == MediaPlan(MessageType.VIDEO_NOTE, video_note)


@pytest.mark.parametrize(
    ("attachments", "text", "abilities", "expected"),
    [
        ([VOICE], "", NONE, Notice.gettext(texts.NO_TRANSCRIPTION)),
        ([VOICE], "a caption", NONE, None),  # the caption is answered
        ([PHOTO], "", NONE, Notice.gettext(texts.NO_VISION)),
        ([Attachment("file", "a.exe")], "", NO_FILES, Notice.gettext(texts.UNSUPPORTED_KIND)),
        ([Attachment("sticker")], "", ALL, Notice.gettext(texts.UNSUPPORTED_KIND)),
        ([Attachment("sticker")], "hi", ALL, None),
        ([HUGE], "", ALL, Notice.gettext(texts.TOO_LARGE, size="1 KB", limit="1 KB")),
        ([], "just text", ALL, None),
    ],
)  # fmt: skip
def test_what_cannot_be_read_is_refused_or_left_to_the_text(
    attachments: list[Attachment], text: str, abilities: Abilities, expected: Notice | None
) -> None:
    assert plan(attachments, text, abilities) == expected


def test_a_file_is_planned_as_a_document_whatever_its_kind() -> None:
    """Whether it is a kind kept is `Documents.refuse_before_download`'s to say."""
    exe = Attachment("file", "a.exe", ref="u")
    assert plan([PDF], "", ALL) == MediaPlan(MessageType.DOCUMENT, PDF)
    assert plan([exe], "what is it?", ALL) == MediaPlan(MessageType.DOCUMENT, exe)
    assert plan([Attachment("sticker"), PDF, VOICE], "", ALL) == MediaPlan(MessageType.VOICE, VOICE)
    assert MediaPlan(MessageType.DOCUMENT, PDF).content("") == "[Document]"


def test_without_vision_a_captioned_photo_is_its_caption_with_a_note() -> None:
    planned = plan([PHOTO], "my cat", NONE)
    assert isinstance(planned, MediaPlan)
    assert (planned.note, planned.caption_only) == (Notice.gettext(texts.CAPTION_ONLY), True)
    assert planned.content("my cat") == "my cat"
    assert planned.stored("my cat") == (
        {"kind": "photo", "mime_type": "image/jpeg", "size": 500, "ref": "f2", "caption": "my cat"},
    )
    assert MediaPlan(MessageType.VOICE, VOICE).content("") == "[Voice message]"


def test_sizes_and_file_names_for_people_and_endpoints() -> None:
    assert (readable_size(800), readable_size(30 * 1024 * 1024)) == ("1 KB", "30.0 MB")
    assert audio_file({"kind": "voice", "mime_type": "audio/ogg"}) == ("voice.ogg", "audio/ogg")
    assert audio_file({"kind": "video_note"}) == ("video_note.mp4", "video/mp4")
    assert audio_file({"kind": "audio", "mime_type": "audio/x-odd", "name": "a.AIFF"}) == (
        "audio.aiff",
        "audio/x-odd",
    )
    assert image_type(b"\x89PNG\r\n\x1a\nrest") == "image/png"
    assert image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert image_type(b"%PDF-1.7") is None
