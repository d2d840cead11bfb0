"""Everything the bot says about documents, in one place, marked for the catalogs
(core/i18n): `Documents` answers with a `core.i18n.Notice`, said in the person's
language by whoever sends it; the commands say them with `ctx.texts`.

Placeholders: {filename}, {size}, {limit}, {pages}, {count}, {date}, {number},
{parts}, {listed}, {where}, {heading}, {page}; {n} in the texts with plural forms.
"""

from __future__ import annotations

from core.i18n import N_, Notice

# Documents.add: kept.
KEPT = N_(
    'I read "{filename}" ({parts}) and will remember it: ask me about it any time. '
    "/documents lists what I keep."
)
KEPT_IN_SHARED_CHAT = N_(
    'I read "{filename}" ({parts}) and will remember it, here and in our private chat '
    "(not in other groups). /documents in our private chat lists what I keep."
)
ALREADY_KEPT = N_('I have "{filename}" already (since {date}), so I kept nothing new.')
# {parts}: pages and passages (`parts`).
PARTS = N_("{pages}, {passages}")

# Documents.add: refused. Nothing is kept.
UNSUPPORTED = N_(
    "I can keep text (.txt), Markdown (.md) and PDF documents; "
    '"{filename}" is none of these, so I did not keep it.'
)
TOO_LARGE = N_("That file is {size}; I keep documents of up to {limit}, so I did not keep it.")
TOO_LARGE_UNSIZED = N_(
    "That file is larger than I can take; I keep documents of up to {limit}, so I did not keep it."
)
TOO_MANY_PAGES = N_(
    '"{filename}" has {pages} pages; I read documents of up to {limit} pages, so I did not keep it.'
)
TOO_LONG = N_(
    '"{filename}" is too long for me to keep: its text makes {count} passages and I keep '
    "at most {limit} per document."
)
CORRUPT = N_(
    'I couldn\'t read "{filename}": the file seems damaged, or is not the kind of file '
    "its name says. I did not keep it."
)
ENCRYPTED = N_(
    '"{filename}" is locked with a password, so I can\'t read it. Send me a copy '
    "without the password if you want me to keep it."
)
NOT_TEXT = N_(
    '"{filename}" doesn\'t hold text I can read (it looks like binary data), so I did not keep it.'
)
EMPTY = N_(
    'I found no text in "{filename}", so I kept nothing. (A scanned PDF holds '
    "pictures of pages, which I can't read.)"
)
MEMORY_OFF = N_(
    'Memory is off, so I did not keep "{filename}". Send /memory on, then the document '
    "again, if you want me to remember it."
)
UNAVAILABLE = N_(
    'I couldn\'t take "{filename}" into my memory just now. Please send it again in a little while.'
)

# /documents
NO_DOCUMENTS = N_(
    "You haven't sent me any documents. Send me a text, Markdown or PDF file and I'll "
    "remember what it says."
)
LIST_HEADER = N_("Your documents ({count} of at most {limit}):")
LIST_LINE = N_("{number}. {filename}: {size}, {parts}, sent {date}{where}")
LIST_IN_GROUP = N_(" in a group")
LIST_FOOTER = N_("Send /forget document <number> to make me forget one.")

# /why
WHY_HEADER = N_("From your documents:")
WHY_SOURCE = N_("- {filename}{where}")
WHY_PAGE = N_(", page {page}")
WHY_SECTION = N_(', section "{heading}"')
WHY_SECTION_TOKENS = N_("your documents")

# /forget document N, /forget all confirm
FORGOT_DOCUMENT = N_('Forgotten: the document "{filename}" and all I read in it.')
NO_SUCH_DOCUMENT = N_("There is no document {number}; /documents lists {listed}.")
NO_DOCUMENT_TO_FORGET = N_("You haven't sent me any documents, so there is none to forget.")
DOCUMENT_GONE = N_("That document is gone already; send /documents to see what I keep.")
FORGOT_ALL_DOCUMENTS = N_("I also deleted the {count} you sent me.")


def parts(pages: int | None, passages: int) -> Notice:
    """ "3 pages, 7 passages"; "7 passages" for a file without pages."""
    said = Notice.ngettext("{n} passage", "{n} passages", passages)
    if pages is None:
        return said
    return Notice.gettext(
        PARTS, pages=Notice.ngettext("{n} page", "{n} pages", pages), passages=said
    )


def documents(count: int) -> Notice:
    """ "3 documents"."""
    return Notice.ngettext("{n} document", "{n} documents", count)


def too_many(count: int) -> Notice:
    return Notice.ngettext(
        "You have {n} document with me, the most I keep. Send /documents to see it "
        "and /forget document <number> to make room, then send the new one again.",
        "You have {n} documents with me, the most I keep. Send /documents to see them "
        "and /forget document <number> to make room, then send the new one again.",
        count,
    )
