"""Everything the bot says about documents, in one place (for the message catalogs).

Placeholders: {filename}, {size}, {limit}, {pages}, {count}, {date}, {number},
{parts}, {listed}.
"""

from __future__ import annotations

# Documents.add: kept.
KEPT = (
    'I read "{filename}" ({parts}) and will remember it: ask me about it any time. '
    "/documents lists what I keep."
)
KEPT_IN_SHARED_CHAT = (
    'I read "{filename}" ({parts}) and will remember it, here and in our private chat '
    "(not in other groups). /documents in our private chat lists what I keep."
)
ALREADY_KEPT = 'I have "{filename}" already (since {date}), so I kept nothing new.'

# Documents.add: refused. Nothing is kept.
UNSUPPORTED = (
    "I can keep text (.txt), Markdown (.md) and PDF documents; "
    '"{filename}" is none of these, so I did not keep it.'
)
TOO_LARGE = "That file is {size}; I keep documents of up to {limit}, so I did not keep it."
TOO_MANY = (
    "You have {count} documents with me, the most I keep. Send /documents to see them "
    "and /forget document <number> to make room, then send it again."
)
TOO_MANY_PAGES = (
    '"{filename}" has {pages} pages; I read documents of up to {limit} pages, so I did not keep it.'
)
TOO_LONG = (
    '"{filename}" is too long for me to keep: its text makes {count} passages and I keep '
    "at most {limit} per document."
)
CORRUPT = (
    'I couldn\'t read "{filename}": the file seems damaged, or is not the kind of file '
    "its name says. I did not keep it."
)
ENCRYPTED = (
    '"{filename}" is locked with a password, so I can\'t read it. Send me a copy '
    "without the password if you want me to keep it."
)
NOT_TEXT = (
    '"{filename}" doesn\'t hold text I can read (it looks like binary data), so I did not keep it.'
)
EMPTY = (
    'I found no text in "{filename}", so I kept nothing. (A scanned PDF holds '
    "pictures of pages, which I can't read.)"
)
MEMORY_OFF = (
    'Memory is off, so I did not keep "{filename}". Send /memory on, then the document '
    "again, if you want me to remember it."
)
UNAVAILABLE = (
    'I couldn\'t take "{filename}" into my memory just now. Please send it again in a little while.'
)

# /documents
NO_DOCUMENTS = (
    "You haven't sent me any documents. Send me a text, Markdown or PDF file and I'll "
    "remember what it says."
)
LIST_HEADER = "Your documents ({count} of at most {limit}):"
LIST_LINE = "{number}. {filename}: {size}, {parts}, sent {date}{where}"
LIST_IN_GROUP = " in a group"
LIST_FOOTER = "Send /forget document <number> to make me forget one."

# /why
WHY_HEADER = "From your documents:"
WHY_SOURCE = "- {filename}{where}"
WHY_PAGE = ", page {page}"
WHY_SECTION = ', section "{heading}"'
WHY_SECTION_TOKENS = "your documents"

# /forget document N, /forget all confirm
FORGOT_DOCUMENT = 'Forgotten: the document "{filename}" and all I read in it.'
NO_SUCH_DOCUMENT = "There is no document {number}; /documents lists {listed}."
NO_DOCUMENT_TO_FORGET = "You haven't sent me any documents, so there is none to forget."
DOCUMENT_GONE = "That document is gone already; send /documents to see what I keep."
FORGOT_ALL_DOCUMENTS = "I also deleted the {count} you sent me."
