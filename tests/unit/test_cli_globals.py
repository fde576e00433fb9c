"""The global options every ``zg`` command accepts after the command too (``hoist_global_options``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.cli.main import GLOBAL_VALUE_OPTIONS, hoist_global_options


@pytest.mark.parametrize(("args", "hoisted"), [
    (["storage", "upload", "f", "--rpc-url", "U"], ["--rpc-url", "U", "storage", "upload", "f"]),
    (["chain", "status", "--deployment=D", "--rpc-url", "U"], ["--deployment=D", "--rpc-url", "U", "chain", "status"]),
    (["--data-dir", "X", "chain", "status"], ["--data-dir", "X", "chain", "status"]),
    (["kv", "put", "--", "--rpc-url", "U"], ["kv", "put", "--", "--rpc-url", "U"]),
    (["chain", "status", "--rpc-url"], ["chain", "status", "--rpc-url"]),  # no value: click says so
])
def test_global_options_move_before_the_command_and_nothing_after_a_double_dash(
        args: list[str], hoisted: list[str]) -> None:
    assert hoist_global_options(args) == hoisted


@given(st.lists(st.sampled_from(["a", "b", "--x", "-v", "--", *GLOBAL_VALUE_OPTIONS, "--rpc-url=u"]), max_size=12))
def test_hoisting_keeps_every_word_and_hoisting_again_changes_nothing(args: list[str]) -> None:
    out = hoist_global_options(args)
    assert sorted(out) == sorted(args)
    assert hoist_global_options(out) == out
