"""The package's layout is its architecture: a folder per layer, imports only downwards,
no import circles; and every constant the C side defines is read from it, never copied.

The layers, bottom up (README "Layout"): the foundation (errors, where the C sources
are, staged output folders, text tables), `ir`, `nn`, `search` and `data`, `family`,
`train` and `export`, `build`, `device`, `bench`, `cli`. Every import statement of every
module, lazy ones inside functions included, is read with `ast`.
"""
from __future__ import annotations

import ast
import fnmatch
import json
import re
import subprocess
from pathlib import Path

import pytest

from csources import CC, CFLAGS, FIRMWARE, LDLIBS, ROOT, RUNTIME, runtime
from reds.build import firmware
from reds.device.protocol import Protocol
from reds.export import abi
from reds.export.c.lower import OP_ENUM, ORDERS

PKG = ROOT / "reds"
RANK = {"reds": 0, "reds.errors": 0, "reds.sources": 0, "reds.staging": 0, "reds.tables": 0,
        "reds.ir": 1, "reds.nn": 2, "reds.search": 3, "reds.data": 3, "reds.family": 4, "reds.manifest": 4, "reds.train": 5,
        "reds.export": 5, "reds.adapt": 5, "reds.probe": 5, "reds.quant": 5, "reds.build": 6, "reds.device": 7, "reds.bench": 8, "reds.cli": 9, "reds.__main__": 9}


def modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        if "_c" in p.relative_to(PKG).parts:
            continue
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The reds modules `name` imports (the module itself, or the package a name comes from)."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "reds"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = pkg.split(".")
                up = up[:len(up) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            if base.split(".")[0] != "reds":
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.add(sub if sub in known else base)
    return {m for m in found if m != name}


def rank(module: str) -> int:
    for n in sorted(RANK, key=len, reverse=True):
        if module == n or module.startswith(n + "."):
            return RANK[n]
    raise AssertionError(f"{module}: in no layer (add it to RANK and to the README's layout)")


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: imports(m, p, set(mods)) for m, p in mods.items()}


def test_every_module_is_in_a_layer_and_imports_only_downwards():
    bad = [f"{a} (layer {rank(a)}) imports {b} (layer {rank(b)})"
           for a, deps in graph().items() for b in deps if rank(b) > rank(a)]
    assert not bad, bad


def test_no_import_circle():
    g = graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m):
        state[m] = 1
        path.append(m)
        for d in sorted(g.get(m, ())):
            if state.get(d) == 1:
                raise AssertionError("import circle: " + " -> ".join(path[path.index(d):] + [d]))
            if d not in state:
                visit(d)
        path.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)


def test_no_grab_bag_modules():
    assert not [p for p in PKG.rglob("*.py") if p.stem in ("utils", "util", "helpers", "misc", "common")]


def test_the_graph_sees_real_edges():
    """A negative control: the reader finds the imports that are there, lazy ones included."""
    g = graph()
    assert "reds.ir.spec" in g["reds.ir.cost"] and "reds.family" in g["reds.export.source"]
    assert "reds.bench.bench" in g["reds.cli.commands"]  # imported inside a function
    assert rank("reds.cli.commands") > rank("reds.bench.bench") > rank("reds.build") > rank("reds.export")


# ---- one source for each constant the C side defines ------------------------------------------
def test_op_codes_and_layouts_are_the_headers():
    assert set(OP_ENUM.values()) == set(abi.op_codes())
    assert set(ORDERS) == set(abi.layouts()) and abi.layout_names()[0] == abi.DEFAULT_LAYOUT
    assert abi.layouts() == {"rowmajor": 0, "nested": 1}
    assert abi.layer_masks() == {"run": 0, "skip": 1, "skip_keep": 2}


def test_constants_read_from_the_headers_are_the_compiled_ones(tmp_path):
    """The numbers Python reads from the headers are the ones a C compiler sees."""
    if CC is None:
        pytest.skip("needs a C compiler")
    prog = tmp_path / "abi.c"
    ops = sorted(abi.op_codes())
    prog.write_text("#include <stdio.h>\n#include \"reds_protocol.h\"\nint main(void) {\n"
                    "    printf(\"%d %d %d %d %lu %d\\n\", REDS_ABI_VERSION, REDS_MAX_SUBMODELS, REDS_PROTO_LINE, "
                    "REDS_PROTO_MAX_LOOP, (unsigned long)REDS_PROTO_MAX_INFER, REDS_PROTO_VERSION);\n"
                    + "".join(f"    printf(\"{o} %d\\n\", (int){o});\n" for o in ops)
                    + "".join(f"    printf(\"REDS_LAYER_{m.upper()} %d\\n\", (int)REDS_LAYER_{m.upper()});\n"
                              for m in abi.layer_masks())
                    + "    printf(\"nested %d rowmajor %d\\n\", (int)REDS_LAYOUT_NESTED, (int)REDS_LAYOUT_ROWMAJOR);\n"
                    "    return 0;\n}\n")
    _, incs = runtime()
    r = subprocess.run([CC, *CFLAGS, *incs, str(prog), "-o", str(tmp_path / "abi"), *LDLIBS], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    lines = subprocess.run([str(tmp_path / "abi")], capture_output=True, text=True, check=True).stdout.splitlines()
    assert [int(v) for v in lines[0].split()] == [abi.abi_version(), abi.max_submodels(), abi.protocol_limit("LINE"),
                                                 abi.protocol_limit("MAX_LOOP"), abi.protocol_limit("MAX_INFER"),
                                                 abi.protocol_limit("VERSION")]
    compiled = {l.split()[0]: int(l.split()[1]) for l in lines[1:-1]}
    assert {n: v for n, v in compiled.items() if n.startswith("REDS_OP_")} == abi.op_codes()
    assert {n[len("REDS_LAYER_"):].lower(): v for n, v in compiled.items() if n.startswith("REDS_LAYER_")} == \
        abi.layer_masks()
    assert lines[-1] == f"nested {abi.layouts()['nested']} rowmajor {abi.layouts()['rowmajor']}"


def test_python_protocol_uses_the_header_limits():
    class Fam:  # the least of an opened family that Protocol reads
        class manifest:
            arch, input_shape, num_classes, submodels, frontend = "dnn-s", [1, 2, 2], 3, [], None
        hash = "0" * 64
    p = Protocol(Fam, None, lambda b: None, "x")
    assert (p.max_line, p.max_loop, p.max_infer, p.version) == tuple(
        abi.protocol_limit(n) for n in ("LINE", "MAX_LOOP", "MAX_INFER", "VERSION"))


def test_reserved_names_cover_the_public_api():
    text = "\n".join(p.read_text() for p in RUNTIME.glob("*.h"))
    public = set(re.findall(r"^\w[\w\s\*]*?\b(reds_\w+)\s*\(", text, re.M))
    assert public and public <= abi.reserved_names()
    assert {"reds_run", "reds_select", "reds_proto_feed", "reds_format_float", "reds_model_t"} <= abi.reserved_names()


def test_platformio_library_compiles_what_the_build_picks():
    """firmware/library.json's srcFilter selects exactly the files `reds build` compiles
    for a cortex_m board (PlatformIO builds firmware/ as a library with it; its filter is
    relative to the library's srcDir, src/)."""
    lib = json.loads((FIRMWARE / "library.json").read_text())
    src = FIRMWARE / lib["build"]["srcDir"]
    assert src == RUNTIME and lib["build"]["includeDir"] == lib["build"]["srcDir"]
    files = [p.relative_to(src).as_posix() for p in src.rglob("*.c")]
    chosen = set()
    for rule in lib["build"]["srcFilter"]:
        sign, pattern = rule[0], rule[2:-1]
        hits = {f for f in files if fnmatch.fnmatch(f, pattern) and ("/" in pattern or "/" not in f)}
        chosen = chosen | hits if sign == "+" else chosen - hits
    want = {p.relative_to(src).as_posix() for p in firmware.sources("cortex_m")}
    assert chosen == want
    props = dict(l.split("=", 1) for l in (FIRMWARE / "library.properties").read_text().splitlines() if "=" in l)
    assert props["name"] == lib["name"] == "reds" and props["version"] == lib["version"]
