"""Discord-specific checks on user text, on top of :func:`morph.request.clean_prompt`.

Messages are sent with ``AllowedMentions.none()`` anyway; refusing mention syntax here means a prompt
can never even look like a ping when it is echoed back. Links are refused because prompts are echoed in
public messages (the bot has Embed Links, so Discord would preview the page).

Banned words are matched on what the text encoder sees, not on the raw text. CLIP's tokenizer
(see :data:`_TOKEN`) lowercases, then splits text into runs of letters, single digits, a few English
contractions and runs of everything else, so ``big_cat``, ``cat2`` and ``2cat`` all contain the word
``cat`` for it; then it splits each word into sub-words (:mod:`bot.subwords`: ``catdog`` is ``cat`` +
``dog``). Before splitting, :func:`fold` removes what only changes how a word looks: compatibility forms
(fullwidth ``ｃａｔ``), case, accents and other combining marks, invisible characters (``ca`` + U+034F +
``t``), letters drawn like Latin ones (Unicode's confusables data: Cherokee ``ᏟᎪᎢ``, small capitals
``ᴄᴀᴛ``, Cyrillic ``caт``), digits used as letters (``c4t``) and letters spelled apart (``c a t``,
``c.a.t``; :mod:`bot.lookalikes`). A banned word then matches a word that is it, its plural (``cats``),
or that starts or ends with its sub-words (``catdog``, ``kittycat``), but not one that only holds its
letters (``category``, ``concatenation``). The check needs no model, so it runs in the Discord front
wherever the renderer is.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

from bot.jobs import Refusal, Refused
from bot.lookalikes import reads_as
from bot.subwords import subwords
from morph.request import PROMPT_NAMES, RenderRequest, clean_prompt, is_default_ignorable

#: What the bot counts as a link: refused in prompts (:func:`check_prompt`) and defanged by
#: :func:`bot.messages.safe`.
#: A scheme (``https://``, ``steam://``…), ``www.``, or a domain name followed by a path (``evil.com/x``,
#: ``discord.gg/abc``). A bare ``name.tld`` without a path is not one: Discord does not make it
#: clickable, and prompts like "node.js" are ordinary words.
#: (Each alternative starts only where a run of name characters starts, so it takes linear time.)
LINK_RE = re.compile(r"(?<![\w+.-])[\w+.-]+://\S*|\bwww\.\S*|(?<![\w.-])(?:[\w-]+\.)+[^\W\d_]{2,}/\S*",
                     re.IGNORECASE)

_MASS_MENTION = re.compile(r"@(everyone|here)", re.IGNORECASE)
_MENTION = re.compile(r"<(@[!&]?|#)\d+>")
_KIND = {"@": "user mention", "@!": "user mention", "@&": "role mention", "#": "channel mention"}

#: Cyrillic and Greek letters that look like Latin ones, mapped to the Latin letter (both cases).
_HOMOGLYPHS = str.maketrans(
    "АВЕКМНОРСТХУЅІЈԚԜҺӀаеорсухѕіјԁһԛԝӏ" "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧαοικνρτυχγ" "ıȷɡɑ",
    "ABEKMHOPCTXYSIJQWHIaeopcyxsijdhqwl" "ABEZHIKMNOPTYXaoikvptuxy" "ijga")
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
#: CLIP's pre-tokenizer, ``'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`` in Python's ``re``
#: (letters are ``[^\W\d_]``), except that Chinese and Japanese characters, written without spaces
#: between words, are one word each. Group ``word``: what banned words are matched against.
_TOKEN = re.compile(rf"(?P<word>'(?:s|t|re|ve|m|ll|d)|[{_CJK}]|(?:(?![{_CJK}])[^\W\d_])+|\d)|(?:[^\w\s]|_)+")


def fold(text: str) -> str:
    """``text`` as the banned-word check compares it: compatibility forms unfolded (NFKC), combining marks
    and default-ignorable characters removed, look-alike Cyrillic/Greek letters made Latin, casefolded."""
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(c for c in text
                   if unicodedata.category(c) not in ("Mn", "Me") and not is_default_ignorable(c))
    return unicodedata.normalize("NFKC", text.translate(_HOMOGLYPHS).casefold())


def words(text: str, *, as_read: bool = True) -> list[str]:
    """The words of ``text`` the way CLIP splits them, after :func:`fold` and, with ``as_read`` (what the
    banned-word check compares), :func:`bot.lookalikes.reads_as` (look-alike letters, digits used as letters
    and letters spelled apart): ``"ᴄ4t"`` → ``["cat"]``; without it, ``"a big_Cat2"`` →
    ``["a", "big", "cat", "2"]`` (punctuation and symbols are not words)."""
    folded = fold(text)
    return [m.group("word") for m in _TOKEN.finditer(reads_as(folded) if as_read else folded) if m.group("word")]


@functools.lru_cache(maxsize=4096)
def _banned_pattern(entry: str) -> tuple[str, bool]:
    """(what to look for, whether it is a word sequence) for one banned-list entry.

    Words or phrases match as whole words: ``"hot dog"`` → ``" hot dog "`` in the prompt's words joined
    with spaces. An entry of symbols only (an emoji) has no words and matches anywhere in the folded text.
    """
    w = words(entry)
    return (" " + " ".join(w) + " ", True) if w else ("".join(fold(entry).split()), False)


def _word_holds(word: str, banned: str) -> bool:
    """Whether one prompt ``word`` is the ``banned`` word to the model: the word itself, its plural, or a
    word whose sub-words start or end with the banned word's (``catdog``, ``kittycat``, ``kittycats``).

    Both come folded and read (:func:`words`), and a word's sub-words spell it (their UTF-8 bytes, in
    order), so every case holds ``banned`` as a substring of ``word``: a word without it is none of them,
    which spares the sub-word split of nearly every word of a long prompt against a long list."""
    if banned not in word:
        return False
    if word == banned or word in (banned + "s", banned + "es"):
        return True
    have, ban = subwords(word), subwords(banned)
    n = len(ban)
    if len(have) <= n:
        return False
    plural_end = have[-1] in (ban[-1] + "s", ban[-1] + "es") and have[len(have) - n:-1] == ban[:-1]
    return have[:n] == ban or have[-n:] == ban or plural_end


def contains_banned(text: str, banned_words: Iterable[str]) -> bool:
    """Whether ``text`` contains one of ``banned_words`` (see :func:`_banned_pattern`); banning ``cat``
    refuses ``Big_CAT``, ``cats``, ``catdog``, ``kittycat``, ``c a t``, ``c4t``, ``ｃａｔ`` and look-alikes
    (``ᏟᎪᎢ``, ``ᴄᴀᴛ``, ``caт``), but not ``category`` or ``concatenation``."""
    prompt_words = words(text)
    joined = " " + " ".join(prompt_words) + " "
    folded = None
    for entry in banned_words:
        pattern, is_words = _banned_pattern(str(entry))
        if is_words:
            if pattern in joined:
                return True
            single = pattern.strip()
            if " " not in single and any(_word_holds(w, single) for w in prompt_words):
                return True
        elif pattern:
            folded = fold(text) if folded is None else folded
            if pattern in folded:
                return True
    return False


def warm_up_banned_words() -> None:
    """Load the look-alike and sub-word tables (a few tenths of a second) before the first prompt comes."""
    contains_banned("warm up", ("x",))


def check_prompt(text: str, what: str = "prompt", banned_words: Iterable[str] = ()) -> str:
    """Return the cleaned prompt or raise MorphError with a message for the user (what this module refuses:
    a :class:`~bot.jobs.Refused`, worded in the member's language by ``bot.messages``).

    Refuses what ``clean_prompt`` refuses (empty, too long, control characters, no letter or digit),
    ``@everyone`` and ``@here``, user/role/channel mentions, links (:data:`LINK_RE`), and
    any of ``banned_words`` (:func:`contains_banned`).
    """
    text = clean_prompt(text, what)
    m = _MASS_MENTION.search(text)
    if m:
        raise Refused(Refusal.PROMPT_MENTION, what=what, mention="@" + m.group(1).lower())
    m = _MENTION.search(text)
    if m:
        raise Refused(Refusal.PROMPT_MENTION, what=what, kind=_KIND[m.group(1)], mention=m.group(0))
    if LINK_RE.search(text):
        raise Refused(Refusal.PROMPT_LINK, what=what)
    if contains_banned(text, banned_words):
        raise Refused(Refusal.PROMPT_BANNED, what=what)
    return text


def check_request(request: RenderRequest, banned_words: Iterable[str] = (), *,
                  max_frames: int | None = None) -> RenderRequest:
    """``request.validate()`` plus :func:`check_prompt` on every prompt (a chain has up to four) and the
    negative prompt, and the server's frame cap.

    Returns the normalised request; raises MorphError naming the first problem.
    """
    banned_words = tuple(banned_words)
    r = request.validate()
    pictures = r.images or [None] * len(r.prompts)  # a picture end's prompt may be empty (RenderRequest.images)
    r.prompts = ["" if pictures[i] is not None and not p else check_prompt(p, PROMPT_NAMES[i], banned_words)
                 for i, p in enumerate(r.prompts)]
    if r.negative:
        r.negative = check_prompt(r.negative, "negative prompt", banned_words)
    if max_frames is not None and r.frames > max_frames:
        raise Refused(Refusal.FRAMES_OVER_CAP, cap=max_frames, value=r.frames)
    return r
