"""The README is a user's page and the reference lives in docs/: held by tests so that neither
drifts. The README stays short (≤ 250 lines) and starts with the two commands a fresh machine
needs, the second being what CI runs; every link from the README or a docs/ page to a docs/ page
(and its #anchor) resolves; the README's command table names every command; docs/options.md
names every option of every command; and the README's screens are what attn prints today.

The exactness table (docs/exactness.md) is checked against a fresh measurement in
test_claims.py."""

from __future__ import annotations

import re
import shlex
import unicodedata
from pathlib import Path

import pytest
import typer.main
from helpers import attn

from attn_cli.cli.commands import COMMANDS, full_app

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 250
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped (not - or _),
    spaces to hyphens."""
    heading = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    kept = "".join(c for c in heading if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (code blocks left out; repeats get -1, -2...)."""
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", text(path)).splitlines():
        m = re.match(r"#{1,6} (.+)", line)
        if m:
            s = slug(m.group(1))
            out.add(s if s not in seen else f"{s}-{seen[s]}")
            seen[s] = seen.get(s, 0) + 1
    return out


def local_links(path: Path) -> list[tuple[Path, str]]:
    """(target file, anchor or '') of every relative link in a Markdown file, code blocks left out."""
    links = []
    for target in LINK.findall(FENCE.sub("", text(path))):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        links.append(((path.parent / file).resolve() if file else path, anchor))
    return links


def test_readme_is_a_page_not_a_manual():
    lines = text(README).count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move reference material into docs/ (≤ {MAX_README_LINES})"


def test_every_docs_link_in_the_readme_resolves():
    to_docs = [(f, a) for f, a in local_links(README) if DOCS in f.parents]
    assert len({f for f, _ in to_docs}) >= 10  # the README points to the reference pages
    for file, anchor in to_docs:
        assert file.is_file(), f"README links to {file.relative_to(ROOT)}, which does not exist"
        assert not anchor or anchor in anchors(file), f"README links to {file.relative_to(ROOT)}#{anchor}: no such heading"


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_links_between_docs_resolve(page):
    for file, anchor in local_links(page):
        if file.suffix != ".md":
            assert file.exists(), f"{page.name} links to {file}, which does not exist"
            continue
        assert file.is_file(), f"{page.name} links to {file}, which does not exist"
        assert not anchor or anchor in anchors(file), f"{page.name} links to {file.name}#{anchor}: no such heading"


def test_the_first_screen_gives_the_two_commands_and_ci_runs_the_second():
    """One command sets up and runs attn on the bundled model, one sets up and runs the tests
    (what .ci/run runs); nothing else to type on the first screen."""
    readme = text(README)
    first = FENCE.search(readme)
    assert readme[: first.start()].count("\n") < 24
    commands = [line for line in first.group(2).splitlines() if line.strip()]
    assert len(commands) == 2, commands
    run, test = commands
    assert run.startswith("uv run attn inspect ") and "--group" not in run and "--model" not in run and " -m " not in run
    assert test == "uv run --group test pytest"
    ci = [line.strip() for line in text(ROOT / ".ci" / "run").splitlines() if line.strip().startswith("uv run")]
    assert ci == [test]
    second = FENCE.search(readme, first.end())
    assert readme[: second.start()].count("\n") >= 24, "a second code block on the first screen"


def test_the_readme_says_how_long_the_tests_take_and_how_to_get_a_bare_attn():
    readme = text(README)
    assert re.search(r"~?5–10 minutes on a 2-core machine", readme)
    assert "source .venv/bin/activate" in readme
    install = readme.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    assert all(way in install for way in ("uv tool install .", "pipx install .", "pip install ."))  # scripts/check_install.py checks each


def test_the_readme_command_table_names_every_command():
    section = text(README).split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^\| `attn ([a-z]+)", section, re.M))
    assert named == set(COMMANDS)


def options_by_command() -> dict[str, set[str]]:
    """command -> every long option spelling it takes (both sides of --flag/--no-flag)."""
    root = typer.main.get_command(full_app())
    out = {"attn": {o for p in root.params for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}}
    for name, command in root.commands.items():
        out[name] = {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}
    return {name: opts - {"--help"} for name, opts in out.items()}


def test_docs_options_names_every_option_of_every_command():
    """docs/options.md has a section per command naming each of its options: a new option is
    documented where a user looks for it."""
    page = text(DOCS / "options.md")
    sections = dict(re.findall(r"^## `attn ([a-z]+)`\n(.*?)(?=^## |\Z)", page, re.M | re.S))
    sections["attn"] = page.split("\n## The app", 1)[1]
    missing = []
    for command, opts in options_by_command().items():
        assert command in sections, f"docs/options.md has no section for attn {command}"
        missing += [f"{command} {o}" for o in sorted(opts) if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", sections[command])]
    assert not missing, f"docs/options.md does not mention: {', '.join(missing)}"


def screens(markdown: str) -> list[tuple[str, str]]:
    """(command line, the screen printed under it) of each ```text block starting with `$ attn`."""
    out = []
    for lang, body in FENCE.findall(markdown):
        if lang == "text" and body.startswith("$ attn "):
            command, _, screen = body.partition("\n")
            out.append((command[2:], screen))
    return out


README_SCREENS = screens(text(README))


def test_the_readme_shows_screens():
    assert len(README_SCREENS) >= 2


@pytest.mark.parametrize(("command", "screen"), README_SCREENS, ids=[c.split(" -")[0] for c, _ in README_SCREENS])
def test_readme_screens_are_what_attn_prints(command, screen):
    """The README's screens are copies of attn's output on the bundled model, 80 columns, piped."""
    args = shlex.split(command)[1:]
    assert "-m" not in args and "--model" not in args  # the bundled model: nothing to download
    r = attn(*args, env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert r.returncode == 0, r.stderr

    def lines(s: str) -> list[str]:
        return [line.rstrip() for line in s.rstrip("\n").splitlines()]

    assert lines(r.stdout) == lines(screen)


def test_the_readme_names_every_packaged_model_for_model():
    """The README's --model sentence said `smollm2`/`gemma3` after mpnet and nomic-embed were packaged."""
    from attn_cli.loading.packaged import PACKAGED

    sentence = " ".join(text(README).split("`--model`/`-m` takes", 1)[1].split(".\n", 1)[0].split())
    assert all(f"`{name}`" in sentence for name in PACKAGED), sentence
    assert "ollama:" in sentence and "lmstudio:" in sentence
