"""Discord-specific checks on user text, on top of :func:`morph.request.clean_prompt`.

Messages are sent with ``AllowedMentions.none()`` anyway; refusing mention syntax here means a prompt
can never even look like a ping when it is echoed back.
"""
from __future__ import annotations

import re
from typing import Iterable

from morph.request import MorphError, RenderRequest, clean_prompt

_MASS_MENTION = re.compile(r"@(everyone|here)", re.IGNORECASE)
_MENTION = re.compile(r"<(@[!&]?|#)\d+>")
_KIND = {"@": "user mention", "@!": "user mention", "@&": "role mention", "#": "channel mention"}


def check_prompt(text: str, what: str = "prompt", banned_words: Iterable[str] = ()) -> str:
    """Return the cleaned prompt or raise MorphError with a message for the user.

    Refuses what ``clean_prompt`` refuses (empty, too long, control characters), ``@everyone`` and
    ``@here``, user/role/channel mentions, and any of ``banned_words`` (case-insensitive, whole words
    or phrases: banning "cat" does not refuse "category").
    """
    text = clean_prompt(text, what)
    m = _MASS_MENTION.search(text)
    if m:
        raise MorphError(f"The {what} contains @{m.group(1).lower()}; mentions are not allowed in prompts.")
    m = _MENTION.search(text)
    if m:
        raise MorphError(f"The {what} contains a {_KIND[m.group(1)]} ({m.group(0)}); "
                         "mentions are not allowed in prompts.")
    folded = text.casefold()
    for word in banned_words:
        w = " ".join(str(word).casefold().split())
        if w and re.search(r"(?<!\w)" + re.escape(w) + r"(?!\w)", folded):
            raise MorphError(f"The {what} contains a word this server does not allow. Rephrase it and try again.")
    return text


def check_request(request: RenderRequest, banned_words: Iterable[str] = (), *,
                  max_frames: int | None = None) -> RenderRequest:
    """``request.validate()`` plus :func:`check_prompt` on all three prompts and the server's frame cap.

    Returns the normalised request; raises MorphError naming the first problem.
    """
    banned_words = tuple(banned_words)
    r = request.validate()
    r.prompt_a = check_prompt(r.prompt_a, "first prompt", banned_words)
    r.prompt_b = check_prompt(r.prompt_b, "second prompt", banned_words)
    if r.negative:
        r.negative = check_prompt(r.negative, "negative prompt", banned_words)
    if max_frames is not None and r.frames > max_frames:
        raise MorphError(f"frames must be at most {max_frames} on this server (got {r.frames}).")
    return r
