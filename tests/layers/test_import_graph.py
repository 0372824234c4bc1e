"""kzoo.layers has no import cycle, counting the imports inside functions too (the way a cycle
is usually dodged: cudnn.py once imported LSTMCell and GRUCell inside its functions, because
recurrent.py imports cudnn.py and the cells import recurrent.py)."""

import ast
import pathlib

import kzoo.layers

ROOT = pathlib.Path(kzoo.layers.__file__).parent
PACKAGE = "kzoo.layers"


def module_names():
    """Every module of kzoo.layers by dotted name (a package by its own name)."""
    names = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join([PACKAGE, *parts])] = path
    return names


def imports(path, modules):
    """The kzoo.layers modules ``path`` imports, anywhere in the file: ``from P import name``
    imports P's ``__init__`` unless ``name`` is a submodule of P."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module in modules:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
    return found


def test_kzoo_layers_has_no_import_cycle():
    modules = module_names()
    graph = {name: imports(path, modules) - {name} for name, path in modules.items()}
    # The package's own __init__ imports everything to export it; what must not happen is a
    # module importing a name back from it (or from any package __init__ that imports it).
    done, cycles = set(), []

    def visit(name, path):
        if name in path:
            cycles.append(path[path.index(name):] + [name])
            return
        if name in done:
            return
        for dependency in sorted(graph[name]):
            visit(dependency, path + [name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_cudnn_module_knows_no_cell():
    """Which cell has which cuDNN kernel is the cell's knowledge (RecurrentCell.cudnn_kernel)."""
    modules = module_names()
    assert not {m for m in imports(modules[f"{PACKAGE}.cudnn"], modules)
                if m.startswith(PACKAGE)}
