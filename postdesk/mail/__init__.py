"""Pure helpers on messages: no I/O, no database, nothing from postdesk but errors and config.

``parse.parse`` turns raw bytes into a frozen ``ParsedMail`` and never raises; ``addresses``
normalises addresses and Message-IDs; ``automatic`` says why a mail was sent by a program;
``quotes`` cuts a reply down to what its author wrote; ``headers`` makes customer text safe in
a header; ``language`` guesses fr/en. ``charsets``, ``fields``, ``parts``, ``filenames``,
``htmlbody`` and ``model`` are the pieces of ``parse``.
"""
