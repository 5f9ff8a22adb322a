"""pipeline/ is pure algorithm code: it never imports Ray and never calls .cuda()."""

import ast
from pathlib import Path

PIPELINE = Path(__file__).resolve().parents[2] / "pipeline"


def offences(source: str, name: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename=name)):
        if isinstance(node, ast.Import):
            found += [f"{name}: import {a.name}" for a in node.names if a.name.split(".")[0] == "ray"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ray":
            found.append(f"{name}: from {node.module} import ...")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "cuda":
            found.append(f"{name}:{node.lineno}: .cuda()")
    return found


def test_the_checker_catches_offences():
    assert offences("import ray\n", "x") and offences("from ray.data import read_parquet\n", "x")
    assert offences("t = t.cuda()\n", "x") and not offences("d = torch.cuda.is_available()\n", "x")


def test_pipeline_never_imports_ray_or_calls_cuda():
    found = []
    for path in sorted(PIPELINE.rglob("*.py")):
        found += offences(path.read_text(), str(path))
    assert not found, found
