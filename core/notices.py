"""What the bot says on its own, outside the model's replies: refusals, failures,
and what happens to a message while things go wrong. Marked for the catalogs
(core/i18n) and translated where they are said."""

from core.i18n import N_

BANNED = N_("You have been banned from using this bot.")
TOO_LONG = N_(
    "That message is too long ({length} characters; the limit is {limit}). "
    "Please shorten it or send it in parts. It was not saved."
)
RATE_LIMITED = N_(
    "You're writing faster than I can keep up. Please wait {seconds} s and try again."
)
LLM_FAILED = N_(
    "Sorry, I couldn't reach my language model just now. Your message is saved: "
    "send /retry to try again, or just keep writing."
)
LLM_BUSY = N_(
    "Sorry, my language model is overloaded right now. Your message is saved: "
    "send /retry in a minute, or just keep writing."
)
TOO_SLOW = N_(
    "Sorry, my answer took too long and I gave up on it. Your message is saved: "
    "send /retry to try again, or just keep writing."
)
INTERRUPTED = N_(
    "Sorry, I was restarting and could not finish my answer. Your message is saved: "
    "send /retry to get it."
)
LOST_WHILE_DOWN = N_(
    "Sorry, I was down and could not answer your message from {when} in time. "
    "It is saved: send /retry to get an answer."
)
INTERNAL_ERROR = N_("Sorry, something went wrong on my side. Please try again in a moment.")
STORAGE_DOWN = N_(
    "I can't reach my memory right now. I'll answer this message as soon as I'm back; "
    "no need to send it again."
)
STORAGE_BUSY = N_(
    "I'm very busy right now. I'll answer this message as soon as I can; no need to send it again."
)
STILL_WORKING = N_("I'm still working on that message.")
ALREADY_ANSWERED = N_("That message has been answered in the meantime.")
UNKNOWN_COMMAND = N_("I don't know the command /{name}. Send /help to see what I can do.")
