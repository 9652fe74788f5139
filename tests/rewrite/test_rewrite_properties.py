"""Random entry points: a rewrite changes only the literal, and a racing edit is never overwritten."""

from __future__ import annotations

import ast
import os
import random
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skyline_tui import rewrite
from skyline_tui.rewrite import (
    RewriteError,
    find_batch_size_default,
    format_literal,
    read_batch_size_default,
    replace_batch_size_default,
    write_batch_size,
)

ENDINGS = ("\n", "\r\n", "\r")
LATIN1_TEXT = [chr(c) for c in range(32, 256) if not 127 <= c < 160]
WIDE_TEXT = LATIN1_TEXT + list("批量大小✓€\u2028\u00a0") + ["\U0001f600"]


def _text(rng: random.Random, alphabet: list[str], size: int = 12) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, size)))


def make_entry(rng: random.Random) -> tuple[bytes, int, str]:
    """A random, valid entry point: (file bytes, the provider's default, the encoding used)."""
    encoding = rng.choice(["utf-8", "utf-8-bom", "latin-1"])
    alphabet = LATIN1_TEXT if encoding == "latin-1" else WIDE_TEXT
    mixed = rng.random() < 0.3
    file_ending = rng.choice(ENDINGS)

    def nl() -> str:
        return rng.choice(ENDINGS) if mixed else file_ending

    def comment() -> str:
        return "#" + _text(rng, alphabet).replace("\\", "/")

    def filler(i: int) -> str:
        kind = rng.randrange(6)
        if kind == 0:
            return comment() + nl()
        if kind == 1:
            return nl()
        if kind == 2:
            return f"x{i} = {rng.randint(0, 999)}{rng.choice(['', '  ' + comment()])}{nl()}"
        if kind == 3:  # a decoy function with its own batch_size default
            return f"def helper{i}(batch_size={rng.randint(1, 99)}):{nl()}\treturn batch_size{nl()}"
        if kind == 4:  # a decoy in a string, possibly spanning lines
            return f"S{i} = '''def skyline_input_provider(batch_size={rng.randint(1, 9)}):{nl()}'''{nl()}"
        return f"if x{i - 1 if i else 0} if False else True:{nl()}    pass  {comment()}{nl()}"

    value = rng.randint(1, 100_000)
    literal = format_literal(value, rng.choice(["1", "1_000", "0x1", "0X1", "0o1", "0b1"]))
    ws = lambda: rng.choice(["", " ", "\t", "  ", "\x0c "])  # noqa: E731
    annotation = rng.choice(["", ": int", ": 'é'", ": \"int\"  "]) + ws()
    param = f"batch_size{annotation}={ws()}{literal}{ws()}"
    param = rng.choice([param, f"*, {param}", f"{param}, /", f"{param},"])
    if rng.random() < 0.5:
        signature = f"({nl()}    {param}{rng.choice(['', '  ' + comment()])}{nl()})"
    else:
        signature = f"({ws()}{param})"
    name = rng.choice(["skyline_input_provider", "deepview_input_provider"])
    decorators = "".join(f"@decorator{i}{rng.choice(['', '(1)'])}{nl()}" for i in range(rng.randint(0, 2)))
    returns = rng.choice(["", " -> tuple", " -> 'tuple[int, ...]'"])
    body = f"{nl()}    return ()  {comment()}{nl()}"
    parts = [filler(i) for i in range(rng.randint(0, 6))]
    provider = f"{decorators}def {name}{signature}{returns}:{body}"
    parts += [provider] + [filler(100 + i) for i in range(rng.randint(0, 6))]
    text = "".join(parts)
    if encoding == "latin-1":
        data = f"# -*- coding: latin-1 -*-{nl()}{text}".encode("latin-1")
    elif encoding == "utf-8-bom":
        data = b"\xef\xbb\xbf" + text.encode("utf-8")
    else:
        data = text.encode("utf-8")
    return data, value, encoding


def provider_default(data: bytes) -> int:
    """The default as Python itself sees it (independent of rewrite's offset arithmetic)."""
    tree = ast.parse(data)
    names = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.endswith("_input_provider")]
    func = names[-1]
    args = func.args
    for arg, default in zip(reversed(args.posonlyargs + args.args), reversed(args.defaults), strict=False):
        if arg.arg == "batch_size":
            return ast.literal_eval(default)
    return ast.literal_eval(args.kw_defaults[[a.arg for a in args.kwonlyargs].index("batch_size")])


def assert_only_literal_changed(before: bytes, after: bytes, new_value: int) -> None:
    found = find_batch_size_default(before)
    new_literal = format_literal(new_value, found.literal).encode("ascii")
    assert after[: found.start] == before[: found.start]
    assert after[found.start: found.start + len(new_literal)] == new_literal
    assert after[found.start + len(new_literal):] == before[found.end:]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False), new_value=st.integers(min_value=1, max_value=10**9))
def test_a_rewrite_changes_only_the_literal(rng, new_value):
    data, value, _encoding = make_entry(rng)
    assert provider_default(data) == value
    assert find_batch_size_default(data).value == value
    updated = replace_batch_size_default(data, new_value)
    assert provider_default(updated) == new_value
    assert find_batch_size_default(updated).value == new_value
    assert_only_literal_changed(data, updated, new_value)


@settings(max_examples=60, deadline=None)
@given(rng=st.randoms(use_true_random=False), new_value=st.integers(min_value=1, max_value=10**6))
def test_writing_a_random_file_changes_only_the_literal(rng, new_value):
    data, _value, _encoding = make_entry(rng)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "entry.py")
        with open(path, "wb") as fh:
            fh.write(data)
        write_batch_size(path, new_value, expected_source=data)
        with open(path, "rb") as fh:
            after = fh.read()
        assert os.listdir(folder) == ["entry.py"]
    assert provider_default(after) == new_value
    if new_value != _value:
        assert_only_literal_changed(data, after, new_value)
    else:
        assert after == data


def test_many_rewrites_racing_external_edits(tmp_path, monkeypatch):
    """Hundreds of rewrites, some after an editor saved (stale read), some while it saves (mid-write).

    A rewrite either succeeds and changes only the literal, or is refused and leaves the editor's
    version exactly as the editor wrote it.
    """
    rng = random.Random(20240611)
    paths = []
    for i in range(6):
        data, _value, _encoding = make_entry(rng)
        path = tmp_path / f"entry{i}.py"
        path.write_bytes(data)
        paths.append(path)
    real_write_temp = rewrite._write_temp
    outcomes = {"written": 0, "stale": 0, "mid-write": 0}

    def external_edit(data: bytes) -> bytes:
        if rng.random() < 0.5:  # the user changed the batch size by hand
            return replace_batch_size_default(data, rng.randint(1, 5000))
        return data + b"\n# saved by an editor %d\n" % rng.randrange(10**6)

    for step in range(300):
        path = rng.choice(paths)
        _found, seen = read_batch_size_default(path)
        new_value = rng.randint(1, 10**6)
        race = rng.choice(["none", "none", "stale", "mid-write"])
        if race == "stale":
            edited = external_edit(seen)
            path.write_bytes(edited)
        elif race == "mid-write":
            edited = external_edit(seen)

            def write_temp_while_editor_saves(directory, data, mode, _path=path, _edited=edited):
                temp = real_write_temp(directory, data, mode)
                _path.write_bytes(_edited)
                return temp

            monkeypatch.setattr(rewrite, "_write_temp", write_temp_while_editor_saves)
        try:
            result = write_batch_size(path, new_value, expected_source=seen)
        except RewriteError:
            assert race != "none", f"step {step}: refused without a race"
            if race == "stale" or find_batch_size_default(seen).value != new_value:
                assert path.read_bytes() == edited, f"step {step}: the editor's version was lost"
            outcomes[race] += 1
        else:
            assert race == "none" or (race == "mid-write" and find_batch_size_default(seen).value == new_value)
            after = path.read_bytes()
            assert after == result.source
            if result.changed:
                assert_only_literal_changed(seen, after, new_value)
            else:
                assert after == seen
            outcomes["written"] += 1
        finally:
            monkeypatch.setattr(rewrite, "_write_temp", real_write_temp)
        assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths), f"step {step}: stray files"
    assert all(count > 20 for count in outcomes.values()), outcomes
