"""Control and format characters in tokens are escaped before a table is measured, so that the
row holding one lines up with the rest (a NUL is no cell raw, four as `\\x00`; a zero-width
space none raw, six as `\\u200b`). One place for Rich tables (`views.terminal.visible`, on the
way out of every screen), one for the Rich-free `fit.Table` (when it is built)."""

from __future__ import annotations

from option_registry import TINY, runner
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from attn_cli.cli import app
from attn_cli.views.terminal.fit import Column, Table, plain
from attn_cli.views.terminal.visible import visible, visible_text
from attn_cli.views.text import printable


def screen(*args: str, input: str | None = None, columns: int = 80) -> str:
    result = runner.invoke(app, list(args), input=input, env={"COLUMNS": str(columns), "NO_COLOR": "1"})
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def test_format_characters_are_escaped_like_controls():
    assert printable("a\u202eb\u200bc\u200d\ufeff\u00ad\u2066") == "a\\u202eb\\u200bc\\u200d\\ufeff\\xad\\u2066"
    assert printable("\x00\x1b\n\u2028") == "\\x00\\x1b\\n\\u2028"
    assert printable("café 日本 🙂 e\u0301") == "café 日本 🙂 e\u0301"  # letters, wide and combining characters stay


def test_a_nul_token_lines_up_in_the_tokens_table():
    """The new-user sweep's `printf 'The\\x00cat' | attn tokens -`: the NUL's row was three cells
    wider than the others (escaped after Rich had sized the columns)."""
    out = screen("tokens", "-", "-m", str(TINY / "gpt2"), input="The\x00cat")
    assert out.splitlines() == [
        "#   token    id   start   end   word   ",
        "───────────────────────────────────────",
        "0   The     272       0     3   0: The ",
        "1   \\x00    188       3     4   1: \\x00",
        "2   c        66       4     5   2: cat ",
        "3   at      258       5     7   2: cat ",
    ]


def test_zero_width_and_right_to_left_tokens_line_up():
    out = screen("tokens", "-", "-m", str(TINY / "llama"), input="a\u202eb\u200bc")
    lines = out.splitlines()
    assert lines[4:7] == ["2   \\u202e    229       1     2   0: a\\u202eb", "3   +\\u202e   131       1     2   0: a\\u202eb",
                          "4   +\\u202e   177       1     2   0: a\\u202eb"]
    assert len({len(line) for line in lines}) == 1  # every line as wide: all ASCII now


def test_the_inspect_tables_line_up_around_a_nul():
    out = screen("inspect", "-", "-m", str(TINY / "gpt2"), "-i", "1", "-l", "0", input="The\x00cat sat", columns=60)
    lines = out.splitlines()
    assert "  0     The             -7.63     -1.91    0.444   ████" in lines
    assert "  1   ▶ \\x00            -6.74     -1.68    0.556   █████" in lines
    assert "  0   The           .44 .04 .92 .15  .39" in lines
    assert "  1 ▶ \\x00          .56 .96 .08 .85  .61" in lines


def test_the_contrib_table_lines_up_around_a_nul():
    lines = screen("contrib", "-", "-m", str(TINY / "gpt2"), "-i", "2", input="The\x00cat sat").splitlines()
    assert lines[3:7] == ["# token  L0  L1", "0  The    ·  10", "1  \\x00  88   8", "2 ▶c     12  82"]


def test_fit_tables_escape_labels_items_and_headers_before_measuring():
    table = Table([
        Column("#", cells=["0", "1"], key=True),
        Column("tok\u200b", "label", cells=[("a\x00", ""), ("bb", "")]),
        Column("top", "items", cells=[[[("\u202e", ""), (" 0.5", "")]], [[("x", ""), (" 0.5", "")]]]),
    ], gap=1)
    assert [plain(line) for line in table.lines(80)] == [
        "# tok\\u200b top",
        "──────────────────────",
        "0 a\\x00     \\u202e 0.5",
        "1 bb        x 0.5",
    ]


def test_visible_keeps_styles_on_the_characters_they_covered():
    text = Text.assemble(("a\x00", "bold"), ("b\u200bc", "red"), "\nd")
    shown = visible_text(text)
    assert shown.plain == "a\\x00b\\u200bc\nd"
    assert [(s.start, s.end, str(s.style)) for s in shown.spans] == [(0, 5, "bold"), (5, 13, "red")]


def test_visible_reaches_rich_table_headers_cells_and_title():
    table = RichTable("h\x00", title="t\u202e", box=None, show_header=True, pad_edge=False)
    table.add_row(Text("x\u200b", style="bold"))
    table.add_row("yy")
    console = Console(width=40, file=None, color_system=None, record=True, force_terminal=False)
    with console.capture() as captured:
        console.print(visible(table))
    assert captured.get().splitlines() == ["t\\u202e", "h\\x00  ", "x\\u200b", "yy     "]


def test_the_explorer_shows_an_escape_where_the_text_has_a_control_character():
    """`attn explore` lays out its own lines: a token's ESC or NUL reached the terminal raw
    (an ESC [2J clears it), and was measured raw. Its strip, rows and header now show escapes."""
    import io

    from attn_cli.compute.explore import trace_text
    from attn_cli.loading.model import load_model
    from attn_cli.views.explorer.frame import first_frame, screen_parts
    from attn_cli.views.explorer.state import start_view

    traced = trace_text(load_model(TINY / "gpt2"), "The\x00cat \x1b[2Jsat")
    view = start_view(traced, None, 1, "0", "0")
    console = Console(width=60, height=30, file=io.StringIO())
    lines = [line.plain for line in first_frame(screen_parts(traced, view, 60, 30, console), 60, 30)]
    assert not any(ch in line for line in lines for ch in "\x00\x1b")
    assert lines[0] == 'gpt2 · layer 0/1 · head 0 · query "\\x00" (token 1)'
    assert lines[2] == "The ▶\\x00 c at ␣ \\x1b [ 2 J s at "
    assert lines[6:8] == ["   0   The           -7.63   -1.91  0.444 ████████▌", "   1 ▶ \\x00          -6.74   -1.68  0.556 ██████████▌"]
    assert "Top-attended: \\x00 0.56 · The 0.44" in lines
