"""The two scripts must each be one self-contained file, so the code both need stands in
each of them, written there from its one source, src/shared.py, by `make scripts`."""

import ast
import builtins
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))
import embed  # noqa: E402  (src/ is not a package: the tool `make scripts` runs)

SCRIPTS = ("s3_write.py", "s3_read.py")


def source_block():
    return embed.shared_block(os.path.join(ROOT, "src", "shared.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_script_holds_the_shared_code_exactly_as_its_source_has_it(script):
    assert embed.shared_block(os.path.join(ROOT, script)) == source_block(), \
        "%s's shared block differs from src/shared.py: edit src/shared.py, then run " \
        "`make scripts`" % script


def test_the_shared_code_is_not_empty():
    assert "class Settings(" in source_block()


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_script_imports_what_the_shared_code_imports(script):
    def imported(path):
        with open(path) as handle:
            tree = ast.parse(handle.read())
        return {ast.dump(node) for node in tree.body if isinstance(node, (ast.Import,
                                                                         ast.ImportFrom))}
    assert imported(os.path.join(ROOT, "src", "shared.py")) <= imported(
        os.path.join(ROOT, script))


def test_the_shared_code_reads_no_name_its_source_does_not_define_or_import():
    """What it uses comes from its own file (imports, its own names) or as arguments: never
    a global of the script that holds it."""
    with open(os.path.join(ROOT, "src", "shared.py")) as handle:
        tree = ast.parse(handle.read())
    defined = set(dir(builtins)) | {"__file__"}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.alias):
            defined.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
    used = {node.id for node in ast.walk(tree)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    assert used <= defined, sorted(used - defined)
