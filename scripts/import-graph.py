#!/usr/bin/env python3
"""The crate's module graph: for each top-level module of src/, the top-level modules its
library code names in `use crate::…` statements (and in `crate::…` paths in code), then a check
that the graph has no cycle. Test code (`#[cfg(test)] mod tests` and `*_tests.rs`) is left out.

    python3 scripts/import-graph.py        # prints `module -> imports`, exits 1 on a cycle
                                           # or when docs/architecture.md shows another graph

A name re-exported at the crate root (`use crate::WebSocket`) counts as an import of the module
that defines it (`socket`), as lib.rs's `pub use` lines say.
"""
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"


def module_of(path):
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".rs")


def top_level_names(tree):
    """The first path segment of each item in a `use crate::` tree (`{a::b, c::{d, e}}` → a, c)."""
    names, depth, token = [], 0, ""
    for ch in tree:
        if ch == "{":
            depth += 1
            if depth == 1:
                token = ""
                continue
        if ch == "}":
            depth -= 1
        if depth <= 1 and ch in ",}":
            if token.strip():
                names.append(token.strip())
            token = ""
            continue
        if depth >= 1 or not tree.startswith("{"):
            token += ch
    if not tree.startswith("{"):
        names = [tree]
    return {re.split(r"::|\s", n.strip())[0] for n in names if n.strip()}


# The crate root's re-exports (`pub use socket::WebSocket;`): a name used as `crate::WebSocket`
# is the module's that defines it.
ROOT_NAMES = {}
for module, tree in re.findall(r"pub use (\w+)::(\{.*?\}|\w+)\s*;", (SRC / "lib.rs").read_text(), re.S):
    for name in re.findall(r"\w+", tree):
        ROOT_NAMES.setdefault(name, module)

graph = {}
for path in sorted(SRC.rglob("*.rs")):
    if path.name.endswith("_tests.rs"):
        continue
    module = module_of(path)
    if module == "lib":
        continue
    text = path.read_text()
    text = re.split(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*mod tests", text)[0]
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
    deps = graph.setdefault(module, set())
    for tree in re.findall(r"\buse crate::(\{.*?\}|[\w:]+)\s*;", code, re.S):
        deps |= top_level_names(tree)
    deps |= set(re.findall(r"\bcrate::([a-z_]+)::", code))
    deps |= {ROOT_NAMES.get(name, name) for name in list(deps)}
    deps.discard(module)
    deps.discard("self")

# What is left that names no module (a macro, say) is dropped.
for deps in graph.values():
    deps &= set(graph)
modules = sorted(graph)
for module in modules:
    print(f"{module} -> {', '.join(sorted(graph[module])) or '(nothing)'}")

# A cycle: depth-first search over the graph.
state, cycle = {}, []


def visit(node, stack):
    state[node] = "open"
    for dep in sorted(graph.get(node, ())):
        if state.get(dep) == "open":
            cycle.extend(stack[stack.index(dep):] + [dep] if dep in stack else [node, dep])
            return True
        if dep not in state and visit(dep, stack + [dep]):
            return True
    state[node] = "done"
    return False


for module in modules:
    if module not in state and visit(module, [module]):
        print("cycle: " + " -> ".join(cycle))
        sys.exit(1)
print("no cycle")

# docs/architecture.md shows the same graph ("Imports between modules"): keep it true.
doc = (SRC.parent / "docs" / "architecture.md").read_text()
block = re.search(r"### Imports between modules.*?```\n(.*?)```", doc, re.S)
shown = {}
for line in (block.group(1) if block else "").splitlines():
    name, _, deps = line.partition("->")
    shown[name.strip()] = deps.strip()
actual = {m: ", ".join(sorted(graph[m])) or "(nothing)" for m in modules}
if shown != actual:
    for m in sorted(set(shown) | set(actual)):
        if shown.get(m) != actual.get(m):
            print(f"docs/architecture.md shows {m} -> {shown.get(m, 'nothing (missing)')}; the code: {actual.get(m, 'no such module')}")
    sys.exit(1)
print("docs/architecture.md shows this graph")
