"""The layers the README promises, read from the source: kernels import only numpy and numba,
the domain library never imports Dagster, and asset modules do no arithmetic on data (they load,
call the library, store and describe)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bot4_dagster"
DOMAIN = ["data", "features", "ml", "trading", "perf", "kernels", "serving", "registry",
          "report.py", "catalog.py", "settings.py"]
DATA_METHODS = {"sum", "mean", "median", "std", "var", "cumsum", "cumprod", "diff", "shift",
                "rolling", "expanding", "ewm", "resample", "pct_change", "groupby", "agg",
                "aggregate", "apply", "quantile", "abs", "round", "clip", "dropna", "fillna",
                "reindex", "value_counts", "describe", "corr", "cov", "dot", "merge",
                "pivot", "pivot_table", "melt", "sort_values", "nlargest", "nsmallest", "any",
                "all", "unique", "nunique", "isin"}


def _modules(*parts: str) -> list[Path]:
    files = []
    for part in parts:
        path = PACKAGE / part
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def _imports(path: Path) -> set[str]:
    """Top-level names of absolute imports (relative imports stay inside the package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", _modules("kernels"), ids=lambda p: p.name)
def test_kernels_import_only_numpy_numba_and_the_standard_library(path):
    outside = {name for name in _imports(path) - {"numpy", "numba", "llvmlite", "__future__"}
               if name not in sys.stdlib_module_names}
    assert not outside, f"{path.name} imports {sorted(outside)}"


@pytest.mark.parametrize("path", _modules(*DOMAIN), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_domain_library_never_imports_dagster(path):
    dagster = {name for name in _imports(path) if name.startswith("dagster")}
    assert not dagster, f"{path.relative_to(PACKAGE)} imports {sorted(dagster)}"


def _annotations(tree: ast.AST) -> set[int]:
    """ids of the nodes inside type annotations (``str | None`` is not arithmetic)."""
    roots = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            roots.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            roots.append(node.returns)
    return {id(n) for root in roots for n in ast.walk(root)}


def _negation(node: ast.AST) -> bool:
    return (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
            and not isinstance(node.operand, ast.Constant))


def _data_method(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in DATA_METHODS)


def _arithmetic(tree: ast.AST) -> list[str]:
    found = []
    annotations = _annotations(tree)
    for node in ast.walk(tree):
        if id(node) in annotations:
            continue
        if isinstance(node, (ast.BinOp, ast.AugAssign)):
            left = node.left if isinstance(node, ast.BinOp) else node.target
            text_format = (isinstance(node.op, ast.Mod)
                           and isinstance(left, (ast.Constant, ast.JoinedStr)))
            if not text_format:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif _negation(node) or _data_method(node):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("path", _modules("assets"), ids=lambda p: p.name)
def test_asset_modules_do_no_arithmetic_on_data(path):
    tree = ast.parse(path.read_text())
    assert not ({"numpy", "scipy", "sklearn", "numba"} & _imports(path)), path.name
    assert not _arithmetic(tree), f"{path.name}: " + "; ".join(_arithmetic(tree))


def test_the_arithmetic_finder_finds_arithmetic():
    found = _arithmetic(ast.parse("a = x['close'] / x['scale']\nb = s.shift(-1)\nc = f'{n:,}'\n"))
    assert len(found) == 2 and "shift" in found[1]


def test_no_module_imports_itself_back_at_runtime():
    """No import cycle at run time (imports under ``TYPE_CHECKING`` are for annotations only):
    a cycle is what forces lazy re-exports and import-order bugs."""
    import grimp

    graph = grimp.build_graph("bot4_dagster", exclude_type_checking_imports=True)
    cycles = sorted({tuple(sorted((m, i))) for m in graph.modules
                     for i in graph.find_modules_directly_imported_by(m)
                     if i.startswith("bot4_dagster") and graph.chain_exists(i, m)})
    assert not cycles, cycles
