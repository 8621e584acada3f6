"""`attn explore`: one text's attention, explored with the keyboard and mouse (Textual).

The forward pass has run before the app starts (`compute.explore.TracedText`); a key press
changes the `View` and re-reads the kept traces through the functions `attn inspect` uses, so
each redraw is a few milliseconds and every number equals `attn inspect --json`'s.
"""

from __future__ import annotations

import json
from pathlib import Path

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, Label

from ...compute.explore import TracedText
from ...errors import AttnError
from .frame import FirstFrame, screen_parts
from .state import COMMAND_OF_MODE, View, switched
from .widgets import HelpScreen, Screenful, TextBlock

_KEPT_SCREENS = 64  # views whose screens are kept (each: a few Text lines, and the body lines built so far)


def _keys(*pairs) -> list[Binding]:
    return [Binding(key, action, show=False) for key, action in pairs]


class Explorer(App[int]):
    """The explorer of one traced text, starting at `view`."""

    TITLE = "attn explore"
    ENABLE_COMMAND_PALETTE = False
    AUTO_FOCUS = None  # keys go to the app; the prompt takes them only while open
    CSS = """
    Screen { layout: vertical; }
    #keys { background: $panel; }
    #ask { display: none; height: 1; }
    #ask.shown { display: block; }
    #ask-label { width: auto; height: 1; padding: 0 1; background: $accent; color: $text; text-style: bold; }
    #prompt { height: 1; width: 1fr; border: none; padding: 0 1; }
    """
    BINDINGS = _keys(
        ("left", "query(-1)"), ("right", "query(1)"), ("up", "layer(1)"), ("down", "layer(-1)"),
        ("right_square_bracket", "move_head(1)"), ("left_square_bracket", "move_head(-1)"), ("m", "mean"),
        ("a", "mode('heads')"), ("s", "mode('steps')"), ("r", "mode('rollout')"), ("g", "mode('grid')"),
        ("c", "mode('contrib')"), ("k", "kind"), ("w", "level"), ("n", "norms"), ("slash", "find"), ("e", "export"), ("question_mark", "help"),
        ("enter", "open"), ("q", "quit"), ("escape", "back"), ("pageup", "page(-1)"), ("pagedown", "page(1)"),
        ("home", "edge(0)"), ("end", "edge(1)"),
    )

    def __init__(
        self, traced: TracedText, view: View, export_dir: Path | None = None, first_frame: FirstFrame | None = None,
        kinds: dict[str, TracedText] | None = None,
    ) -> None:
        """`kinds`: an encoder–decoder's three attentions (`compute.explore.trace_pair`), which
        `k` switches between; `traced` is one of them."""
        super().__init__(driver_class=_after(first_frame) if first_frame else None)
        self.traced, self.view = traced, view
        self.kinds = kinds or {}
        self._shown: dict[tuple, object] = {}  # (attention kind, view, width, height) -> its screen's parts
        self.export_dir = export_dir or Path.cwd()
        self._asking: str | None = None  # "find" or "export" while the prompt is open

    def compose(self) -> ComposeResult:
        yield Screenful(id="view")  # everything above the prompt and the footer
        with Horizontal(id="ask"):  # the prompt of / and e: a label says what Enter will do
            yield Label(id="ask-label")
            yield Input(id="prompt")
        yield TextBlock(id="keys")

    def on_mount(self) -> None:
        self.redraw()

    def on_resize(self) -> None:
        self.call_after_refresh(self.redraw)  # once the new size is the app's (it is not yet, in this handler)

    # What is shown.

    def result(self):
        return self.traced.inspect(**self.view.query_args(), **self.view.inspect_options())

    def redraw(self) -> None:
        """Show the current view: its parts are built once per view and screen size (going back
        to a view is a look-up), and only the rows that changed are redrawn."""
        key = (self.traced.kind, self.view, self.size.width, self.size.height)
        if key not in self._shown:
            if len(self._shown) >= _KEPT_SCREENS:
                self._shown.pop(next(iter(self._shown)))
            self._shown[key] = screen_parts(self.traced, self.view, self.size.width, self.size.height, self.console)
        parts = self._shown[key]
        self.query_one(Screenful).show(parts)
        self.query_one("#keys", TextBlock).set(parts.keys)

    def go(self, view: View) -> None:
        if view != self.view:
            self.view = view
            self.redraw()

    # Keys and clicks.

    def action_query(self, step: int) -> None:
        q = self.traced.resolve(**self.view.query_args())
        self.go(self.view.token(q, step, len(self.traced.queries.tokens)))

    def action_pick(self, index: int) -> None:
        self.go(self.view.at_token(index))

    def action_layer(self, step: int) -> None:
        self.go(self.view.move_layer(step, self.traced.spec.layers))

    def action_move_head(self, step: int) -> None:
        self.go(self.view.move_head(step, self.traced.spec.heads))

    def action_head(self, head) -> None:
        self.go(self.view.at_head(head))

    def action_cell(self, layer: int, head: int) -> None:
        self.go(self.view.at_head(head).move_layer(layer - self.view.layer, self.traced.spec.layers))

    def action_mean(self) -> None:
        self.go(self.view.toggle_mean())

    def action_kind(self) -> None:
        """The next of an encoder–decoder's attentions: encoder, decoder, cross. The layer and head
        are kept where the new kind has them; the query too between decoder and cross (both a
        target token), else the first word of the other sequence."""
        if not self.kinds:
            s2s = self.traced.model.has_cross_attention
            self.notify("start attn explore with --target TEXT to switch to the decoder's and cross-attention" if s2s else
                        "k switches an encoder–decoder's attentions (T5, BART, Marian); this model has one kind", timeout=5)
            return
        order = list(self.kinds)
        kind = order[(order.index(self.traced.kind) + 1) % len(order)]
        self.traced, self.view = switched(self.traced, self.kinds[kind], self.view)
        self.redraw()

    def action_mode(self, mode: str) -> None:
        self.go(self.view.toggle_mode(mode))

    def action_open(self) -> None:
        if self.view.mode == "grid":
            self.go(self.view.toggle_mode("grid"))

    def action_back(self) -> None:
        if self.view.mode != "weights":
            self.go(self.view.toggle_mode(self.view.mode))

    def action_level(self) -> None:
        if self.view.mode == "steps":
            self.notify("the steps are token vectors: leave them (s) for word level", severity="warning")
            return
        self.go(self.view.toggle_level())

    def action_norms(self) -> None:
        self.go(self.view.toggle_norms())

    def action_page(self, step: int) -> None:
        self.query_one(Screenful).page(step)

    def action_edge(self, end: int) -> None:
        self.query_one(Screenful).edge(end)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.traced.model.has_cross_attention))

    def action_quit(self) -> None:
        self.exit(0)

    # The prompt: `/` a word to query, `e` a file to export to.

    def action_find(self) -> None:
        self._ask("find", "", "query word (Enter: go, Esc: cancel)", "WORD, WORD#N or @N")

    def action_export(self) -> None:
        # The path is filled in, so the label must say that nothing is written until Enter.
        self._ask("export", str(self.export_dir / self.export_name()), "export JSON to (Enter: write, Esc: cancel)", "a file path")

    def _ask(self, what: str, value: str, label: str, placeholder: str) -> None:
        prompt = self.query_one("#prompt", Input)
        self._asking = what
        self.query_one("#ask-label", Label).update(label)
        prompt.placeholder, prompt.value = placeholder, value
        self.query_one("#ask").add_class("shown")
        prompt.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        what, value = self._asking, event.value.strip()
        self._close_prompt()
        if not value:
            return
        try:
            if what == "find":
                self.traced.resolve(value)  # an error here names the words it could be
                self.go(self.view.at_word(value))
            else:
                path = self.write_export(Path(value))
                self.notify(f"wrote {path}\n(= {self.view.command()})", timeout=6)
        except AttnError as exc:
            self.notify(f"{exc.message} — {exc.fix}", severity="error", timeout=8)

    def on_key(self, event) -> None:
        if event.key == "escape" and self._asking:
            event.stop()
            self._close_prompt()

    def _close_prompt(self) -> None:
        self.query_one("#ask").remove_class("shown")
        self._asking = None
        self.set_focus(None)

    # Export.

    def export_name(self) -> str:
        v = self.view
        q = self.traced.resolve(**v.query_args()).token_indices[0]
        which = COMMAND_OF_MODE[v.mode]
        if which == "inspect":
            return f"attn-inspect-L{v.layer}-H{v.head}-t{q}.json"
        return f"attn-{which}-t{q}.json"

    def document(self) -> dict:
        """The document that `self.view.command()` prints: `attn inspect --json` for the
        weights, heads and steps views, `attn rollout --json`, `attn heads --json`."""
        v = self.view
        which = COMMAND_OF_MODE[v.mode]
        if which == "rollout":
            return self.traced.rollout(**v.query_args(), level=v.level).to_json()
        if which == "heads":
            return self.traced.heads(**v.query_args()).to_json()
        if which == "contrib":
            return self.traced.contributions(**v.query_args()).to_json()
        return self.result().to_json()

    def write_export(self, path: Path) -> Path:
        """The view's JSON, written to a temporary file then renamed (never half-written)."""
        from ..files import write_file

        data = (json.dumps(self.document(), ensure_ascii=False) + "\n").encode("utf-8")
        return write_file(path.expanduser(), lambda f: f.write(data))


def _after(frame: FirstFrame):
    """Textual's terminal driver, for a terminal on which `frame` is painted: Textual owns the
    terminal from its start on, on the alternate screen the frame has entered (entering it
    again would clear the frame, in xterm, and save the cursor a second time)."""
    from textual.drivers.linux_driver import LinuxDriver

    class AfterFirstFrame(LinuxDriver):
        _entered = True  # the first start finds the alternate screen on; a resume (after Ctrl-Z) does not

        def start_application_mode(self) -> None:
            frame.handed_over = True
            super().start_application_mode()
            self._entered = False

        def write(self, data: str) -> None:
            if not (data == "\x1b[?1049h" and self._entered):
                super().write(data)

    return AfterFirstFrame
