"""The source pane: a project file, highlighted by Pygments, with line numbers and a cursor line.

A Line API widget (only the visible lines are rendered).  A file opens at once as plain text and is
lexed into per-line tokens on a thread (Pygments needs ~0.15 s to compile its Python lexer and ~0.15 s
per 1,000 lines on a slow machine), then repainted in colour; lexed files are cached until they change.
Token colours come from component classes in the .tcss, so themes and NO_COLOR apply to code like everything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pygments.token import Comment, Keyword, Name, Number, Operator, String, Token
from rich.segment import Segment
from rich.style import Style
from textual import work
from textual.binding import Binding
from textual.events import Click
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from skyline_tui.report import ErrorInfo

# Token families we colour, most specific first; each is a component class ("source--<name>").
_TOKEN_CLASSES = (
    (Comment, "comment"),
    (String, "string"),
    (Number, "number"),
    (Keyword, "keyword"),
    (Name.Function, "function"),
    (Name.Class, "class"),
    (Name.Decorator, "decorator"),
    (Name.Builtin, "builtin"),
    (Operator, "operator"),
)

Tokens = tuple[tuple[str, Optional[str]], ...]  # (text, component class name or None) per token


@dataclass(frozen=True)
class LexedFile:
    path: Path
    mtime_ns: int
    lines: tuple[Tokens, ...]
    width: int  # cells of the longest line
    highlighted: bool = True  # False: plain text shown while the lexer runs


def _read(path: Path) -> tuple[int, str] | LexedFile:
    try:
        stat = path.stat()
        return stat.st_mtime_ns, path.read_text(encoding="utf-8", errors="replace").expandtabs(4)
    except OSError as exc:
        return LexedFile(path, 0, ((((f"cannot read {path}: {exc.strerror or exc}"), "comment"),),), 60)


def plain_file(path: Path) -> LexedFile:
    """The file as uncoloured lines: what is shown until :func:`lex_file` is done."""
    read = _read(path)
    if isinstance(read, LexedFile):
        return read
    mtime_ns, code = read
    lines = tuple(((line, None),) if line else () for line in code.splitlines() or [""])
    return LexedFile(path, mtime_ns, lines, max((len(line[0][0]) for line in lines if line), default=0), False)


def lex_file(path: Path) -> LexedFile:
    """Read and tokenise a file; unreadable files come back as one explanatory line."""
    from pygments.lexers import PythonLexer, get_lexer_for_filename  # only ever on the lexing thread
    from pygments.util import ClassNotFound

    read = _read(path)
    if isinstance(read, LexedFile):
        return read
    mtime_ns, code = read
    if path.suffix in (".py", ".pyi", ""):
        # Not get_lexer_for_filename: its first call scans every lexer and plugin (~0.6 s at start-up).
        lexer = PythonLexer(stripnl=False, ensurenl=False)
    else:
        try:
            lexer = get_lexer_for_filename(path.name, stripnl=False, ensurenl=False)
        except ClassNotFound:
            lexer = PythonLexer(stripnl=False, ensurenl=False)
    lines: list[Tokens] = []
    current: list[tuple[str, Optional[str]]] = []
    cache: dict[object, Optional[str]] = {}
    for token_type, value in lexer.get_tokens(code):
        css = cache.get(token_type, "")
        if css == "":
            css = cache[token_type] = _class_for(token_type)
        # A token may span lines (docstrings): split it so every line stands alone.
        parts = value.split("\n")
        for i, part in enumerate(parts):
            if i:
                lines.append(tuple(current))
                current = []
            if part:
                current.append((part, css))
    if current or not lines:
        lines.append(tuple(current))
    width = max((sum(len(text) for text, _ in line) for line in lines), default=0)
    return LexedFile(path, mtime_ns, tuple(lines), width)


def _class_for(token_type: object) -> Optional[str]:
    for family, name in _TOKEN_CLASSES:
        if token_type in family:
            return name
    return None if token_type is not Token else None


class SourceView(ScrollView, can_focus=True):
    """Shows one file; ``line`` is the 1-based cursor line; ``marked`` lines belong to the selected row."""

    COMPONENT_CLASSES = {
        "source--gutter",
        "source--gutter-cursor",
        "source--cursor",
        "source--marked",
        "source--error",
        *(f"source--{name}" for _, name in _TOKEN_CLASSES),
    }
    BINDINGS = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "move_to(1)", "Top", show=False),
        Binding("end,G", "move_to(-1)", "Bottom", show=False),
    ]

    class CursorMoved(Message):
        """The cursor is on ``line`` of ``file`` (relative to the project root)."""

        def __init__(self, file: str, line: int) -> None:
            super().__init__()
            self.file = file
            self.line = line

    cursor: reactive[int] = reactive(1, always_update=False, repaint=False)

    def __init__(self, *, id: Optional[str] = None, classes: Optional[str] = None) -> None:
        super().__init__(id=id, classes=classes)
        self.file: Optional[str] = None  # the name shown and reported (relative to the project root)
        self._lexed: Optional[LexedFile] = None
        self._cache: dict[Path, LexedFile] = {}
        self._marked: frozenset[int] = frozenset()
        self._error_line: Optional[int] = None
        self._styles: dict[str, Style] = {}

    # ---- what to show (called by the app) -------------------------------------------------------

    def show_file(self, path: Path, name: str, line: Optional[int] = None) -> None:
        """Open ``path`` (re-lexed only when it changed on disk) and put the cursor on ``line``."""
        lexed = self._cache.get(path)
        try:
            changed = lexed is None or path.stat().st_mtime_ns != lexed.mtime_ns
        except OSError:
            changed = True
        if changed:
            lexed = plain_file(path)
            self._lex_in_background(path)
        assert lexed is not None
        self.file = name
        self.border_title = name
        self._show(lexed)
        self.move_cursor(line if line is not None else self.cursor, center=line is not None)

    def reload(self) -> None:
        """Show the open file's text as it is on disk now, if it changed (the cursor stays)."""
        if self._lexed is not None and self.file is not None:
            self.show_file(self._lexed.path, self.file)

    @property
    def highlighted(self) -> bool:
        """Whether the open file is shown in colour (lexing done)."""
        return self._lexed is not None and self._lexed.highlighted

    def _show(self, lexed: LexedFile) -> None:
        if lexed is not self._lexed:
            self._lexed = lexed
            self.virtual_size = Size(self._gutter_width + lexed.width + 1, len(lexed.lines))
            self.refresh()

    @work(thread=True, group="lex", exit_on_error=False)
    def _lex_in_background(self, path: Path) -> None:
        lexed = lex_file(path)
        self.app.call_from_thread(self._lexed_ready, lexed)

    def _lexed_ready(self, lexed: LexedFile) -> None:
        self._cache[lexed.path] = lexed
        if self._lexed is not None and self._lexed.path == lexed.path:
            self._show(lexed)

    def set_marked(self, lines: frozenset[int] | set[int]) -> None:
        self._marked = frozenset(lines)
        self.refresh()

    def set_error_line(self, line: Optional[int]) -> None:
        self._error_line = line
        self.refresh()

    def show_error(self, root: Path, error: Optional[ErrorInfo]) -> None:
        """Open the error's file (relative to the project ``root``) at its line, marked; nothing to do for an
        error without a file.  The profile app's and the run view's error key both land here."""
        if error is None or error.file is None:
            return
        self.show_file(root / error.file, error.file, error.line)
        self.set_error_line(error.line)

    @property
    def line_count(self) -> int:
        return len(self._lexed.lines) if self._lexed else 0

    # ---- cursor -------------------------------------------------------------------------------

    def move_cursor(self, line: int, center: bool = False) -> None:
        line = max(1, min(line, self.line_count or 1))
        previous = self.cursor
        self.cursor = line
        region = Region(0, line - 1, 1, 1)
        self.scroll_to_region(region, animate=False, center=center, immediate=True, x_axis=False)
        self.refresh()
        if self.file is not None and (line != previous or center):
            self.post_message(self.CursorMoved(self.file, line))

    def action_move(self, delta: int) -> None:
        self.move_cursor(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self.move_cursor(self.cursor + direction * max(1, self.scrollable_content_region.height - 1))

    def action_move_to(self, line: int) -> None:
        self.move_cursor(self.line_count if line < 0 else line)

    def on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is not None:
            self.move_cursor(self.scroll_offset.y + offset.y + 1)

    # ---- rendering ----------------------------------------------------------------------------

    @property
    def _gutter_width(self) -> int:
        return len(str(max(self.line_count, 1))) + 2

    def notify_style_update(self) -> None:
        self._styles.clear()  # theme or CSS changed: look the component styles up again
        super().notify_style_update()

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            style = self._styles[name] = self.get_component_rich_style(f"source--{name}", partial=True)
        return style

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        index = scroll_y + y
        base = self.rich_style
        if self._lexed is None or index >= len(self._lexed.lines):
            return Strip.blank(width, base)
        number = index + 1
        if number == self._error_line:
            line_style = base + self._style("error")
        elif number == self.cursor and self.has_focus:
            line_style = base + self._style("cursor")
        elif number in self._marked:
            line_style = base + self._style("marked")
        elif number == self.cursor:
            line_style = base + self._style("cursor")
        else:
            line_style = base
        gutter_width = self._gutter_width
        gutter_class = "gutter-cursor" if number == self.cursor else "gutter"
        marker = "✗" if number == self._error_line else "▶" if number in self._marked else " "
        gutter = Segment(f"{number:>{gutter_width - 2}}{marker} ", line_style + self._style(gutter_class))
        code = Strip(
            [Segment(text, line_style + self._style(css)) if css else Segment(text, line_style)
             for text, css in self._lexed.lines[index]]
        )
        code = code.crop_extend(scroll_x, scroll_x + max(0, width - gutter_width), line_style)
        return Strip([gutter, *code], width).simplify()
