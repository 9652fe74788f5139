"""The entry-point contract: every violation gets its own clear message naming the function."""

from __future__ import annotations

import pytest

from skyline_tui.config import ProfileConfig
from skyline_tui.profiler.entry import load_entry_point
from skyline_tui.profiler.errors import ProfileError
from skyline_tui.profiler.run import load_workload, profile

from ..conftest import TINY_ENTRY

CONTRACT_VIOLATIONS = [
    # (what, replace this, with this, expected kind, words the message must contain, function named)
    ("no model provider", "def skyline_model_provider():", "def make_model():",
     "entry_point", "has no skyline_model_provider()", "skyline_model_provider"),
    ("no input provider", "def skyline_input_provider(batch_size=4):", "def inputs(batch_size=4):",
     "entry_point", "has no skyline_input_provider()", "skyline_input_provider"),
    ("no iteration provider", "def skyline_iteration_provider(model):", "def it(model):",
     "entry_point", "has no skyline_iteration_provider()", "skyline_iteration_provider"),
    ("model provider takes a parameter", "def skyline_model_provider():", "def skyline_model_provider(width):",
     "entry_point", "must take no parameters", "skyline_model_provider"),
    ("input provider parameter misnamed", "def skyline_input_provider(batch_size=4):",
     "def skyline_input_provider(bs=4):", "entry_point", "exactly one parameter named batch_size",
     "skyline_input_provider"),
    ("input provider without default", "def skyline_input_provider(batch_size=4):",
     "def skyline_input_provider(batch_size):", "entry_point", "needs an int default", "skyline_input_provider"),
    ("input provider with float default", "def skyline_input_provider(batch_size=4):",
     "def skyline_input_provider(batch_size=4.0):", "entry_point", "needs an int default",
     "skyline_input_provider"),
    ("input provider knob without a default", "def skyline_input_provider(batch_size=4):",
     "def skyline_input_provider(batch_size=4, *, seq):", "entry_point", "a knob needs a default (seq=...)",
     "skyline_input_provider"),
    ("iteration provider without parameters", "def skyline_iteration_provider(model):",
     "def skyline_iteration_provider():", "entry_point", "exactly one parameter: the model",
     "skyline_iteration_provider"),
    ("input provider returns a bare tensor", "return (torch.randn(batch_size, 8), torch.randint(0, 2, (batch_size,)))",
     "return torch.randn(batch_size, 8)", "entry_point", "must return a tuple or list of inputs, not torch.Tensor",
     "skyline_input_provider"),
    ("input provider returns a dict", "return (torch.randn(batch_size, 8), torch.randint(0, 2, (batch_size,)))",
     "return {'x': 1}", "entry_point", "not builtins.dict", "skyline_input_provider"),
    ("model provider returns a function", "return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))",
     "return lambda x: x", "entry_point", "must return a torch.nn.Module", "skyline_model_provider"),
    ("iteration provider returns None", "    return iteration\n", "    pass\n",
     "entry_point", "must return a callable iteration(*inputs)", "skyline_iteration_provider"),
    ("iteration takes more inputs than the provider gives", "def iteration(x, y):", "def iteration(x, y, z):",
     "entry_point", "cannot be called with the 2 inputs that skyline_input_provider() returns", "iteration"),
    ("iteration takes fewer inputs than the provider gives", "def iteration(x, y):", "def iteration(x):",
     "entry_point", "too many positional arguments", "iteration"),
]


@pytest.mark.parametrize("what, old, new, kind, words, function", CONTRACT_VIOLATIONS,
                         ids=[case[0] for case in CONTRACT_VIOLATIONS])
def test_contract_violation_names_the_function(write_entry, what, old, new, kind, words, function):
    assert old in TINY_ENTRY
    path = write_entry(TINY_ENTRY.replace(old, new))
    with pytest.raises(ProfileError) as caught:
        ep = load_entry_point(path)
        load_workload(ep, ep.default_batch_size)
    info = caught.value.info
    assert info.kind == kind
    assert words in info.message
    assert function in info.message
    assert info.function == function
    assert info.file == "entry.py"


def test_violation_points_at_the_provider_line(write_entry):
    path = write_entry(TINY_ENTRY.replace("def skyline_input_provider(batch_size=4):",
                                          "def skyline_input_provider(bs=4):"))
    with pytest.raises(ProfileError) as caught:
        load_entry_point(path)
    line = caught.value.info.line
    assert path.read_text().splitlines()[line - 1].startswith("def skyline_input_provider(bs=4)")


def test_an_iteration_that_cannot_take_the_inputs_points_at_its_def_line(write_entry):
    path = write_entry(TINY_ENTRY.replace("def iteration(x, y):", "def iteration(x, y, z):"))
    with pytest.raises(ProfileError) as caught:
        ep = load_entry_point(path)
        load_workload(ep, ep.default_batch_size)
    line = caught.value.info.line
    assert path.read_text().splitlines()[line - 1].strip() == "def iteration(x, y, z):"


def test_default_batch_size_is_the_input_providers_default(write_entry):
    ep = load_entry_point(write_entry(TINY_ENTRY.replace("batch_size=4", "batch_size=12")))
    assert ep.default_batch_size == 12


def test_deepview_aliases_are_accepted(write_entry):
    source = TINY_ENTRY.replace("skyline_", "deepview_")
    report = profile(str(write_entry(source)), None, ProfileConfig.quick(breakdown=False, memory=False,
                                                                         predictions=False))
    assert report.error is None
    assert report.throughput is not None and report.throughput.iterations_measured >= 2


def test_sibling_modules_import_from_the_entry_folder(write_entry, monkeypatch, tmp_path_factory):
    entry = write_entry(
        TINY_ENTRY.replace("import torch.nn as nn\n", "import torch.nn as nn\nfrom tinynet import make\n")
        .replace("return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))", "return make()"),
        tinynet="""
        import torch.nn as nn

        def make():
            return nn.Sequential(nn.Linear(8, 2))
        """,
    )
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))  # run from any working directory
    report = profile(str(entry), None,
                     ProfileConfig.quick(breakdown=False, memory=False, predictions=False, health=False))
    assert report.error is None, report.error


def test_syntax_error_names_file_and_line(write_entry):
    path = write_entry(TINY_ENTRY + "\ndef broken(:\n    pass\n")
    with pytest.raises(ProfileError) as caught:
        load_entry_point(path)
    info = caught.value.info
    assert info.kind == "syntax"
    assert info.file == "entry.py"
    assert info.line == len(TINY_ENTRY.splitlines()) + 2
    assert "def broken(:" in info.traceback


def test_syntax_error_in_a_sibling_module_names_that_module(write_entry):
    path = write_entry("import helper\n" + TINY_ENTRY, helper="x = (\n")
    with pytest.raises(ProfileError) as caught:
        load_entry_point(path)
    assert caught.value.info.kind == "syntax"
    assert caught.value.info.file == "helper.py"


def test_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "entry.py"
    path.write_bytes(TINY_ENTRY.encode() + b"\n# caf\xe9\n")
    with pytest.raises(ProfileError) as caught:
        load_entry_point(path)
    info = caught.value.info
    assert info.kind == "file" and "not UTF-8" in info.message
    assert info.line == len(TINY_ENTRY.splitlines()) + 2


@pytest.mark.parametrize("target", ["missing.py", "."])
def test_missing_or_directory_entry_point(tmp_path, target):
    with pytest.raises(ProfileError) as caught:
        load_entry_point(tmp_path / target)
    assert caught.value.info.kind == "file"
    assert ("not found" if target == "missing.py" else "is a directory") in caught.value.info.message


def test_exception_in_user_code_points_at_the_users_frame(write_entry):
    source = TINY_ENTRY.replace("        loss.backward()\n",
                                "        loss.backward()\n        raise ValueError('boom')\n")
    report = profile(str(write_entry(source)), None, ProfileConfig.quick())
    error = report.error
    assert error is not None and error.kind == "user_code"
    assert error.message == "ValueError: boom"
    assert error.file == "entry.py"
    assert source.splitlines()[error.line - 1].strip() == "raise ValueError('boom')"
    assert "skyline_tui" not in error.traceback  # only the user's frames


def test_sys_exit_in_user_code_is_an_exit_error(write_entry):
    source = TINY_ENTRY.replace("def skyline_model_provider():\n",
                                "def skyline_model_provider():\n    import sys; sys.exit(3)\n")
    report = profile(str(write_entry(source)), None, ProfileConfig.quick())
    assert report.error is not None and report.error.kind == "exit"
    assert "sys.exit(3)" in report.error.message


@pytest.mark.parametrize("signature", ["(*, batch_size=4)", "(batch_size=4, /)", "(batch_size: int = 4)"])
def test_every_way_of_declaring_the_batch_size_parameter_profiles(write_entry, signature):
    source = TINY_ENTRY.replace("def skyline_input_provider(batch_size=4):",
                                f"def skyline_input_provider{signature}:")
    report = profile(str(write_entry(source)), None, ProfileConfig.quick(breakdown=False, memory=False,
                                                                         predictions=False))
    assert report.error is None, report.error
    assert report.batch_size == 4
