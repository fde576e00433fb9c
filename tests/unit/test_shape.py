"""The size contract (``tools/shape.py``, also run by ``make lint``): the tree keeps it, and
the check finds what it says on a small made-up tree."""

from __future__ import annotations

from pathlib import Path

from tools.shape import MAX_FUNCTION_LINES, MAX_MODULE_LINES, ROOT, oversize, problems


def test_no_module_is_over_400_lines_and_no_function_over_40() -> None:
    report = problems(oversize(ROOT))
    assert not report, "\n".join(report)


def write(tmp_path: Path, name: str, source: str) -> None:
    path = tmp_path / "zgos" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)


def function_of(lines: int, name: str = "f") -> str:
    """A function ``lines`` lines long, its ``def`` line included."""
    return f"def {name}():\n" + "    x = 1\n" * (lines - 1)


def test_a_long_function_is_named_with_its_length_and_a_nested_one_counts_in_its_parent(tmp_path: Path) -> None:
    write(tmp_path, "a.py", function_of(MAX_FUNCTION_LINES) + function_of(MAX_FUNCTION_LINES + 1, "g"))
    inner = "".join("    " + line + "\n" for line in function_of(MAX_FUNCTION_LINES - 1, "inner").splitlines())
    write(tmp_path, "b.py", "def outer():\n" + inner + "    return inner\n")  # 1 + 39 + 1 lines
    assert oversize(tmp_path) == {"zgos/a.py:g": MAX_FUNCTION_LINES + 1, "zgos/b.py:outer": MAX_FUNCTION_LINES + 1}


def test_a_long_module_is_named_but_generated_grpc_stubs_are_not(tmp_path: Path) -> None:
    body = "x = 1\n" * (MAX_MODULE_LINES + 1)
    write(tmp_path, "big.py", body)
    write(tmp_path, "proto/thing_pb2_grpc.py", body)
    assert oversize(tmp_path) == {"zgos/big.py": MAX_MODULE_LINES + 1}
