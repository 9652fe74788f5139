"""Writing a batch size back into the entry point: only the default literal changes, every other byte stays.

Skyline found ``def skyline_input_provider(batch_size=32)`` with a regular expression, so annotations,
multi-line signatures, comments or a keyword-only parameter defeated it.  Here the provider is found with
:mod:`ast`, and the literal's exact byte span is computed from the AST positions:

- ``ast`` reports ``col_offset`` in UTF-8 bytes of the *decoded* line, whatever the file's encoding, so the
  span is found in the decoded text first and then re-encoded with the file's own encoding (a latin-1
  coding declaration, a UTF-8 BOM) to get byte offsets in the file;
- lines end at ``\\r\\n``, ``\\r`` or ``\\n``, as the tokenizer counts them (``str.splitlines`` also splits
  at form feeds and other characters, which would shift every later line);
- the bytes found there are checked to spell the same integer the AST holds before anything is written.

The write is atomic (a temporary file in the same directory, then :func:`os.replace`) and keeps the file's
permission bits.  It refuses — with :class:`RewriteError` and the file untouched — when the file changed
since the caller read it (``expected_source``), when there is no input provider, when the default is not a
plain int literal (``BATCH``, ``2 * 16``, ``-1``) and when the new batch size is not an int >= 1.

The one race left: an editor that saves between our last re-read of the file and the rename loses its
save.  POSIX has no compare-and-swap rename, so that window is kept to one small read.  Like any
atomic replace, the file gets a new inode: hard links to it keep the old content.
"""

from __future__ import annotations

import ast
import io
import os
import re
import stat
import tempfile
import tokenize
from dataclasses import dataclass
from typing import Optional, TypeVar, Union

PROVIDER_NAMES = ("skyline_input_provider", "deepview_input_provider")  # in the loader's order
PARAMETER = "batch_size"
_BOM = b"\xef\xbb\xbf"
_NEWLINE = re.compile(r"\r\n|\r|\n")

Source = Union[str, bytes]
SourceT = TypeVar("SourceT", str, bytes)  # a function given bytes returns bytes, given text returns text


class RewriteError(Exception):
    """The batch size cannot be written back; the message says why, and the file was not changed."""


@dataclass(frozen=True)
class BatchSizeDefault:
    """Where the provider's ``batch_size`` default is, in the source it was found in.

    ``start``/``end`` index the source as given: bytes for a ``bytes`` source (the file), characters for a
    ``str`` one.  ``literal`` is the literal as written (``"1_024"``, ``"0x20"``).
    """

    value: int
    start: int
    end: int
    literal: str
    line: int  # 1-based
    function: str


@dataclass(frozen=True)
class RewriteResult:
    path: str
    old: BatchSizeDefault
    new_batch_size: int
    source: bytes  # the file's content now: pass it as expected_source to the next write
    changed: bool  # False when the default already was new_batch_size (nothing written)


def find_batch_size_default(source: Source) -> BatchSizeDefault:
    """Locate the input provider's ``batch_size`` default in ``source`` (file bytes or decoded text)."""
    if isinstance(source, bytes):
        return _find_in_bytes(source)
    return _find_in_text(source)


def replace_batch_size_default(source: SourceT, new_batch_size: int) -> SourceT:
    """``source`` with only the default literal changed (same type as given)."""
    _check_new_value(new_batch_size)
    found = find_batch_size_default(source)
    literal = format_literal(new_batch_size, found.literal)
    if isinstance(source, bytes):
        return source[: found.start] + literal.encode("ascii") + source[found.end:]
    return source[: found.start] + literal + source[found.end:]


def read_batch_size_default(path: Union[str, os.PathLike[str]]) -> tuple[BatchSizeDefault, bytes]:
    """The default in the file at ``path`` and the exact bytes it was found in (for ``expected_source``)."""
    data = _read(os.fspath(path))
    return _find_in_bytes(data), data


def write_batch_size(path: Union[str, os.PathLike[str]], new_batch_size: int,
                     expected_source: Optional[Source] = None) -> RewriteResult:
    """Write ``new_batch_size`` as the input provider's default in the file at ``path``.

    ``expected_source`` is what the caller read (and showed to the user): bytes are compared exactly, text
    against the file decoded with its own encoding.  If the file differs, nothing is written.
    """
    _check_new_value(new_batch_size)
    display = os.fspath(path)
    target = os.path.realpath(display)  # a symlinked entry point: rewrite the file, keep the link
    original = _read(target)
    if expected_source is not None and not _same_source(original, expected_source):
        raise RewriteError(f"{display} changed since it was read; reload it before writing the batch size")
    found = _find_in_bytes(original)
    if found.value == new_batch_size:
        return RewriteResult(path=display, old=found, new_batch_size=new_batch_size, source=original,
                             changed=False)
    updated = replace_batch_size_default(original, new_batch_size)
    _replace_atomically(target, display, original, updated)
    return RewriteResult(path=display, old=found, new_batch_size=new_batch_size, source=updated, changed=True)


def format_literal(value: int, like: str = "") -> str:
    """``value`` written in the style of the old literal ``like``: its base prefix and digit grouping."""
    prefix = like[:2] if like[:2].lower() in ("0x", "0o", "0b") else ""
    base = {"": 10, "0x": 16, "0o": 8, "0b": 2}[prefix.lower()]
    digits = {10: "{:d}", 16: "{:x}", 8: "{:o}", 2: "{:b}"}[base].format(value)
    body = like[len(prefix):]
    if prefix[1:2] == "X" or (base == 16 and any(c in "ABCDEF" for c in body)):
        digits = digits.upper()
    if "_" in body:
        group = 3 if base == 10 else 4
        head = len(digits) % group or group
        digits = "_".join([digits[:head]] + [digits[i:i + group] for i in range(head, len(digits), group)])
    return prefix + digits


# ------------------------------------------------------------------------------------------------------


def _check_new_value(new_batch_size: object) -> None:
    if isinstance(new_batch_size, bool) or not isinstance(new_batch_size, int):
        raise RewriteError(f"the batch size must be an int, not {type(new_batch_size).__name__}")
    if new_batch_size < 1:
        raise RewriteError(f"the batch size must be at least 1 (got {new_batch_size})")


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise RewriteError(f"cannot read {path}: {exc.strerror or exc}") from None


def _encoding(data: bytes) -> str:
    # tokenize.detect_encoding reads lines up to b"\n" only, but the compiler also ends the cookie's line
    # at a lone b"\r"; normalise line ends (ASCII in every encoding Python accepts) to find it like Python.
    head = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    try:
        encoding, _lines = tokenize.detect_encoding(io.BytesIO(head).readline)
    except SyntaxError as exc:
        raise RewriteError(f"cannot tell the file's encoding: {exc}") from None
    return encoding


def _decode(data: bytes) -> tuple[str, str, int]:
    """(text, codec for re-encoding, bytes before the text): a BOM is not part of the text."""
    encoding = _encoding(data)
    skip = len(_BOM) if data.startswith(_BOM) else 0
    codec = "utf-8" if encoding == "utf-8-sig" else encoding
    try:
        return data[skip:].decode(codec), codec, skip
    except (UnicodeDecodeError, LookupError) as exc:
        raise RewriteError(f"the file is not valid {encoding} text: {exc}") from None


def _same_source(current: bytes, expected: Source) -> bool:
    if isinstance(expected, bytes):
        return current == expected
    try:
        text, _codec, skip = _decode(current)
    except RewriteError:
        return False
    # Text read as "utf-8-sig" has no BOM, as "utf-8" it starts with U+FEFF: both are the same file.
    return expected == text or (skip > 0 and expected == "\ufeff" + text)


def _find_in_bytes(data: bytes) -> BatchSizeDefault:
    text, codec, skip = _decode(data)
    found = _find_in_text(text)
    start = skip + len(text[: found.start].encode(codec))
    end = start + len(text[found.start: found.end].encode(codec))
    if data[start:end].decode(codec) != found.literal:  # a bug in the offsets: never write then
        raise RewriteError("internal error: the batch_size literal is not where the parser put it")
    return BatchSizeDefault(value=found.value, start=start, end=end, literal=found.literal, line=found.line,
                            function=found.function)


def _find_in_text(text: str) -> BatchSizeDefault:
    if text.startswith("\ufeff"):  # a BOM decoded as a character: not part of the code
        found = _find_in_text(text[1:])
        return BatchSizeDefault(value=found.value, start=found.start + 1, end=found.end + 1, literal=found.literal,
                                line=found.line, function=found.function)
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise RewriteError(f"the file does not parse (line {exc.lineno}: {exc.msg}); fix it first") from None
    func = _provider(tree)
    node = _default_node(func)
    if not (isinstance(node, ast.Constant) and type(node.value) is int):
        written = ast.get_source_segment(text, node) or ast.unparse(node)
        raise RewriteError(f"{func.name}() has batch_size={written}, not a plain int literal; "
                           "write a number there (e.g. batch_size=32) or change it by hand")
    if node.lineno != node.end_lineno:  # pragma: no cover - an int literal is one token
        raise RewriteError("internal error: the batch_size literal spans lines")
    line_start = _line_starts(text)[node.lineno - 1]
    line_end = _NEWLINE.search(text, line_start)
    line = text[line_start: line_end.start() if line_end else len(text)]
    encoded = line.encode("utf-8")  # ast's columns are UTF-8 byte offsets into the decoded line
    start = line_start + len(encoded[: node.col_offset].decode("utf-8"))
    end = line_start + len(encoded[: node.end_col_offset].decode("utf-8"))
    literal = text[start:end]
    try:
        spelled = int(literal, 0)
    except ValueError:
        spelled = None
    if spelled != node.value:  # pragma: no cover - guards the offset arithmetic
        raise RewriteError("internal error: the batch_size literal is not where the parser put it")
    return BatchSizeDefault(value=node.value, start=start, end=end, literal=literal, line=node.lineno,
                            function=func.name)


def _line_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in _NEWLINE.finditer(text)]


def _provider(tree: ast.Module) -> ast.FunctionDef:
    """The top-level ``def`` the loader would call: the last definition wins, skyline before deepview."""
    for name in PROVIDER_NAMES:
        bindings = [node for node in tree.body if _binds(node, name)]
        if not bindings:
            continue
        last = bindings[-1]
        if isinstance(last, ast.FunctionDef):
            return last
        if isinstance(last, ast.AsyncFunctionDef):
            raise RewriteError(f"{name} is an async def; it must be a plain function")
        raise RewriteError(f"{name} is rebound at line {last.lineno} after its def; "
                           "only a plain top-level def can be rewritten")
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in PROVIDER_NAMES:
            raise RewriteError(f"{node.name} (line {node.lineno}) is defined inside a block or class; "
                               "only a top-level def can be rewritten")
    raise RewriteError("no input provider: define skyline_input_provider(batch_size=...) "
                       "at the top level of the entry point")


def _binds(node: ast.stmt, name: str) -> bool:
    """Whether a top-level statement (re)binds ``name``."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name == name
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return any(isinstance(t, ast.Name) and t.id == name for target in targets for t in ast.walk(target))
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return any((alias.asname or alias.name.split(".")[0]) == name for alias in node.names)
    return False


def _default_node(func: ast.FunctionDef) -> ast.expr:
    args = func.args
    positional = args.posonlyargs + args.args
    defaults: list[Optional[ast.expr]] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = list(zip(positional, defaults, strict=True)) + list(zip(args.kwonlyargs, args.kw_defaults, strict=True))
    for arg, default in pairs:
        if arg.arg == PARAMETER:
            if default is None:
                raise RewriteError(f"{func.name}() has no default for batch_size; write one (e.g. batch_size=32)")
            return default
    raise RewriteError(f"{func.name}() has no batch_size parameter")


def _write_temp(directory: str, data: bytes, mode: int) -> str:
    fd, temp = tempfile.mkstemp(prefix=".skyline-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(temp, mode)
    except BaseException:
        _remove(temp)
        raise
    return temp


def _replace_atomically(target: str, display: str, original: bytes, updated: bytes) -> None:
    try:
        info = os.stat(target)
    except OSError as exc:
        raise RewriteError(f"cannot stat {display}: {exc.strerror or exc}") from None
    try:
        temp = _write_temp(os.path.dirname(target) or ".", updated, stat.S_IMODE(info.st_mode))
    except OSError as exc:
        raise RewriteError(f"cannot write next to {display}: {exc.strerror or exc}") from None
    try:
        if hasattr(os, "chown"):
            try:
                os.chown(temp, info.st_uid, info.st_gid)
            except OSError:
                pass  # not ours to give away: the new file keeps our ownership, permissions are kept
        # Last check, as late as possible: an editor that saved meanwhile wins, and we write nothing.
        if _read(target) != original:
            raise RewriteError(f"{display} changed while the batch size was being written; nothing was written")
        os.replace(temp, target)
    except BaseException:
        _remove(temp)
        raise


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
