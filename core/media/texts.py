"""What the bot says about voice notes, photos and files (English; kept together for the
message catalogs)."""

NO_TRANSCRIPTION = (
    "I can't listen to voice messages here: no speech-to-text service is configured. "
    "Please write it out in a message."
)
NO_VISION = (
    "I can't see images with the language model I use here. "
    "Please describe the picture in words, or send it with a caption."
)
CAPTION_ONLY = "I can't see images with the language model I use here, so I only read your caption."
TOO_LARGE = (
    "That file is too large for me ({size}; the limit is {limit}). "
    "Please send a shorter recording or a smaller picture."
)
DOCUMENTS_LATER = (
    "I can't read files yet. Please paste the part you want me to read into a message."
)
UNSUPPORTED_KIND = (
    "I can read text, voice messages and photos, but not this kind of message. "
    "Please write it out in a message."
)
DOWNLOAD_FAILED = (
    "Sorry, I couldn't download your {what}. It is saved: send /retry to try again, "
    "or send it once more."
)
NOTHING_HEARD = (
    "I couldn't make out any words in your voice message. "
    "Could you record it again, or write it out?"
)
HEARD = "I'm not sure I heard that right. I understood: “{text}”"
TRANSCRIPTION_FAILED = (
    "Sorry, I couldn't transcribe your voice message just now. It is saved: "
    "send /retry to try again, or just keep writing."
)
CORRUPT_AUDIO = (
    "I couldn't read that recording: the file seems damaged or in a format I don't know. "
    "Could you record it again?"
)
VISION_FAILED = (
    "Sorry, I couldn't look at your photo just now. It is saved: "
    "send /retry to try again, or just keep writing."
)
CORRUPT_IMAGE = (
    "I couldn't open that picture: the file seems damaged or in a format I don't know. "
    "Could you send it again, as a photo?"
)
MEDIA_TOO_SLOW = (
    "Sorry, your {what} took too long to process and I gave up. It is saved: "
    "send /retry to try again."
)

VOICE_MESSAGE = "voice message"
PHOTO = "photo"
TRANSCRIPT_TOO_LONG = (
    "That recording is too long for me ({length} characters once written out; the limit "
    "is {limit}). Please send it in shorter parts."
)
