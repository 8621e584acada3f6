"""`attn explore` driven by Textual's Pilot: every number it shows, after every key, equals what
`attn inspect --json` prints for the same layer, head and query; `e` writes that very document."""

from __future__ import annotations

import asyncio
import json
import shlex
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import SENTENCE
from textual import events
from typer.testing import CliRunner

from attn_cli.cli import app as cli
from attn_cli.compute.explore import trace_text
from attn_cli.loading.model import load_model
from attn_cli.views.explorer.app import Explorer
from attn_cli.views.explorer.state import View, start_view
from attn_cli.views.explorer.widgets import Screenful

runner = CliRunner()
LLAMA = Path(__file__).parent / "fixtures" / "tiny" / "llama"
CAT = "The cat sat on the mat because it was tired."


@pytest.fixture(scope="module")
def minilm():
    return trace_text(load_model(), SENTENCE)


@pytest.fixture(scope="module")
def llama():
    return trace_text(load_model(LLAMA), CAT)


def drive(traced, view: View, keys: list[str], check, size=(80, 24), export_dir: Path | None = None):
    """Start the app at `view`, press `keys`, then return `check(app)` (called inside the app)."""

    async def go():
        explorer = Explorer(traced, view, export_dir)
        async with explorer.run_test(size=size) as pilot:
            await pilot.pause()
            for key in keys:
                await pilot.press(key)
                await pilot.pause()
            return check(explorer)

    return asyncio.run(go())


def shown(app: Explorer):
    """The parts of the screen shown (`frame.Parts`): header, title, strip, pane, keys."""
    return app.query_one(Screenful).parts


def header(app: Explorer) -> str:
    return " ".join(line.plain for line in shown(app).header)


def body(app: Explorer) -> list[str]:
    lines = shown(app).pane.body
    return [lines.line(n).plain for n in range(len(lines))]


def row(app: Explorer, index: int) -> list[str]:
    """The body row of token `index`, split into cells."""
    return next(line.split() for line in body(app) if line.split()[:1] == [str(index)])


def inspect_json(*args: str, text: str = SENTENCE, model: Path | None = None) -> dict:
    extra = ["-m", str(model)] if model else []
    result = runner.invoke(cli, ["inspect", text, *args, *extra, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_start_view_is_what_inspect_picks(minilm):
    view = start_view(minilm, "making", None, "-1", "auto", "token")
    doc = inspect_json("-q", "making")
    assert (view.layer, view.head, view.query) == (5, doc["layers"][0]["auto_head"], "making") == (5, 6, "making")
    first = start_view(minilm, None, None, "0", "3")  # no query: the first word, not [CLS]
    assert (first.query_index, first.layer, first.head) == (1, 0, 3)


@pytest.mark.parametrize(
    "keys, layer, head, query",
    [
        ([], 5, 6, 5),
        (["right", "right"], 5, 6, 7),
        (["left", "down", "down"], 3, 6, 4),
        (["right_square_bracket", "right_square_bracket", "left_square_bracket"], 5, 7, 5),
        (["up"], 5, 6, 5),  # the last layer: ↑ stays
        (["down", "m"], 4, "mean", 5),
        (["m", "m", "left_square_bracket"], 5, 5, 5),  # back from the mean to head 6, then 5
    ],
)
def test_keys_move_and_every_shown_number_equals_inspect_json(minilm, keys, layer, head, query):
    view = start_view(minilm, None, 5, "-1", "6")

    def check(app):
        return header(app), {j: row(app, j) for j in range(len(minilm.tokenization.tokens))}, app.view

    top, rows, shown = drive(minilm, view, keys, check)
    word = minilm.tokenization.tokens[query].text
    head_label = "mean" if head == "mean" else f"head {head}"
    assert f"layer {layer}/5 · {head_label} · query \"{word}\" (token {query})" in top
    assert (shown.layer, shown.head, shown.query_index) == (layer, head, query)
    doc = inspect_json("-i", str(query), "--layer", str(layer), "--head", str(head))
    h = doc["layers"][0]["heads"][12 if head == "mean" else head]
    assert h["head"] == head
    for j, cells in rows.items():  # '#', token, [Q·K, Q·K/√d_k,] weight, bar
        numbers = [c for c in cells[2:] if c.replace(".", "").replace("-", "").isdigit()]
        assert numbers[-1] == f"{h['weights'][j]:.3f}"
        if head != "mean":
            assert numbers[:2] == [f"{h['scores'][j]:.2f}", f"{h['scaled_scores'][j]:.2f}"]


def test_word_level_and_norms_show_inspects_numbers(minilm):
    view = start_view(minilm, "making", None, "-1", "6")
    shown = drive(minilm, view, ["w", "n"], lambda app: [line.split() for line in body(app)])
    doc = inspect_json("-q", "making", "--head", "6", "--level", "word", "--norms")
    h = doc["layers"][0]["heads"][6]
    assert [u["text"] for u in doc["units"]][2] == "Transformer"
    transformer = next(cells for cells in shown if "Transformer" in cells)
    assert transformer[0] == "2–3"
    assert transformer[2:5] == [f"{h['weights'][2]:.3f}", f"{h['value_norms'][2]:.2f}", f"{h['output_norms'][2]:.2f}"]


def test_multi_head_table_and_steps(minilm):
    view = start_view(minilm, "making", None, "-1", "6")
    heads = drive(minilm, view, ["a"], lambda app: (shown(app).pane.columns[0].plain, body(app)))
    doc = inspect_json("-q", "making", "--head", "all")
    language = next(line.split() for line in heads[1] if "language" in line)
    weights = [h["weights"][10] for h in doc["layers"][0]["heads"]]
    assert heads[0].split()[2:] == [*map(str, range(12)), "mean"]
    assert language[2:] == [("1.0" if w >= 0.995 else f"{w:.2f}"[1:]) for w in weights]

    steps = drive(minilm, view, ["s"], body)
    doc = inspect_json("-q", "making", "--head", "6", "--steps")["layers"][0]["heads"][6]["steps"]
    text = "\n".join(steps)
    assert "Step 1 · query, key and value vectors (head 6)" in text and "Step 3 · weighted sum" in text
    q = doc["query"]
    assert f"q(making) = [{q[0]:+.2f} {q[1]:+.2f}" in text
    out = doc["output"]
    assert f"output(making) = [{out[0]:+.2f} {out[1]:+.2f}" in text


def test_rollout_and_model_view_equal_their_commands(minilm):
    view = start_view(minilm, "making", None, "-1", "6")
    shown = drive(minilm, view, ["r"], body)
    roll = json.loads(runner.invoke(cli, ["rollout", SENTENCE, "-q", "making", "--json"]).stdout)
    language = next(line.split() for line in shown if "language" in line)
    assert language[2] == f"{roll['rollout'][10]:.3f}" and language[-1] == f"{roll['last_layer_mean'][10]:.3f}"

    grid = drive(minilm, view, ["g"], lambda app: (body(app), app.view))
    heads = json.loads(runner.invoke(cli, ["heads", SENTENCE, "-q", "making", "--json"]).stdout)
    assert grid[0][0].split()[0] == "5"  # the last layer on top
    layer0 = grid[0][-1].split()
    assert layer0[0] == "0"
    assert [c[: len(x)] for c, x in zip(layer0[1:], [h["top"]["text"][:5] for h in heads["layers"][0]["heads"]])] == [
        h["top"]["text"][:5] for h in heads["layers"][0]["heads"]
    ]
    # In the grid ↓ and [ move the cell, Enter opens it.
    opened = drive(minilm, view, ["g", "down", "left_square_bracket", "enter"], lambda app: (app.view.mode, app.view.layer, app.view.head))
    assert opened == ("weights", 4, 5)


def test_contributions_equal_their_command(minilm):
    view = start_view(minilm, "making", None, "-1", "6")
    shown = drive(minilm, view, ["c", "down"], lambda app: (body(app), app.view.layer))
    doc = json.loads(runner.invoke(cli, ["contrib", SENTENCE, "-q", "making", "--rollout", "--json"]).stdout)
    language = next(line.split() for line in shown[0] if "language" in line)
    assert shown[1] == 4 and language[2] == f"{doc['layers'][4]['contributions'][10] * 100:.1f}%"
    assert language[-1] == f"{doc['whole'][10] * 100:.1f}%"


def test_find_a_word_and_an_unknown_word(minilm):
    view = start_view(minilm, "making", None, "-1", "6")
    found = drive(minilm, view, ["slash", *"understand", "enter", "right"], lambda app: (header(app), app.view))
    assert 'query "to" (token 8)' not in found[0]
    assert found[1].query_index == 10  # "understand" is token 9; → moved on to 10
    kept = drive(minilm, view, ["slash", *"zebra", "enter"], lambda app: (app.view.query, app._notifications))
    assert kept[0] == "making"  # the query did not change
    assert any("zebra" in n.message for n in kept[1])


@pytest.mark.parametrize("keys", [[], ["w", "n"], ["s", "right_square_bracket"], ["m"], ["r"], ["g"], ["c"]])
def test_export_writes_exactly_what_the_command_prints(minilm, tmp_path, keys):
    view = start_view(minilm, "making", None, "-1", "6")

    def check(app):
        return app.view

    shown = drive(minilm, view, [*keys, "e", "enter"], check, export_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and not files[0].name.startswith(".")
    args = shlex.split(shown.command(shlex.quote(SENTENCE)))[1:-1]
    expected = runner.invoke(cli, [*args, "--json"])
    assert expected.exit_code == 0
    assert files[0].read_text(encoding="utf-8") == expected.stdout


def test_export_prompt_is_labelled_and_writes_nothing_before_enter(minilm, tmp_path):
    """`e` fills in a path: a label beside it says it is where the JSON will go, on Enter."""
    view = start_view(minilm, "making", None, "-1", "6")

    def check(app):
        label = app.query_one("#ask-label")
        shown = app.query_one("#ask").display and label.display and label.region.width > 0
        return shown, str(label.render()), app.query_one("#prompt").value

    shown, label, value = drive(minilm, view, ["e"], check, export_dir=tmp_path)
    assert shown and label == "export JSON to (Enter: write, Esc: cancel)"
    assert value.endswith(".json") and list(tmp_path.iterdir()) == []
    hidden = drive(minilm, view, ["e", "escape"], lambda app: app.query_one("#ask").display, export_dir=tmp_path)
    assert not hidden and list(tmp_path.iterdir()) == []


def test_export_to_a_missing_directory_says_so_and_writes_nothing(minilm, tmp_path):
    view = start_view(minilm, "making", None, "-1", "6")
    keys = ["e", *["backspace"] * 200, *str(tmp_path / "no" / "x.json"), "enter"]
    notes = drive(minilm, view, keys, lambda app: [n.message for n in app._notifications], export_dir=tmp_path)
    assert any("does not exist" in n for n in notes)
    assert list(tmp_path.iterdir()) == []


def test_decoder_masks_future_keys_and_names_the_kv_head(llama):
    view = start_view(llama, "sat", None, "-1", "2")
    top, rows, strip = drive(llama, view, [], lambda app: (header(app), body(app), shown(app).strip))
    assert '(kv 1, shared by 2–3) · query "sat" (token 3)' in top
    assert rows[-1].split()[:3] == ["4–24", "masked", "(future)"]
    doc = inspect_json("-q", "sat", "--head", "2", text=CAT, model=LLAMA)["layers"][0]
    assert doc["heads"][2]["kv_head"] == 1 and doc["visible"][4] is False
    assert [r.split()[-2] for r in rows[:4]] == [f"{w:.3f}" for w in doc["heads"][2]["weights"][:4]]
    # In the strip, keys the query may see are tinted by their weight; masked ones are dim.
    spans = {strip[0].plain[s.start : s.end].strip(): s.style for s in strip[0].spans if strip[0].plain[s.start : s.end].strip()}
    assert spans["on"].dim and not spans["cat"].dim and spans["cat"].bgcolor is not None


def test_clicking_a_token_makes_it_the_query_and_a_head_number_selects_it(minilm):
    view = start_view(minilm, "making", None, "-1", "6")

    async def go():
        app = Explorer(minilm, view)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            parts = shown(app)
            y = len(parts.header) + len(parts.title)  # the strip's first row
            await pilot.click(Screenful, offset=(parts.strip[0].plain.index("possible") + 1, y))
            await pilot.pause()
            query = app.view.query_index
            await pilot.press("a")
            await pilot.pause()
            parts = shown(app)
            y = len(parts.header) + len(parts.title) + len(parts.strip)  # the column titles' row
            await pilot.click(Screenful, offset=(parts.pane.columns[0].plain.index(" 9 ") + 1, y))
            await pilot.pause()
            return query, app.view.head

    assert asyncio.run(go()) == (7, 9)


def screen(app: Explorer) -> list[str]:
    """The screen as lines of text."""
    import io

    from rich.console import Console

    console = Console(width=app.size.width, height=app.size.height, file=io.StringIO(), record=True, force_terminal=True)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text().splitlines()


def test_a_resized_terminal_shows_the_screen_of_its_new_size(minilm):
    view = start_view(minilm, "making", None, "-1", "6")

    async def go(size, resize=None):
        app = Explorer(minilm, view)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            if resize:
                await pilot.resize_terminal(*resize)
                await pilot.pause()
                await pilot.pause()
            return screen(app)

    for size in [(120, 30), (60, 16)]:
        resized, fresh = asyncio.run(go((80, 24), size)), asyncio.run(go(size))
        assert resized == fresh and len(fresh) == size[1] and len(fresh[0]) == size[0]


def test_the_body_scrolls_under_the_pinned_lines(minilm):
    """PgDn, End, Home, the mouse wheel, a click on the scroll bar's track and dragging its thumb
    (a row of the bar is len(body)/rows lines) move the body rows only; the header, title, strip
    and top-attended lines stay where they are."""
    view = replace(start_view(minilm, "making", None, "-1", "6"), mode="steps")

    async def go():
        app = Explorer(minilm, view)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            widget = app.query_one(Screenful)
            start, rows = widget.rows()
            tops, screens = [widget.top], [screen(app)]
            for key in ["pagedown", "end", "home"]:
                await pilot.press(key)
                await pilot.pause()
                tops.append(widget.top)
                screens.append(screen(app))
            await pilot._post_mouse_events([events.MouseScrollDown], widget, offset=(10, start + 1))
            tops.append(widget.top)
            await pilot.mouse_down(widget, offset=(79, start + rows - 1))  # the track below the thumb: a page down
            await pilot.pause()
            tops.append(widget.top)
            await pilot.press("home")
            await pilot.mouse_down(widget, offset=(79, start))  # the thumb, dragged down one row
            await pilot.hover(widget, offset=(79, start + 1))
            await pilot.mouse_up(widget, offset=(79, start + 1))
            tops.append(widget.top)
            return start, rows, widget.body, tops, screens, round(app.scroll_sensitivity_y)

    start, rows, body, tops, screens, wheel = asyncio.run(go())
    last = len(body) - rows
    assert rows > 0 and last > 0  # the steps of the sentence are taller than the screen
    assert tops == [0, min(rows, last), last, 0, wheel, min(wheel + rows, last), round(len(body) / rows)]
    for top, lines in zip(tops, screens):
        assert lines[:start] == screens[0][:start] and lines[start + rows :] == screens[0][start + rows :]  # pinned
        assert [line[:60].rstrip() for line in lines[start : start + rows]] == [body.line(i).plain[:60].rstrip() for i in range(top, top + rows)]


def test_help_and_quit(minilm):
    view = start_view(minilm, "making", None, "-1", "6")

    async def go():
        app = Explorer(minilm, view)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("question_mark")
            await pilot.pause()
            helped = type(app.screen).__name__
            for key in "xg":  # any key closes the help; a second one before it has gone is no error
                app.screen.post_message(events.Key(key, key))
            await pilot.pause()
            closed = type(app.screen).__name__
            await pilot.press("q")
            await pilot.pause()
        return helped, closed, app.return_value

    assert asyncio.run(go()) == ("HelpScreen", "Screen", 0)


def test_no_color_still_shows_every_number(minilm, monkeypatch):
    """NO_COLOR: Textual's monochrome filter runs over every line we draw (and once failed on an
    unstyled segment); the numbers stay."""
    monkeypatch.setenv("NO_COLOR", "1")
    view = start_view(minilm, "making", None, "-1", "6")

    def check(app):
        import io

        from rich.console import Console

        console = Console(width=80, height=24, file=io.StringIO(), record=True, force_terminal=True)
        console.print(app.screen._compositor.render_update(full=True))
        return app.no_color, console.export_text()

    no_color, screen = drive(minilm, view, ["a"], check)
    assert no_color and ".63 .68 .27 .57" in screen and "(mean over heads)" in screen


def test_the_contrib_pane_on_a_family_alti_does_not_cover_names_the_command_that_works():
    """The library names the methods as arguments (`method='norms'`); the pane as the command that runs them."""
    from rich.console import Console

    from attn_cli.compute.explore import trace_text
    from attn_cli.loading.model import load_model
    from attn_cli.views.explorer.frame import _pane
    from attn_cli.views.explorer.state import View

    traced = trace_text(load_model(Path(__file__).parent / "fixtures" / "tiny" / "gemma3"), "hello there friend")
    pane = _pane(traced, View(0, 0, None, 1, mode="contrib"), None, 80, Console(width=80))
    assert [line.plain for line in pane.columns] == [
        "ALTI is not defined here for gemma3_text (its attention output is normalised before the residual sum)"
        " — use attn contrib --method value-zeroing or --method norms"
    ]
