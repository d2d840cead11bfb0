"""Voice notes and photos as part of the one conversation (docs/media.md).

`plan` decides, before anything is stored, what becomes of a message's attachments;
`files` is the port through which the engine downloads them from their platform;
`prepare` turns a stored voice note into its transcript and a photo into a description
and an image for the model, in the message's turn; `texts` holds what the bot says
about them.
"""
