"""
Options declared once (chatd.service.options): the table makes twistd's
Options, the Settings and docs/options.md; a TOML config file takes the
same names, the command line wins, and anything wrong in the file is one
line naming the file, the key and why.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from twisted.python import usage

from chatd.net.door import Settings
from chatd.service.options import OPTIONS, Options, options_markdown, settings_of

REPO = Path(__file__).resolve().parents[2]


def parse(*args):
    options = Options()
    options.parseOptions(list(args))
    return options


def test_docs_options_md_is_made_from_the_table():
    """docs/options.md says what the table says: regenerate it with `python -m chatd.service.options`."""
    assert (REPO / "docs" / "options.md").read_text(encoding="utf-8") == options_markdown()


def test_every_option_is_in_twistd_s_options_and_every_setting_comes_from_one():
    """The command line knows each option of the table, and each Settings field is filled by exactly one option."""
    known = {name for name, *_ in Options.optParameters} | {name for name, *_ in Options.optFlags}
    assert known == {option.name for option in OPTIONS}
    filled = [option.setting for option in OPTIONS if option.setting is not None]
    assert sorted(filled) == sorted(field.name for field in attrs.fields(Settings))


def test_settings_come_from_the_options():
    """The Settings are made from the parsed options, and their defaults are the Settings' own."""
    settings = settings_of(parse("--rate", "7", "--sendq", "4096", "--name", "lab", "--charset", "latin1"))
    assert settings == Settings("lab", rate_lines_per_second=7.0, send_queue_bytes=4096, charset="iso8859-1")
    assert settings_of(parse("--name", "lab")) == Settings("lab"), "the defaults are the Settings' own"


def test_a_config_file_gives_values_by_the_options_names_and_the_command_line_wins(tmp_path):
    """A TOML file gives values and flags by the options' names, and the command line wins over it."""
    config = tmp_path / "chatd.toml"
    config.write_text('port = 9000\nname = "lab"\nno-web = true\nrate = 2.5\nno-irc = false\nhistory = 5\n')
    options = parse("--config", str(config), "--port", "9100")
    assert (options["port"], options["name"], options["no-web"], options["rate"], options["no-irc"],
            options["history"]) == (9100, "lab", 1, 2.5, 0, 5)
    assert parse(f"--config={config}")["port"] == 9000


@pytest.mark.parametrize("content, says", [
    ("prot = 8088\n", "prot: not an option of chatd"),
    ("port = 70000\n", "port: '70000' is not a port number (0-65535)"),
    ("no-web = \"yes\"\n", "no-web: 'yes' is not true or false"),
    ("port = true\n", "port: True is not a value for --port (a text or a number)"),
    ("[web]\nport = 1\n", "web: not an option of chatd"),
    ("worker = 2\n", "worker: not an option of chatd"),
    ("port = \n", "not TOML: Invalid value (at line 1, column 8)"),
])
def test_anything_wrong_in_a_config_file_is_one_line_naming_the_file_and_the_key(tmp_path, content, says):
    """
    A typo, a wrong value or type, a table, an internal option or bad TOML: one line naming the file, the key and
    why.
    """
    config = tmp_path / "chatd.toml"
    config.write_text(content)
    with pytest.raises(usage.UsageError) as failure:
        parse("--config", str(config))
    assert str(failure.value) == f"{config}: {says}"


def test_a_config_file_that_cannot_be_read_says_so(tmp_path):
    """A config file that cannot be read is one line naming it and why."""
    with pytest.raises(usage.UsageError) as failure:
        parse("--config", str(tmp_path / "missing.toml"))
    assert str(failure.value) == f"{tmp_path / 'missing.toml'}: cannot read it: No such file or directory"


def test_motd_file_is_read_once_cleaned_and_bounded(tmp_path):
    """--motd-file: its lines, control characters cleaned, at most a screenful; an unreadable one is one line."""
    motd = tmp_path / "motd"
    motd.write_text("Soldering at six\n\x1b[31mred\x07\n" + "more\n" * 100)
    options = Options()
    options.parseOptions(["--motd-file", str(motd), "--no-store"])
    lines = settings_of(options).motd
    assert lines[0] == "Soldering at six" and "\x1b" not in lines[1] and "\x07" not in lines[1] and len(lines) == 50
    with pytest.raises(usage.UsageError, match="--motd-file: cannot read"):
        Options().parseOptions(["--motd-file", str(tmp_path / "missing")])
