"""The explorer's widgets: the scrolled body (which builds only the lines in sight) and the
`?` screen."""

from __future__ import annotations

from rich import box
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.geometry import Size
from textual.screen import ModalScreen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

from .frame import scroll_start
from .lines import Lines
from .state import help_keys


class Body(ScrollView, can_focus=False):
    """A view's rows, scrolled with the mouse wheel and PgUp/PgDn; rendered line by line, so
    a 500-row table costs what its 20 visible rows cost."""

    DEFAULT_CSS = "Body { height: 1fr; scrollbar-size-vertical: 1; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lines = Lines.of([])
        self._style = None

    def show(self, lines: Lines) -> None:
        """Show `lines`, scrolling only if their focus (the query's row) would be out of sight."""
        self.lines = lines
        self._style = self.rich_style  # computing it costs ~0.5 ms: once per view, not per line
        size = Size(self.size.width, len(lines))
        if size != self.virtual_size:  # a new virtual size re-lays the screen out: only when it changes
            self.virtual_size = size
        top = scroll_start(lines, self.size.height, int(self.scroll_y))
        if self.size.height and top != int(self.scroll_y):
            self.scroll_to(y=top, animate=False, immediate=True)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        i = int(self.scroll_offset.y) + y
        width, style = self.size.width, self._style or self.rich_style
        if i >= len(self.lines):
            return Strip.blank(width, style)
        x = int(self.scroll_offset.x)
        key = (i, x, width, style)  # a line's strip is kept with the view's lines: going back to a view re-renders nothing
        if key not in self.lines.rendered:
            self.lines.rendered[key] = _strip(self.lines.line(i), self.app.console, style).crop_extend(x, x + width, style)
        return self.lines.rendered[key]


class TextBlock(Widget):
    """A few lines of Rich Text drawn line by line (cheaper than a Static: no markup, no
    reflow); its height follows the number of lines, so the layout changes only when that does."""

    DEFAULT_CSS = "TextBlock { height: 0; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lines: list[Text] = []

    def set(self, lines: list[Text]) -> None:
        """Show `lines`; nothing to redraw if they are the lines shown."""
        if _same(lines, self.lines):
            return
        self.lines = lines
        if self.styles.height is None or self.styles.height.value != len(lines):
            self.styles.height = len(lines)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        style = self.rich_style
        if y >= len(self.lines):
            return Strip.blank(self.size.width, style)
        return _strip(self.lines[y], self.app.console, style).crop_extend(0, self.size.width, style)


def _same(a: list[Text], b: list[Text]) -> bool:
    """The same characters in the same styles (Text's own == leaves out the base style)."""
    return a is b or (len(a) == len(b) and all(x.plain == y.plain and x.style == y.style and x.spans == y.spans for x, y in zip(a, b)))


def _strip(text: Text, console, base: Style) -> Strip:
    """One line of Text as a Strip over the widget's own style: every segment gets a style
    (Textual's NO_COLOR filter fails on a segment without one)."""
    return Strip(list(Segment.apply_style(text.render(console, end=""), base)))


class HelpScreen(ModalScreen[None]):
    """The key table (`?`); any key or click closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Static { width: auto; max-width: 100%; height: auto; max-height: 100%; border: round $accent; padding: 0 1; background: $surface; }
    """

    def __init__(self, cross: bool = True) -> None:
        """`cross`: the model has cross-attention, so `k` is listed."""
        super().__init__()
        self.cross = cross

    def compose(self) -> ComposeResult:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title="attn explore · keys", title_style="bold")
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("what it does")
        for key, what in help_keys(self.cross):
            table.add_row(key, what)
        table.add_row("PgUp PgDn", "scroll; also the mouse wheel")
        table.add_row("click", "a token: make it the query; a head's number: select it")
        yield Static(table)

    _gone = False

    def on_key(self, event) -> None:
        event.stop()
        self._close()

    def on_click(self) -> None:
        self._close()

    def _close(self) -> None:
        """Once: a second key can arrive before the screen has gone."""
        if not self._gone:
            self._gone = True
            self.dismiss()
