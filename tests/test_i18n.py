"""The message catalogues (bot/locales): complete, consistent with the code, compilable, within Discord's limits;
the command translations; numbers and durations per language."""
from __future__ import annotations

import io
import re
import shutil
import string
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import discord
import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from discord import app_commands
from discord.ext import commands

from bot import i18n
from bot import messages as msg
from bot.config import Settings
from bot.jobs import Failure, Job, JobState, Refusal, Refused, failure
from bot.result import Animation, JobResult, SegmentResult
from bot.translator import CatalogueTranslator
from bot.views import cancel_view, result_view
from morph.request import NOTICES, PROBLEMS, Invalid, Notice, RenderRequest

ROOT = Path(__file__).resolve().parents[1]
LANGS = [lang for lang in i18n.languages() if lang != i18n.SOURCE]
COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")  # Discord's CHAT_INPUT name rule (\w: any script's letters)


def catalogue(lang: str):
    with i18n.catalogue_path(lang).open("rb") as f:
        return read_po(f, locale=lang)


def template():
    with (i18n.LOCALES_DIR / "bot.pot").open("rb") as f:
        return read_po(f)


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def ids(cat) -> set:
    return {m.id for m in cat if m.id}


def test_there_is_a_japanese_catalogue():
    assert "ja" in LANGS and i18n.language("ja") == "ja"


def placeholder_problems(cat) -> list[str]:
    """What is wrong with the translations of ``cat``: a message untranslated (or fuzzy), the wrong number of
    plural forms, singular and plural ids naming different placeholders, or a translation naming other
    placeholders than its id (a missing one, an extra one)."""
    problems = []
    for m in cat:
        if not m.id:
            continue
        sources = m.id if isinstance(m.id, tuple) else (m.id,)
        forms = m.string if isinstance(m.string, tuple) else (m.string,)
        if not all(forms) or "fuzzy" in m.flags:
            problems.append(f"{m.id!r} is not translated")
            continue
        if len(forms) != cat.num_plurals:
            problems.append(f"{m.id!r} has {len(forms)} plural forms, not {cat.num_plurals}")
        expected = placeholders(sources[-1])
        if any(placeholders(source) != expected for source in sources):
            problems.append(f"{m.id!r}: its singular and plural name different placeholders")
        for form in forms:
            if placeholders(form) != expected:
                problems.append(f"{m.id!r}: {form!r} names {sorted(placeholders(form))}, not {sorted(expected)}")
    return problems


@pytest.mark.parametrize("lang", LANGS)
def test_every_message_is_translated_with_the_same_placeholders(lang):
    cat, pot = catalogue(lang), template()
    assert ids(cat) == ids(pot), (f"missing: {ids(pot) - ids(cat)}", f"extra: {ids(cat) - ids(pot)}")
    assert placeholder_problems(cat) == [], lang


def test_a_wrong_placeholder_fails_the_check():
    """The check above can fail: a translation naming a placeholder its message id does not have is
    reported (and the right translation beside it is not)."""
    from babel.messages.catalog import Catalog

    cat = Catalog(locale="ja")
    cat.add("Morph #{job}", "モーフ #{jobb}")
    cat.add("Reroll", "リロール")
    assert placeholder_problems(cat) == ["'Morph #{job}': 'モーフ #{jobb}' names ['jobb'], not ['job']"]


@pytest.mark.parametrize("lang", LANGS)
def test_every_catalogue_compiles(lang):
    cat = catalogue(lang)
    assert list(cat.check()) == []  # Babel's own checks (plural forms, python-format)
    buf = io.BytesIO()
    write_mo(buf, cat)
    buf.seek(0)
    import gettext

    compiled = gettext.GNUTranslations(buf)
    assert compiled.gettext("Reroll") != "Reroll"


@pytest.mark.skipif(shutil.which("pybabel", path=str(Path(sys.executable).parent)) is None,
                    reason="pybabel is not installed in this environment")
def test_the_template_holds_every_text_of_the_code(tmp_path):
    """``make messages`` was run: the template (and with the test above every catalogue) has exactly the
    texts the code marks for translation."""
    out = tmp_path / "bot.pot"
    makefile = (ROOT / "Makefile").read_text()
    sources = re.search(r"^MESSAGE_SOURCES := (.+)$", makefile, re.M).group(1).split()
    paths = [str(p) for pattern in sources for p in sorted(ROOT.glob(pattern))]
    subprocess.run([str(Path(sys.executable).parent / "pybabel"), "-q", "extract", "-k", "locale_str", "-k", "N_",
                    "--no-location", "-o", str(out), *paths], check=True, cwd=ROOT)
    with out.open("rb") as f:
        fresh = ids(read_po(f))
    assert fresh == ids(template()), (f"not in bot.pot (run make messages): {fresh - ids(template())}",
                                      f"no longer in the code: {ids(template()) - fresh}")


def test_language_of_discord_locales():
    assert i18n.language(discord.Locale.japanese) == "ja"
    assert i18n.language("en-US") == "en" and i18n.language(discord.Locale.british_english) == "en"
    assert i18n.language("fr") == "en" and i18n.language(None) == "en" and i18n.language("zz-ZZ") == "en"


def test_numbers_and_durations_per_language():
    en, ja = i18n.text("en"), i18n.text("ja")
    assert en.number(12345) == "12,345" and en.number(0.934, 2) == "0.93"
    assert msg.duration(185, "en") == "3 min 5 s" and msg.duration(185, "ja") == "3分5秒"
    assert msg.duration(2.44, "ja") == "2.4秒" and msg.duration(3720, "ja") == "1時間2分"
    assert en.seconds(20) == "20 seconds" and ja.seconds(20).replace(" ", "") == "20秒"
    assert en.ngettext("{count} frame", "{count} frames", 1) == "1 frame"
    assert en.ngettext("{count} frame", "{count} frames", 1200) == "1,200 frames"
    assert ja.ngettext("{count} frame", "{count} frames", 3) == "3 フレーム"


# ------------------------------------------------------------------------------------------ texts and limits
LONG_PROMPT = "a very long prompt about a dog in the snow, " * 23  # ~1,000 characters, the option's limit
#: Discord's limits: a message's content, a button's label, a select's placeholder, a select option's label.
MAX_CONTENT, MAX_BUTTON_LABEL, MAX_PLACEHOLDER, MAX_OPTION_LABEL = 2000, 80, 150, 100


def long_job(lang: str, prompts=4) -> Job:
    request = RenderRequest(prompts=[LONG_PROMPT + str(i) for i in range(prompts)], frames=120, seed=2**32 - 1,
                            negative=LONG_PROMPT, loop=True)
    frames = 120
    result = JobResult(frame_count=frames, candidates=(10, 20, 30, 40, 50, 60, 70, 80, 90),
                       ts=tuple(i / (frames - 1) for i in range(frames)), one_minus_gini=0.93, max_over_mean=1.4,
                       seconds=3725.0, mp4_error="no PyAV", warnings=every_notice("warning"),
                       animations=(Animation("mp4", 1, frames, (512, 512), every_notice("reduction")),
                                   Animation("gif", 1, frames, (512, 512), every_notice("reduction"))),
                       segments=tuple(SegmentResult(i, 30 * i, 30 * i + 29, 30 * i + 15,
                                                    (10 * (2 * i + 1), 10 * (2 * i + 2))) for i in range(4)))
    return Job(id=2**62, guild_id=1, channel_id=2, user_id=2**62, state=JobState.DELIVERED, request=request,
               result=result, token="abcd1234", language=lang, artifact_dir="x")


def every_notice(kind: str) -> tuple[Notice, ...]:
    """Every notice of the engine's of ``kind`` (a reduction of an animation, or a render warning), long facts."""
    return tuple(Notice(code, long_facts(message)) for code, message in NOTICES.items()
                 if code.startswith("reduced_") == (kind == "reduction"))


def every_text(lang: str) -> list[str]:
    """Every message function of bot.messages with long values, in ``lang``."""
    job = long_job(lang)
    progress = SimpleNamespace(stage="denoise", fraction=0.5, frames_done=60, frames_total=120, step=999,
                               steps=1000)
    out = [
        msg.queued_text(job.id, job.request, job.user_id, 10_000, True, locale=lang),
        msg.rendering_text(job.id, job.request, job.user_id, progress, 99_999.0, locale=lang),
        msg.rendering_text(job.id, job.request, job.user_id, None, locale=lang),
        msg.delivered_text(job.id, job.request, job.user_id, "https://discord.com/channels/" + "9" * 60, lang),
        msg.failed_text(job.id, "e" * 3000, lang),
        *(msg.failed_text(job.id, error, lang) for error in every_failure()),
        msg.cancelled_text(job.id, job.user_id, lang),
        msg.result_text(job.id, job.request, job.user_id, job.result, note="n" * 400, refined_from=2**62,
                        locale=lang),
        msg.pick_text(job.id, 119, 120, job.user_id, 9, lang),
        msg.queue_list_text([(2**62, "queued", job.request, 10_000)] * 30, lang),
        msg.sheet_caption(job.result, lang),
    ]
    values = dict(job=2**62, seconds=86_400, state="cancelled", count=10**6, frame="9" * 30, days=3650.0,
                  channels=[2**62] * 50, detail="d" * 3000, option="default_format", value="v" * 3000,
                  choices=["mp4", "gif", "both"], jobs=list(range(2**62, 2**62 + 100)), limit=10_000, key="k" * 100,
                  cap=10_000, keys=["max_user_active"] * 9, low=1, high=10_000, words=500, chars=100,
                  action="delete", what="negative prompt", mention="<@" + "9" * 20 + ">", first=2**62, second=2**62)
    out += [msg.error_text(Refused(kind, **values), lang) for kind in Refusal]
    return out


def long_facts(message: str) -> dict:
    """Long values for every placeholder of an engine problem's message (lists where it lists choices)."""
    def value(name):
        if name == "what":
            return "negative prompt"
        if name in ("choices", "commands", "names", "slots", "members", "options"):
            return ["c" * 40] * 30
        return "v" * 300
    return {name: value(name) for name in placeholders(message)}


def every_failure() -> list[str]:
    """A stored failure of every kind (bot.jobs.failure), with long facts: every engine problem, every refusal."""
    out = [failure(Failure.OUT_OF_MEMORY), failure(Failure.RENDERER), failure(Failure.MODEL_LOAD),
           failure(Failure.CRASHED, attempts=3), failure(Failure.ENGINE, message="m" * 3000),
           failure(Failure.NOT_POSTED), failure(Failure.NOT_POSTED, status=403, code=50013, detail="d" * 3000),
           failure(Failure.NOT_POSTED, status=413, code=40005, detail="d"),
           failure(Failure.NOT_POSTED, status=500, code=0, detail="d" * 3000)]
    out += [failure(Failure.INVALID, code=code, facts=long_facts(message)) for code, message in PROBLEMS.items()]
    out += [failure(Failure.REFUSED, refusal=Refusal.NO_JOB.value, values={"job": 2**62})]
    return out


def items(view: discord.ui.View) -> list:
    """The buttons and selects of a view (a DynamicItem wraps its component)."""
    out = [getattr(i, "item", i) for i in view.children]
    assert out
    return out


@pytest.mark.parametrize("lang", i18n.languages())
def test_no_message_is_over_discords_limits(lang):
    for shown in every_text(lang):
        assert 0 < len(shown) <= MAX_CONTENT, shown[:200]
    job = long_job(lang)
    for view in (result_view(job), cancel_view(job)):
        for item in items(view):
            if isinstance(item, discord.ui.Button):
                assert 0 < len(item.label or "") <= MAX_BUTTON_LABEL, item.label
            if isinstance(item, discord.ui.Select):
                assert 0 < len(item.placeholder or "") <= MAX_PLACEHOLDER, item.placeholder
                assert all(0 < len(o.label) <= MAX_OPTION_LABEL for o in item.options), [o.label for o in item.options]


@pytest.mark.parametrize("lang", i18n.languages())
def test_the_longest_frame_label_fits_a_select_option(lang):
    job = long_job(lang)
    assert 0 < len(msg.frame_label(119, 120, job.result.ts, job.result.candidates, lang)) <= MAX_OPTION_LABEL


def test_japanese_texts_are_japanese():
    job = long_job("ja", prompts=2)
    ja = msg.result_text(job.id, job.request, job.user_id, job.result, locale="ja")
    assert ja.startswith(f"🎞️ モーフ ジョブ #{job.id}") and msg.RESULT_MARKER_RE.match(ja).group(1) == str(job.id)
    assert "フレーム" in ja and "シード" in ja
    en = msg.result_text(job.id, job.request, job.user_id, job.result, locale="en")
    assert msg.RESULT_MARKER_RE.match(en).group(1) == str(job.id) and "120 frames" in en
    view = result_view(job)
    labels = [i.label for i in items(view) if isinstance(i, discord.ui.Button)]
    assert "リロール" in labels and "削除" in labels
    assert {i.placeholder for i in items(view) if isinstance(i, discord.ui.Select)} == {
        "好きなフレームを選ぶ…", "🔍 細分化: 隣り合うフレームの間をさらに細かく…"}
    assert msg.refusal_text(Refused(Refusal.COOLDOWN, seconds=20), "ja").replace(" ", "").startswith("少し待って")
    assert msg.refusal_text(Refused(Refusal.COOLDOWN, seconds=20), "fr").startswith("Slow down")  # fallback


def test_the_engines_refusals_in_japanese():
    """The engine raises typed refusals (morph.request.Invalid: a code and facts) and keeps its English for the
    command line; the bot words them in the member's language, naming settings and prompts as the member's
    client does and writing numbers the language's way."""
    with pytest.raises(Invalid) as err:
        RenderRequest(prompts=["a dog", "a cat"], seed=-1).validate()
    assert str(err.value) == "seed must be between 0 and 4294967295 (got -1)."
    # what was given is made inert like every value a member typed (markdown escaped: Discord shows "-1")
    assert msg.error_text(err.value, "en") == "❌ seed must be between 0 and 4,294,967,295 (got \\-1)."
    assert msg.error_text(err.value, "ja") == ("❌ 「シード」は 0 から 4,294,967,295 までにしてください"
                                               "（指定された値: \\-1）。")
    with pytest.raises(Invalid) as err:
        RenderRequest(prompts=["a dog", "   "]).validate()
    assert msg.error_text(err.value, "ja") == ("❌ 2つ目のプロンプトが空です。「a dog」のように、いくつかの単語を"
                                               "入力してください。")
    with pytest.raises(Invalid) as err:
        RenderRequest(prompts=["a dog", "a cat"], scheduler="euler_a").validate()
    assert "fresh noise" in str(err.value) and "dpm++2m, ddim" in str(err.value)
    ja = msg.error_text(err.value, "ja")
    assert "「euler\\_a」" in ja and "dpm++2m、ddim" in ja and "ノイズ" in ja
    # picture sizes are written as they are, other numbers the language's way
    assert "1024px" in msg.error_text(Invalid("out_of_memory_batch", size=1024), "ja")
    assert "4,096" in msg.error_text(Invalid("prompt_too_long", what="prompt", length=4096, limit=1000), "en")
    # a problem of another version of the engine (a stored failure) still reads as a sentence
    assert msg.invalid_text("from_the_future", {}, "ja") == "モーフの設定が正しくありません（from\\_the\\_future）。"


def test_stored_failures_are_worded_when_shown():
    """A failed job keeps its failure's kind and facts; each front words it in the job's language."""
    oom, crashed = failure(Failure.OUT_OF_MEMORY), failure(Failure.CRASHED, attempts=3)
    assert msg.failed_text(7, oom, "en") == ("⚠️ Morph job #7 failed: the GPU ran out of memory on this morph; try "
                                             "fewer frames or a smaller size.")
    assert msg.failed_text(7, oom, "ja").startswith("⚠️ モーフ ジョブ #7 は失敗しました: このモーフで GPU のメモリ")
    assert msg.failure_text(crashed, "en") == "the renderer crashed 3 times on this job"
    assert msg.failure_text(crashed, "ja") == "このジョブで生成処理が 3 回続けて異常終了しました"
    assert "読み込めません" in msg.failure_text(failure(Failure.MODEL_LOAD), "ja")
    denied = failure(Failure.NOT_POSTED, status=403, code=50013, detail="Missing Permissions")
    assert msg.failure_text(denied, "ja").endswith("権限がありません（Discord: Missing Permissions）。")
    invalid = failure(Failure.INVALID, code="size_multiple", facts={"given": "100", "suggestion": 96})
    assert msg.failure_text(invalid, "en") == "size must be a multiple of 8 (got 100; try 96)."
    assert msg.failure_text(invalid, "ja") == ("サイズは 8 の倍数にしてください（指定された値: 100。96 を"
                                               "お試しください）。")
    damaged = failure(Failure.PICTURE, kind="damaged", what="second picture", facts={})
    assert msg.failure_text(damaged, "en").startswith("The second picture is damaged")
    assert msg.failure_text(damaged, "ja") != msg.failure_text(damaged, "en")
    gone = failure(Failure.REFUSED, refusal="pictures_gone", values={"job": 5})
    assert msg.failure_text(gone, "ja").startswith("モーフ #5 の画像はもう保存されていません")
    # texts of an older version: a catalogue text is translated, any other shown as it is (made inert)
    assert msg.failure_text("the renderer failed on the bot's side (the details are in the bot's log).", "ja") \
        == "ボット側で生成に失敗しました（詳細はボットのログにあります）。"
    assert msg.failure_text("boom @everyone", "ja") == "boom @\u200beveryone"
    assert msg.failure_text(None, "ja") == "不明なエラー"


def test_every_refusal_kind_has_a_text_in_every_language():
    """Each kind renders to its own text (none falls through to the generic summary)."""
    for lang in i18n.languages():
        texts = every_text(lang)[-len(Refusal):]
        assert all(not t.startswith("❌ " + kind.value) for t, kind in zip(texts, Refusal, strict=True)), texts


# ------------------------------------------------------------------------------------------ commands
async def synced_payload() -> list[dict]:
    """The command payload the bot syncs (what ``tree.sync`` sends), with the catalogue translator."""
    from bot.actions import Actions
    from bot.cogs import AdminCog, MorphCog

    bot = commands.Bot(command_prefix="!", intents=discord.Intents.none())
    settings = Settings()
    actions = Actions(store=None, settings=settings, events=None)  # type: ignore[arg-type]
    await bot.add_cog(MorphCog(bot, actions, None))
    await bot.add_cog(AdminCog(actions, None))
    translator = CatalogueTranslator()
    await bot.tree.set_translator(translator)
    return [await c.get_translated_payload(bot.tree, translator) for c in bot.tree.get_commands()]


def walk_options(item: dict):
    for opt in item.get("options") or []:
        yield opt
        yield from walk_options(opt)


async def test_the_synced_commands_carry_japanese_within_discords_rules():
    payload = await synced_payload()
    by_name = {c["name"]: c for c in payload}
    assert by_name["morph"]["name_localizations"]["ja"] == "モーフ"
    assert by_name["morph"]["description_localizations"]["ja"].startswith("プロンプトから")
    assert "en-US" not in by_name["morph"].get("name_localizations", {})  # English: the defaults
    options = {o["name"]: o for o in by_name["morph"]["options"]}
    assert options["from"]["name_localizations"]["ja"] == "最初"
    assert options["frames"]["description_localizations"]["ja"].startswith("フレーム数: 2〜")
    assert [c["name_localizations"]["ja"] for c in options["format"]["choices"]][-1] == "両方"
    # the option's name is not the progress stage's text (both were the one msgid "pacing")
    pacing_stage = i18n.text("ja")._(msg.STAGES["pace"])
    assert pacing_stage == "間隔を調整中" and options["pacing"]["name_localizations"]["ja"] not in ("", pacing_stage)
    admin = {o["name"]: o for o in by_name["morphadmin"]["options"]}
    assert admin["limits"]["name_localizations"]["ja"] == "制限"
    assert "language" in {o["name"] for o in admin["limits"]["options"]}
    seen_ja = set()
    for cmd in payload:
        for item in [cmd, *walk_options(cmd)]:
            for locale, name in (item.get("name_localizations") or {}).items():
                if "choices" in item or item.get("type") in (1, 2, None) or "description" in item:
                    assert COMMAND_NAME.match(name) and name == name.lower(), (locale, name)
                seen_ja.add(locale)
            if "description" in item:  # the English default too: Discord refuses the whole sync otherwise
                assert 1 <= len(item["description"]) <= 100, (item["name"], item["description"])
            for locale, desc in (item.get("description_localizations") or {}).items():
                assert 1 <= len(desc) <= 100, (locale, desc)
            assert "ja" in (item.get("description_localizations") or {}), item["name"]
            assert "ja" in (item.get("name_localizations") or {}), item["name"]
            for choice in item.get("choices") or []:
                assert all(1 <= len(n) <= 100 for n in (choice.get("name_localizations") or {}).values())
    assert seen_ja == {"ja"}


async def test_translator_answers_none_for_english_and_unknown_texts():
    t = CatalogueTranslator()
    ctx = app_commands.TranslationContext(location=app_commands.TranslationContextLocation.other, data=None)
    assert await t.translate(app_commands.locale_str("morph"), discord.Locale.american_english, ctx) is None
    assert await t.translate(app_commands.locale_str("not a catalogue text"), discord.Locale.japanese, ctx) is None
    assert await t.translate(app_commands.locale_str("Reroll"), discord.Locale.japanese, ctx) == "リロール"
