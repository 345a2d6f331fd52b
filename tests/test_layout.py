"""The package's layout: which subpackages may import torch, and that none imports CuPy at import time."""

import ast
import subprocess
import sys
from pathlib import Path

import granger_prune

ROOT = Path(granger_prune.__file__).parent

#: The stages on the model side (criteria: those that need gradients); the rest is the NumPy core.
TORCH_SUBPACKAGES = {"record", "criteria", "network", "training", "zoo", "study"}
CORE = {"design", "lasso", "stats", "selection"}


def module_name(path):
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_time_imports(path):
    """Modules imported when ``path`` is imported: module-level imports, also inside
    ``if``/``try`` blocks, not those inside functions or classes."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()

    def visit(statements):
        for node in statements:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                for block in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, block, []):
                        visit(child.body if isinstance(child, ast.ExceptHandler) else [child])
    visit(ast.parse(path.read_text()).body)
    return found


def reachable_externals():
    """For every module of the package, the external top-level packages its import reaches."""
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    direct = {m: import_time_imports(p) for m, p in modules.items()}

    def parents(m):  # importing a.b.c imports a and a.b first
        parts = m.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts))}

    reach = {}

    def visit(m, seen):
        if m in reach:
            return reach[m]
        out = set()
        for target in direct[m] | parents(m):
            if target in modules and target not in seen:
                out |= visit(target, seen | {target})
            elif not target.startswith("granger_prune"):
                out.add(target.split(".")[0])
        reach[m] = out
        return out
    for m in modules:
        visit(m, {m})
    return reach


def test_only_the_model_side_subpackages_import_torch():
    reach = reachable_externals()
    subpackages = {m.split(".")[1] for m in reach if m.count(".") >= 1 and (ROOT / m.split(".")[1]).is_dir()}
    assert CORE | TORCH_SUBPACKAGES == subpackages, "a new subpackage must be classified here"
    with_torch = {m for m, ext in reach.items() if "torch" in ext}
    stage = {m: m.split(".")[1] if "." in m else "" for m in reach}
    assert not {m for m in with_torch if stage[m] not in TORCH_SUBPACKAGES}, \
        "the statistical core and the package root must not import torch"
    assert not {m for m, ext in reach.items() if "cupy" in ext}
    assert with_torch, "the model side imports torch: the import analysis finds nothing"


def test_statistical_core_never_imports_torch_or_cupy():
    code = ("import sys, granger_prune, " + ", ".join(f"granger_prune.{p}" for p in sorted(CORE))
            + ", granger_prune.backend; bad = [m for m in ('torch', 'cupy') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
