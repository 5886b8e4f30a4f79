"""docs/tricks.md: every row names a ganjax function that exists and a test that exists."""

import ast
import importlib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TABLE_ROW = re.compile(r"^\|(?!\s*-)(.+)\|\s*$")
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
FUNCTION_REF = re.compile(r"`(ganjax(?:\.\w+)+)")


def rows():
    lines = (ROOT / "docs" / "tricks.md").read_text().splitlines()
    table = [line for line in lines if TABLE_ROW.match(line)]
    return [line for line in table if not line.startswith("| Trick")]


def test_every_trick_row_names_an_existing_test():
    missing = [row for row in rows() if not TEST_REF.search(row)]
    assert not missing, "rows without a test:\n" + "\n".join(missing)
    for row in rows():
        for path, name in TEST_REF.findall(row):
            tree = ast.parse((ROOT / path).read_text())
            names = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
            assert name in names, f"{path}::{name} named in docs/tricks.md does not exist"


@pytest.mark.parametrize("reference", sorted({ref for row in rows() for ref in FUNCTION_REF.findall(row)}))
def test_every_named_ganjax_object_exists(reference):
    parts = reference.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute)
        return
    pytest.fail(f"{reference} named in docs/tricks.md does not exist")
