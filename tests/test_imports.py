"""The package's modules import each other without cycles, including imports inside
functions (a cycle hidden there still ties two modules into one)."""

import ast
import pathlib

import pixelrnn

PACKAGE = pathlib.Path(pixelrnn.__file__).parent


def package_imports(package_dir: pathlib.Path, package: str) -> dict[str, set[str]]:
  """Module name -> the package's modules it imports, anywhere in its source."""
  modules = {path.stem for path in package_dir.glob("*.py") if path.stem != "__init__"}
  graph = {}
  for name in modules:
    imported = set()
    for node in ast.walk(ast.parse((package_dir / f"{name}.py").read_text())):
      if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        # `from package import a, b` imports modules a and b; `from package.a import x`, a.
        targets = (
          [f"{node.module}.{alias.name}" for alias in node.names]
          if node.module == package
          else [node.module]
        )
      else:
        continue
      for target in targets:
        parts = target.split(".")
        if parts[0] == package and len(parts) > 1 and parts[1] in modules:
          imported.add(parts[1])
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
  assert len(graph) > 20 and graph["models"] >= {"pixelcnn", "row_lstm", "diagonal_bilstm"}
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
