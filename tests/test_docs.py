"""README is tested: every option of every command is documented, and every example parses as written."""

import re
import shlex
from pathlib import Path

import pytest
import typer

from colorize_cli.cli import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
COMMAND = typer.main.get_command(app)


def options_of(name: str) -> list[str]:
    command = COMMAND.commands[name]
    options = [opt for param in command.params if param.param_type_name == "option"
               for opt in param.opts if opt.startswith("--") and opt != "--help"]
    assert len(options) > 5, name
    return options


def examples() -> list[str]:
    """The `colorize ...` lines of README's sh blocks, comments and shell plumbing cut off."""
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            for part in re.split(r"\s*(?:&&|\|)\s*", line):
                if part.startswith("colorize "):
                    lines.append(part)
    return lines


@pytest.mark.parametrize("name", ["batch", "eval", "train"])
def test_every_option_appears_in_readme(name):
    missing = [opt for opt in options_of(name) if f"`{opt}" not in README and f"{opt} " not in README]
    assert missing == [], f"colorize {name}: options not in README.md: {missing}"


@pytest.mark.parametrize("line", examples())
def test_each_readme_example_parses_as_written(line):
    args = shlex.split(re.sub(r'"\$\(.*?\)"', "SAMPLES", line))[1:]
    name, rest = args[0], args[1:]
    assert name in COMMAND.commands, line
    command = COMMAND.commands[name]
    with command.make_context(name, rest, resilient_parsing=False) as context:
        assert context.params is not None


def test_readme_has_examples_of_every_command():
    assert {line.split()[1] for line in examples()} >= {"batch", "eval", "train"}
