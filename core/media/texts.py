"""What the bot says about voice notes, photos and files, marked for the catalogs
(core/i18n) and said in the person's language (`core.i18n.Notice`)."""

from core.i18n import N_

NO_TRANSCRIPTION = N_(
    "I can't listen to voice messages here: no speech-to-text service is configured. "
    "Please write it out in a message."
)
NO_VISION = N_(
    "I can't see images with the language model I use here. "
    "Please describe the picture in words, or send it with a caption."
)
CAPTION_ONLY = N_(
    "I can't see images with the language model I use here, so I only read your caption."
)
TOO_LARGE = N_(
    "That file is too large for me ({size}; the limit is {limit}). "
    "Please send a shorter recording or a smaller picture."
)
TOO_LARGE_UNSIZED = N_(
    "That file is too large for me (the limit is {limit}). "
    "Please send a shorter recording or a smaller picture."
)
UNSUPPORTED_KIND = N_(
    "I can read text, voice messages, photos and documents, but not this kind of message. "
    "Please write it out in a message."
)
DOWNLOAD_FAILED_VOICE = N_(
    "Sorry, I couldn't download your voice message. It is saved: send /retry to try "
    "again, or send it once more."
)
DOWNLOAD_FAILED_PHOTO = N_(
    "Sorry, I couldn't download your photo. It is saved: send /retry to try again, "
    "or send it once more."
)
DOWNLOAD_FAILED_DOCUMENT = N_(
    "Sorry, I couldn't download your document. It is saved: send /retry to try again, "
    "or send it once more."
)
NOTHING_HEARD = N_(
    "I couldn't make out any words in your voice message. "
    "Could you record it again, or write it out?"
)
HEARD = N_("I'm not sure I heard that right. I understood: “{text}”")
TRANSCRIPTION_FAILED = N_(
    "Sorry, I couldn't transcribe your voice message just now. It is saved: "
    "send /retry to try again, or just keep writing."
)
CORRUPT_AUDIO = N_(
    "I couldn't read that recording: the file seems damaged or in a format I don't know. "
    "Could you record it again?"
)
VISION_FAILED = N_(
    "Sorry, I couldn't look at your photo just now. It is saved: "
    "send /retry to try again, or just keep writing."
)
CORRUPT_IMAGE = N_(
    "I couldn't open that picture: the file seems damaged or in a format I don't know. "
    "Could you send it again, as a photo?"
)
TOO_SLOW_VOICE = N_(
    "Sorry, your voice message took too long to process and I gave up. It is saved: "
    "send /retry to try again."
)
TOO_SLOW_PHOTO = N_(
    "Sorry, your photo took too long to process and I gave up. It is saved: "
    "send /retry to try again."
)
TOO_SLOW_DOCUMENT = N_(
    "Sorry, your document took too long to read and I gave up. It is saved: "
    "send /retry to try again."
)
TRANSCRIPT_TOO_LONG = N_(
    "That recording is too long for me ({length} characters once written out; the limit "
    "is {limit}). Please send it in shorter parts."
)
