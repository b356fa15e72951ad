"""The package's modules import each other without cycles, including imports inside
functions (a cycle hidden there still ties two modules into one)."""

import ast
import pathlib

import pixelrnn

PACKAGE = pathlib.Path(pixelrnn.__file__).parent


def package_imports(package_dir: pathlib.Path, package: str) -> dict[str, set[str]]:
  """Module name (dotted, within the package: "models.registry") -> the package's modules
  it imports, anywhere in its source."""
  modules = {
    ".".join(path.relative_to(package_dir).with_suffix("").parts)
    for path in package_dir.rglob("*.py")
    if path.stem != "__init__"
  }
  graph = {}
  for name in modules:
    imported = set()
    source = (package_dir / (name.replace(".", "/") + ".py")).read_text()
    for node in ast.walk(ast.parse(source)):
      if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        # `from package.sub import a` imports module sub.a if there is one, else sub.
        targets = [f"{node.module}.{alias.name}" for alias in node.names]
      else:
        continue
      for target in targets:
        parts = target.split(".")
        if parts[0] != package:
          continue
        for end in range(len(parts), 1, -1):  # The longest prefix that names a module.
          if ".".join(parts[1:end]) in modules:
            imported.add(".".join(parts[1:end]))
            break
    graph[name] = imported - {name}
  return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One import cycle [a, b, ..., a], or None."""
  state = {}  # Module -> "open" while on the DFS path, "done" after.

  def visit(path):
    state[path[-1]] = "open"
    for nxt in sorted(graph[path[-1]]):
      if state.get(nxt) == "open":
        return path[path.index(nxt) :] + [nxt]
      if nxt not in state:
        cycle = visit(path + [nxt])
        if cycle:
          return cycle
    state[path[-1]] = "done"
    return None

  for start in sorted(graph):
    if start not in state:
      cycle = visit([start])
      if cycle:
        return cycle
  return None


def test_pixelrnn_has_no_import_cycle():
  graph = package_imports(PACKAGE, "pixelrnn")
  assert len(graph) > 20
  assert graph["models.registry"] >= {
    "models.pixelcnn",
    "models.row_lstm",
    "models.diagonal_bilstm",
  }
  cycle = find_cycle(graph)
  assert cycle is None, f"Import cycle in pixelrnn: {' -> '.join(cycle)}"


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path):
  (tmp_path / "a.py").write_text("from pkg import b\n")
  (tmp_path / "b.py").write_text("import os\nfrom pkg.c import thing\n")
  (tmp_path / "c.py").write_text("def f():\n  from pkg import a\n  return a\n")
  (tmp_path / "d.py").write_text("import pkg.a\n")
  graph = package_imports(tmp_path, "pkg")
  assert graph == {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
  assert find_cycle(graph) == ["a", "b", "c", "a"]
  (tmp_path / "c.py").write_text("def f():\n  return 1\n")
  assert find_cycle(package_imports(tmp_path, "pkg")) is None


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 60


def test_every_module_and_script_is_short_and_so_is_every_function():
  too_long = []
  # The package, and where a checkout has them, launch.py and the experiment scripts.
  scripts = [PACKAGE.parent / "launch.py", *sorted((PACKAGE.parent / "experiments").glob("*.py"))]
  for path in sorted(PACKAGE.rglob("*.py")) + [p for p in scripts if p.exists()]:
    source = path.read_text()
    if len(source.splitlines()) > MAX_MODULE_LINES:
      too_long.append(f"{path.name}: {len(source.splitlines())} lines")
    for node in ast.walk(ast.parse(source)):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        length = node.end_lineno - node.lineno + 1
        if length > MAX_FUNCTION_LINES:
          too_long.append(f"{path.name}:{node.lineno} {node.name}: {length} lines")
  assert not too_long, (
    f"over {MAX_MODULE_LINES} lines a module or {MAX_FUNCTION_LINES} a function: {too_long}"
  )
