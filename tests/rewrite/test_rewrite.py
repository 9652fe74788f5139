"""Writing the batch size back: only the default literal changes, every other byte of the file stays."""

from __future__ import annotations

import os
import stat

import pytest

from skyline_tui import rewrite
from skyline_tui.rewrite import (
    RewriteError,
    find_batch_size_default,
    format_literal,
    read_batch_size_default,
    replace_batch_size_default,
    write_batch_size,
)

# Signature shapes a regular expression over "def skyline_input_provider(batch_size=32)" gets wrong.
# Each entry: (name, source bytes, new value, exact expected bytes).
SHAPES = [
    ("annotations",
     b"def skyline_input_provider(batch_size: int = 32) -> tuple[int, ...]:\n    return (1,)\n", 64,
     b"def skyline_input_provider(batch_size: int = 64) -> tuple[int, ...]:\n    return (1,)\n"),
    ("multi-line signature with comments",
     b"def skyline_input_provider(\n    batch_size=32,  # 64 ran out of memory; batch_size=16 is slow\n):\n"
     b"    return ()\n", 24,
     b"def skyline_input_provider(\n    batch_size=24,  # 64 ran out of memory; batch_size=16 is slow\n):\n"
     b"    return ()\n"),
    ("decorators",
     b"import functools\n\n@functools.lru_cache(maxsize=8)\n@staticmethod\ndef skyline_input_provider(batch_size=8):\n"
     b"    return ()\n", 9,
     b"import functools\n\n@functools.lru_cache(maxsize=8)\n@staticmethod\ndef skyline_input_provider(batch_size=9):\n"
     b"    return ()\n"),
    ("tabs", b"def skyline_input_provider(\tbatch_size\t=\t32\t):\n\treturn ()\n", 128,
     b"def skyline_input_provider(\tbatch_size\t=\t128\t):\n\treturn ()\n"),
    ("CRLF line endings", b"import torch\r\n\r\ndef skyline_input_provider(batch_size=32):\r\n    return ()\r\n", 5,
     b"import torch\r\n\r\ndef skyline_input_provider(batch_size=5):\r\n    return ()\r\n"),
    ("old Mac CR line endings", b"x = 1\rdef skyline_input_provider(batch_size=32):\r    return ()\r", 33,
     b"x = 1\rdef skyline_input_provider(batch_size=33):\r    return ()\r"),
    ("UTF-8 BOM", b"\xef\xbb\xbf# caf\xc3\xa9\ndef skyline_input_provider(batch_size=32):\n    return ()\n", 48,
     b"\xef\xbb\xbf# caf\xc3\xa9\ndef skyline_input_provider(batch_size=48):\n    return ()\n"),
    ("latin-1 coding declaration, non-ASCII before the literal on its line",
     b"# -*- coding: latin-1 -*-\ndef skyline_input_provider(batch_size: \"caf\xe9 \xe9\" = 32):  # \xe9\n"
     b"    return ()\n", 512,
     b"# -*- coding: latin-1 -*-\ndef skyline_input_provider(batch_size: \"caf\xe9 \xe9\" = 512):  # \xe9\n"
     b"    return ()\n"),
    ("UTF-8 multi-byte characters before the literal",
     "def skyline_input_provider(batch_size: '批量大小' = 32):  # ✓\n    return ()\n".encode(), 7,
     "def skyline_input_provider(batch_size: '批量大小' = 7):  # ✓\n    return ()\n".encode()),
    ("underscores in the literal", b"def skyline_input_provider(batch_size=1_024):\n    return ()\n", 2048,
     b"def skyline_input_provider(batch_size=2_048):\n    return ()\n"),
    ("hexadecimal literal", b"def skyline_input_provider(batch_size=0x20):\n    return ()\n", 64,
     b"def skyline_input_provider(batch_size=0x40):\n    return ()\n"),
    ("keyword-only parameter", b"def skyline_input_provider(*, batch_size=32):\n    return ()\n", 3,
     b"def skyline_input_provider(*, batch_size=3):\n    return ()\n"),
    ("positional-only parameter", b"def skyline_input_provider(batch_size=32, /):\n    return ()\n", 3,
     b"def skyline_input_provider(batch_size=3, /):\n    return ()\n"),
    ("parenthesised literal", b"def skyline_input_provider(batch_size=(32)):\n    return ()\n", 31,
     b"def skyline_input_provider(batch_size=(31)):\n    return ()\n"),
    ("backslash continuation", b"def skyline_input_provider(batch_size=\\\n        32):\n    return ()\n", 30,
     b"def skyline_input_provider(batch_size=\\\n        30):\n    return ()\n"),
    ("DeepView alias", b"def deepview_input_provider(batch_size=32):\n    return ()\n", 16,
     b"def deepview_input_provider(batch_size=16):\n    return ()\n"),
    ("decoys: comments, strings, other functions, a method of the same name",
     b"# def skyline_input_provider(batch_size=1):\n"
     b"DOC = '''def skyline_input_provider(batch_size=2):'''\n"
     b"def helper(batch_size=3):\n    return batch_size\n"
     b"class Data:\n    def skyline_input_provider(self, batch_size=4):\n        return ()\n"
     b"def skyline_input_provider(batch_size=5):\n    return ()\n", 6,
     b"# def skyline_input_provider(batch_size=1):\n"
     b"DOC = '''def skyline_input_provider(batch_size=2):'''\n"
     b"def helper(batch_size=3):\n    return batch_size\n"
     b"class Data:\n    def skyline_input_provider(self, batch_size=4):\n        return ()\n"
     b"def skyline_input_provider(batch_size=6):\n    return ()\n"),
    ("redefinition: the last definition is the one Python keeps",
     b"def skyline_input_provider(batch_size=1):\n    return ()\n"
     b"def skyline_input_provider(batch_size=2):\n    return ()\n", 9,
     b"def skyline_input_provider(batch_size=1):\n    return ()\n"
     b"def skyline_input_provider(batch_size=9):\n    return ()\n"),
    ("both names: the skyline one is used",
     b"def skyline_input_provider(batch_size=1):\n    return ()\n"
     b"deepview_input_provider = None\ndef deepview_input_provider(batch_size=2):\n    return ()\n", 9,
     b"def skyline_input_provider(batch_size=9):\n    return ()\n"
     b"deepview_input_provider = None\ndef deepview_input_provider(batch_size=2):\n    return ()\n"),
    ("form feed and a multi-line string before the provider",
     b"\x0cX = '''a\rb\r\nc'''\ndef skyline_input_provider(batch_size=32):\n    return ()\n", 1,
     b"\x0cX = '''a\rb\r\nc'''\ndef skyline_input_provider(batch_size=1):\n    return ()\n"),
]


@pytest.mark.parametrize("name, source, new, expected", SHAPES, ids=[s[0] for s in SHAPES])
def test_signature_shapes_are_rewritten_exactly(tmp_path, name, source, new, expected):
    assert replace_batch_size_default(source, new) == expected
    path = tmp_path / "entry.py"
    path.write_bytes(source)
    result = write_batch_size(path, new, expected_source=source)
    assert path.read_bytes() == expected
    assert result.changed and result.source == expected and result.new_batch_size == new
    assert find_batch_size_default(expected).value == new


def test_find_reports_the_exact_byte_span():
    source = b"# -*- coding: latin-1 -*-\ndef skyline_input_provider(batch_size: '\xe9' = 1_024):\n  return ()\n"
    found = find_batch_size_default(source)
    assert (found.value, found.literal, found.line, found.function) == (1024, "1_024", 2, "skyline_input_provider")
    assert source[found.start:found.end] == b"1_024"


def test_text_sources_are_indexed_by_character():
    text = "def skyline_input_provider(batch_size: 'é' = 32):\n    return ()\n"
    found = find_batch_size_default(text)
    assert text[found.start:found.end] == "32"
    assert replace_batch_size_default(text, 4) == text.replace("32", "4")


def test_read_returns_the_bytes_to_expect(tmp_path):
    path = tmp_path / "entry.py"
    path.write_bytes(b"def skyline_input_provider(batch_size=12):\n    return ()\n")
    found, data = read_batch_size_default(path)
    assert found.value == 12 and data == path.read_bytes()


def test_same_value_writes_nothing(tmp_path):
    path = tmp_path / "entry.py"
    path.write_bytes(b"def skyline_input_provider(batch_size=0x20):\n    return ()\n")
    before = os.stat(path).st_ino
    result = write_batch_size(path, 32)
    assert not result.changed and os.stat(path).st_ino == before


@pytest.mark.parametrize("value, like, expected", [
    (64, "32", "64"), (2048, "1_024", "2_048"), (1234567, "1_000", "1_234_567"), (12, "1_024", "12"),
    (255, "0xff", "0xff"), (255, "0XFF", "0XFF"), (255, "0xAb", "0xFF"), (5, "0b10", "0b101"), (8, "0o7", "0o10"),
    (0x1FFFF, "0x_ff_ff", "0x1_ffff"),
])
def test_new_literal_keeps_the_old_style(value, like, expected):
    assert format_literal(value, like) == expected
    assert int(expected, 0) == value


# ------------------------------------------------------------------------------------------------------
# Refusals: a clear RewriteError, and the file untouched.

REFUSED = [
    ("a name", b"BATCH = 32\ndef skyline_input_provider(batch_size=BATCH):\n    return ()\n", "BATCH"),
    ("an expression", b"def skyline_input_provider(batch_size=2*16):\n    return ()\n", "2*16"),
    ("a negative number", b"def skyline_input_provider(batch_size=-1):\n    return ()\n", "not a plain int"),
    ("a bool", b"def skyline_input_provider(batch_size=True):\n    return ()\n", "not a plain int"),
    ("a float", b"def skyline_input_provider(batch_size=32.0):\n    return ()\n", "not a plain int"),
    ("no default", b"def skyline_input_provider(batch_size):\n    return ()\n", "no default"),
    ("no batch_size parameter", b"def skyline_input_provider(n=3):\n    return ()\n", "no batch_size"),
    ("no provider", b"def skyline_model_provider():\n    return None\n", "no input provider"),
    ("an assigned provider", b"skyline_input_provider = lambda batch_size=3: ()\n", "rebound at line 1"),
    ("a provider rebound after its def",
     b"def skyline_input_provider(batch_size=3):\n    return ()\n"
     b"skyline_input_provider = wrap(skyline_input_provider)\n",
     "rebound at line 3"),
    ("an imported provider", b"from other import skyline_input_provider\n", "rebound at line 1"),
    ("a provider defined in a block",
     b"if True:\n    def skyline_input_provider(batch_size=3):\n        return ()\n", "inside a block"),
    ("an async provider", b"async def skyline_input_provider(batch_size=3):\n    return ()\n", "async"),
    ("a syntax error", b"def skyline_input_provider(batch_size=32:\n    return ()\n", "does not parse"),
    ("an undecodable file", b"def skyline_input_provider(batch_size=32):\n    return '\xff'\n", "not valid"),
]


@pytest.mark.parametrize("name, source, message", REFUSED, ids=[r[0] for r in REFUSED])
def test_refuses_what_it_cannot_rewrite(tmp_path, name, source, message):
    path = tmp_path / "entry.py"
    path.write_bytes(source)
    with pytest.raises(RewriteError, match=message.replace("*", r"\*")):
        write_batch_size(path, 64)
    assert path.read_bytes() == source
    assert os.listdir(tmp_path) == ["entry.py"]


@pytest.mark.parametrize("bad", [0, -3, True, 2.0, "8"])
def test_refuses_a_batch_size_that_is_not_a_positive_int(tmp_path, bad):
    path = tmp_path / "entry.py"
    source = b"def skyline_input_provider(batch_size=32):\n    return ()\n"
    path.write_bytes(source)
    with pytest.raises(RewriteError, match="batch size must be"):
        write_batch_size(path, bad)
    assert path.read_bytes() == source


def test_refuses_when_the_file_changed_since_it_was_read(tmp_path):
    path = tmp_path / "entry.py"
    shown = b"def skyline_input_provider(batch_size=32):\n    return ()\n"
    edited = b"def skyline_input_provider(batch_size=32):\n    return ()  # edited\n"
    path.write_bytes(edited)
    with pytest.raises(RewriteError, match="changed since it was read"):
        write_batch_size(path, 64, expected_source=shown)
    with pytest.raises(RewriteError, match="changed since it was read"):
        write_batch_size(path, 64, expected_source=shown.decode())
    assert path.read_bytes() == edited
    write_batch_size(path, 64, expected_source=edited.decode())  # text compares with the decoded file
    assert path.read_bytes() == edited.replace(b"32", b"64")


def test_refuses_an_edit_that_lands_while_writing(tmp_path, monkeypatch):
    path = tmp_path / "entry.py"
    source = b"def skyline_input_provider(batch_size=32):\n    return ()\n"
    external = b"def skyline_input_provider(batch_size=32):\n    return (1,)\n"
    path.write_bytes(source)
    real_write_temp = rewrite._write_temp

    def write_temp_then_editor_saves(directory, data, mode):
        temp = real_write_temp(directory, data, mode)
        path.write_bytes(external)
        return temp

    monkeypatch.setattr(rewrite, "_write_temp", write_temp_then_editor_saves)
    with pytest.raises(RewriteError, match="changed while"):
        write_batch_size(path, 64, expected_source=source)
    assert path.read_bytes() == external
    assert os.listdir(tmp_path) == ["entry.py"]  # the temporary file is gone


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755, 0o444])
def test_permissions_are_kept(tmp_path, mode):
    path = tmp_path / "entry.py"
    path.write_bytes(b"def skyline_input_provider(batch_size=32):\n    return ()\n")
    os.chmod(path, mode)
    write_batch_size(path, 16)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    assert path.read_bytes() == b"def skyline_input_provider(batch_size=16):\n    return ()\n"
    assert os.listdir(tmp_path) == ["entry.py"]


def test_a_symlinked_entry_point_stays_a_symlink(tmp_path):
    real = tmp_path / "real.py"
    real.write_bytes(b"def skyline_input_provider(batch_size=32):\n    return ()\n")
    link = tmp_path / "entry.py"
    link.symlink_to(real)
    write_batch_size(link, 8)
    assert link.is_symlink()
    assert real.read_bytes() == b"def skyline_input_provider(batch_size=8):\n    return ()\n"


def test_a_coding_declaration_ended_by_a_lone_cr_is_honoured():
    # tokenize.detect_encoding misses it (it reads up to b"\n"), Python's compiler does not.
    source = b"# -*- coding: latin-1 -*-\r# \xe9\rdef skyline_input_provider(batch_size: '\xe9' = 32):\r  return ()\r"
    assert replace_batch_size_default(source, 64) == source.replace(b"32", b"64")


def test_text_with_a_decoded_bom(tmp_path):
    data = b"\xef\xbb\xbfdef skyline_input_provider(batch_size=32):\n    return ()\n"
    text = data.decode("utf-8")  # read without "-sig": starts with U+FEFF
    assert replace_batch_size_default(text, 8) == text.replace("32", "8")
    path = tmp_path / "entry.py"
    path.write_bytes(data)
    write_batch_size(path, 8, expected_source=text)
    write_batch_size(path, 9, expected_source=data.replace(b"32", b"8").decode("utf-8-sig"))
    assert path.read_bytes() == data.replace(b"32", b"9")
    with pytest.raises(RewriteError, match="changed since"):
        write_batch_size(path, 10, expected_source="\ufeff" + text)  # two BOMs is not this file


def test_a_missing_file_is_a_clear_refusal(tmp_path):
    with pytest.raises(RewriteError, match="cannot read"):
        write_batch_size(tmp_path / "gone.py", 8)
    with pytest.raises(RewriteError, match="cannot read"):
        read_batch_size_default(tmp_path / "gone.py")
    assert os.listdir(tmp_path) == []
