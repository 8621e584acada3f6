"""The explorer's widgets: the screen of a view (one widget of a fixed size, drawn line by
line), the footer, and the `?` screen."""

from __future__ import annotations

from rich import box
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.geometry import Region
from textual.screen import ModalScreen
from textual.scrollbar import ScrollBarRender
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

from .frame import Parts, scroll_start
from .lines import Lines
from .state import help_keys


class Screenful(Widget, can_focus=False):
    """A view's screen above the footer: the header, title, token strip and column titles
    pinned above the scrolled body, the pane's `below` lines pinned under it. One widget whose
    size only a resize changes: a key changes its lines, never its layout, so Textual never
    lays the screen out again (that took ~15 ms of CPU and two or three refresh ticks when a
    pinned part or the body changed length). Only the rows whose strip changed are repainted,
    and the body's strips are built only for the rows in sight (a 500-row table costs what its
    20 visible rows cost) and kept with its lines (going back to a view re-renders nothing)."""

    DEFAULT_CSS = """
    Screenful { height: 1fr; }
    Screenful > .screenful--header { background: $panel; }
    """
    COMPONENT_CLASSES = {"screenful--header"}

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.parts: Parts | None = None
        self.top = 0  # the first body line in sight
        self._strips: list[Strip] = []  # the strip of each row, as shown
        self._grab: tuple[int, int] | None = None  # dragging the scroll bar: (mouse y, top) at the grab

    @property
    def body(self) -> Lines:
        return self.parts.pane.body if self.parts else Lines.of([])

    def rows(self) -> tuple[int, int]:
        """(the first screen row of the body, the number of body rows in sight)."""
        parts = self.parts
        if parts is None:
            return 0, 0
        start = len(parts.header) + len(parts.title) + len(parts.strip) + len(parts.pane.columns)
        return start, max(0, self.size.height - start - len(parts.pane.below))

    def show(self, parts: Parts) -> None:
        """Show `parts`, scrolling only if their focus (the query's row) would be out of sight."""
        self.parts = parts
        self.scroll_body(self.top, keep_focus=True)

    def scroll_body(self, top: int, keep_focus: bool = False) -> None:
        """Show the body from line `top` (kept within the body; with `keep_focus`, moved to
        bring the query's row into sight) and repaint the rows that changed."""
        _, rows = self.rows()
        if rows:
            self.top = scroll_start(self.body, rows, top) if keep_focus else max(0, min(top, len(self.body) - rows))
        self._paint()

    def page(self, step: int) -> None:
        self.scroll_body(self.top + step * self.rows()[1])

    def edge(self, end: int) -> None:
        self.scroll_body(len(self.body) if end else 0)

    def on_resize(self) -> None:
        self.scroll_body(self.top, keep_focus=True)

    # Drawing.

    def _paint(self) -> None:
        old, new = self._strips, self._row_strips()
        self._strips = new
        if len(old) != len(new):
            self.refresh()
            return
        for y, (was, now) in enumerate(zip(old, new)):
            if was is not now and was != now:
                self.refresh(Region(0, y, self.size.width, 1))

    def _row_strips(self) -> list[Strip]:
        """The strip of every row, top to bottom (as `frame.first_frame` lays out the same parts)."""
        parts, (width, height) = self.parts, self.size
        if parts is None or not width or not height:
            return []
        plain, header = self.rich_style, self.get_component_rich_style("screenful--header")
        pinned = [("header", parts.header, header), ("title", parts.title, plain), ("strip", parts.strip, plain), ("columns", parts.pane.columns, plain)]
        strips = [self._pinned(parts, name, n, text, style) for name, texts, style in pinned for n, text in enumerate(texts)]
        strips += self._body_strips(plain)
        strips += [self._pinned(parts, "below", n, text, plain) for n, text in enumerate(parts.pane.below)]
        return (strips + [Strip.blank(width, plain)] * (height - len(strips)))[:height]

    def _pinned(self, parts: Parts, name: str, n: int, text: Text, style: Style) -> Strip:
        key = (name, n, self.size.width, style)  # kept with the parts: a view seen before re-renders nothing
        if key not in parts.rendered:
            parts.rendered[key] = _strip(text, self.app.console, style).crop_extend(0, self.size.width, style)
        return parts.rendered[key]

    def _body_strips(self, style: Style) -> list[Strip]:
        """The body's rows in sight, and beside them the scroll bar if the body is longer."""
        body, (_, rows), width = self.body, self.rows(), self.size.width
        scrolled = len(body) > rows > 0
        inner = width - 1 if scrolled else width
        strips = []
        for i in range(self.top, self.top + rows):
            key = (i, inner, style)  # a line's strip is kept with the view's lines
            if i >= len(body):
                strips.append(Strip.blank(inner, style))
                continue
            if key not in body.rendered:
                body.rendered[key] = _strip(body.line(i), self.app.console, style).crop_extend(0, inner, style)
            strips.append(body.rendered[key])
        if scrolled:
            bar = self._scroll_bar(rows, style)
            # Joined as Textual's compositor joins two widgets' cells (which drops empty segments).
            strips = [Strip([*(s for s in strip if s.text), segment], width) for strip, segment in zip(strips, bar)]
        return strips

    def _scroll_bar(self, rows: int, base: Style) -> list[Segment]:
        """The vertical scroll bar's cell on each body row, as Textual's `ScrollBar` draws it
        (its colours; its segments' `@mouse.down` actions are this widget's `action_scroll_*`,
        `action_grab`)."""
        styles = self.styles
        background, color = styles.scrollbar_background, styles.scrollbar_color
        if background.a < 1:
            background = self.background_colors[0] + background
        color = background + color
        bar = ScrollBarRender.render_bar(size=rows, virtual_size=len(self.body), window_size=rows, position=self.top, thickness=1,
                                         vertical=True, back_color=background.rich_color, bar_color=color.rich_color)
        return [Segment(s.text, base + s.style) for s in bar.segments]

    def render_line(self, y: int) -> Strip:
        if y < len(self._strips):
            return self._strips[y]
        return Strip.blank(self.size.width, self.rich_style)

    # The mouse: the wheel scrolls the body; a click on the scroll bar pages, dragging its thumb scrolls.

    def on_mouse_scroll_down(self, event) -> None:
        event.stop()
        self.scroll_body(self.top + round(self.app.scroll_sensitivity_y))

    def on_mouse_scroll_up(self, event) -> None:
        event.stop()
        self.scroll_body(self.top - round(self.app.scroll_sensitivity_y))

    def action_scroll_up(self) -> None:
        self.page(-1)

    def action_scroll_down(self) -> None:
        self.page(1)

    def action_grab(self) -> None:
        self._grab = (int(self.app.mouse_position.y), self.top)
        self.capture_mouse()

    def on_mouse_move(self, event) -> None:
        if self._grab:
            y, top = self._grab
            _, rows = self.rows()
            self.scroll_body(top + round((int(event.screen_y) - y) * len(self.body) / max(1, rows)))

    def on_mouse_up(self) -> None:
        if self._grab:
            self._grab = None
            self.release_mouse()


class TextBlock(Widget):
    """The footer: a few lines of Rich Text drawn line by line (cheaper than a Static: no
    markup, no reflow); its height follows the number of lines, which only a resize changes."""

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
