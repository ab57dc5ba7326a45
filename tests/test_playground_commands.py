"""The playground's command line (bot/playground/commands.py): parsing a typed command against a schema shaped
like what discord.py syncs, the help entries, and the commands the page suggests for its model."""
from __future__ import annotations

import pytest

from bot.playground import commands as cp

# ---------------------------------------------------------------------------------------------------------
# Command parsing (pure): a schema shaped like what discord.py syncs
# ---------------------------------------------------------------------------------------------------------
SCHEMA = [
    {"name": "morph", "type": 1, "description": "Morph one prompt into another", "options": [
        {"type": 3, "name": "from", "description": "start", "required": True, "min_length": 1, "max_length": 1000},
        {"type": 3, "name": "to", "description": "end", "required": True, "min_length": 1, "max_length": 1000},
        {"type": 4, "name": "frames", "description": "frames", "min_value": 2, "max_value": 60},
        {"type": 4, "name": "seed", "description": "seed", "min_value": 0, "max_value": 2**32 - 1},
        {"type": 5, "name": "boomerang", "description": "back and forth"},
        {"type": 3, "name": "pacing", "description": "pacing", "choices": [
            {"name": "perceptual (even visual steps)", "value": "perceptual"},
            {"name": "uniform (even prompt steps)", "value": "uniform"}]},
    ]},
    {"name": "morph-queue", "type": 1, "description": "Your morphs"},
    {"name": "morph-cancel", "type": 1, "description": "Cancel", "options": [
        {"type": 4, "name": "job", "description": "job", "required": True, "min_value": 1}]},
    {"name": "morphadmin", "type": 1, "description": "Admin", "default_member_permissions": "32", "options": [
        {"type": 1, "name": "pause", "description": "Pause the queue"},
        {"type": 1, "name": "ban", "description": "Ban", "options": [
            {"type": 6, "name": "user", "description": "who", "required": True}]},
    ]},
]
MEMBERS = {"bob": "111", "ada": "222"}


def parse(text):
    return cp.parse(text, SCHEMA, MEMBERS)


@pytest.mark.parametrize("text, options", [
    ("/morph dog cat", {"from": "dog", "to": "cat"}),
    ("/morph dog cat frames:16 seed:3", {"from": "dog", "to": "cat", "frames": 16, "seed": 3}),
    ("/morph from:dog to:cat", {"from": "dog", "to": "cat"}),
    ("/morph from:a red fox to:a cat frames:8", {"from": "a red fox", "to": "a cat", "frames": 8}),
    ('/morph "a red fox" "a cat"', {"from": "a red fox", "to": "a cat"}),
    ('/morph from:"a red fox" "a cat" seed:0', {"from": "a red fox", "to": "a cat", "seed": 0}),
    ("/morph frames:8 dog cat", {"frames": 8, "from": "dog", "to": "cat"}),
    ("/morph dog cat boomerang:yes pacing:uniform", {"from": "dog", "to": "cat", "boomerang": True,
                                                     "pacing": "uniform"}),
    ("/morph from:a cat in style:anime to:dog", {"from": "a cat in style:anime", "to": "dog"}),
    ("/MORPH dog cat", {"from": "dog", "to": "cat"}),
])
def test_parse_morph_forms(text, options):
    parsed = parse(text)
    assert (parsed.name, parsed.path, parsed.options) == ("morph", [], options)


def test_parse_subcommands_and_users():
    assert (parse("/morphadmin pause").path, parse("/morphadmin pause").options) == (["pause"], {})
    assert parse("/morphadmin ban user:@Ada").options == {"user": "222"}
    assert parse("/morphadmin ban bob").options == {"user": "111"}
    assert parse("/morphadmin ban <@!333>").options == {"user": "333"}
    assert parse("/morph-cancel job:3").options == {"job": 3}
    assert parse("/morph-queue").options == {}


@pytest.mark.parametrize("text, message", [
    ("morph dog cat", "start with '/'"),
    ("/morf dog cat", "Unknown command '/morf'"),
    ("/morph dog", "needs to"),
    ("/morph", "needs from, to"),
    ("/morph a red fox a cat", 'double quotes'),
    ('/morph "a red fox a cat', "quote is not closed"),
    ("/morph dog cat frames:1", "frames must be between 2 and 60"),
    ("/morph dog cat frames:many", "frames must be a whole number"),
    ("/morph dog cat frmes:8", "has no option 'frmes'"),
    ("/morph dog cat seed:1 seed:2", "seed is given twice"),
    ("/morph dog cat boomerang:maybe", "true or false"),
    ("/morph dog cat pacing:fast", "pacing must be one of"),
    ("/morphadmin", "needs one of: pause, ban"),
    ("/morphadmin reboot", "has no 'reboot'"),
    ("/morphadmin ban user:@nobody", "no member called '@nobody'"),
    ("/morph-queue now", "Too many values"),
])
def test_parse_refusals(text, message):
    with pytest.raises(cp.CommandError) as err:
        parse(text)
    assert message in str(err.value)


def test_help_entries_flatten_subcommands():
    rows = {r["usage"]: r for r in cp.help_entries(SCHEMA)}
    assert "/morph <from> <to> [frames:] [seed:] [boomerang:] [pacing:]" in rows
    assert rows["/morphadmin pause"]["admin"] is True
    assert rows["/morphadmin ban <user>"]["admin"] is True
    assert rows["/morph-queue"]["admin"] is False


def test_playground_defaults_to_toy_and_suggests_prompts_it_knows():
    from bot.config import Settings
    from bot.playground import load_morpher
    from bot.playground.app import examples
    from toykit import shapes

    model = Settings.from_env({}, None, playground=True).model
    morpher, banner = load_morpher(model)
    assert model == "toy" and morpher.model == "toy"
    assert "trained here on coloured shapes" in banner and "MORPH_MODEL=" in banner
    suggested = examples("toy")
    assert suggested[0] == '/morph "a red circle" "a blue square"'
    for command in suggested:  # every suggested prompt names a shape (and only words the model learnt)
        prompts = cp.parse(command, SCHEMA, MEMBERS).options
        for prompt in (prompts["from"], prompts["to"]):
            assert "shape" in shapes.parse(prompt)
            assert set(prompt.split()) <= set(shapes.WORDS), prompt
    assert examples("some/other-model") == ["/morph dog cat frames:16 seed:3"]


IMAGES_SCHEMA = [{"name": "morph-images", "type": 1, "description": "Morph pictures", "options": [
    {"type": 11, "name": "first", "description": "picture", "required": True},
    {"type": 11, "name": "second", "description": "picture"},
    {"type": 3, "name": "to", "description": "prompt", "min_length": 1, "max_length": 1000},
    {"type": 4, "name": "frames", "description": "frames", "min_value": 2, "max_value": 60},
]}]


def test_attached_files_fill_the_attachment_options_in_order():
    one = cp.parse('/morph-images to:"a blue square" frames:4', IMAGES_SCHEMA, files=1)
    assert one.attachments == ["first"] and one.options == {"to": "a blue square", "frames": 4}
    two = cp.parse("/morph-images", IMAGES_SCHEMA, files=2)
    assert two.attachments == ["first", "second"] and two.options == {}
    with pytest.raises(cp.CommandError, match="needs a file for first: attach a picture"):
        cp.parse("/morph-images to:cat", IMAGES_SCHEMA)
    with pytest.raises(cp.CommandError, match="takes 2 files"):
        cp.parse("/morph-images", IMAGES_SCHEMA, files=3)
    with pytest.raises(cp.CommandError, match="first is a file: attach it"):
        cp.parse("/morph-images first:cat.png", IMAGES_SCHEMA, files=1)
    with pytest.raises(cp.CommandError, match="takes no files"):
        cp.parse("/morph dog cat", SCHEMA, files=1)
