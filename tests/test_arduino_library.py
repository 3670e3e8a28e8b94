"""firmware/ as an Arduino library (1.5 format) and a PlatformIO library, checked without
arduino-cli, the Arduino core or PlatformIO's downloads:
- the layout against the Arduino library specification: library.properties has every
  required field (its version is library.json's), src/ holds reds.h (`includes`), each
  example is examples/<Name>/<Name>.ino, and nothing outside src/ is a file the Arduino
  builder would compile;
- the Arduino builder compiles all of src/ recursively: with ARDUINO defined, the reference
  kernels that kernels/cortex_m/ replaces compile to nothing (REDS_ALL_SOURCES), so each op
  is defined once;
- every example sketch compiles as C++ with the Nano 33 BLE's flags (the mbed core's
  cflags.txt / cxxflags.txt: Cortex-M4, softfp FPU, -Os, gnu11 / gnu++14, its warnings,
  -DARDUINO=10819 -DARDUINO_ARDUINO_NANO33BLE) against a stand-in core (tests/arduino_stub:
  Arduino.h, PDM.h, mbed.h), with an exported keyword-spotting model in its folder (which
  carries the family's MFCC front end); with arm-none-eabi-g++ each sketch then links
  with every object of src/ and the stand-in core, so a symbol defined twice or missing
  fails here as it would in the Arduino IDE. Without arm-none-eabi-g++ the host g++
  checks them (-fsyntax-only: the sketch's Cortex-M inline assembly is not assembled; no link).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from csources import FIRMWARE, RUNTIME
from reds.build import firmware
from reds.export import export
from reds.family import open as open_family

HERE = Path(__file__).resolve().parent
STUB = HERE / "arduino_stub"
EXAMPLES = FIRMWARE / "examples"
# Arduino library specification (1.5): library.properties
REQUIRED = ("name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url", "architectures")
CATEGORIES = {"Display", "Communication", "Signal Input/Output", "Sensors", "Device Control", "Timing",
              "Data Storage", "Data Processing", "Other"}
COMPILED = {".c", ".cpp", ".cc", ".cxx", ".S", ".s", ".ino", ".pde"}  # what the builder compiles

ARM = all(shutil.which(t) for t in ("arm-none-eabi-gcc", "arm-none-eabi-g++"))
CC, CXX = ("arm-none-eabi-gcc", "arm-none-eabi-g++") if ARM else ("gcc", "g++")
# the Nano 33 BLE's flags (ArduinoCore-mbed variants/ARDUINO_NANO33BLE/cflags.txt, cxxflags.txt)
CPU = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=softfp", "-mfpu=fpv4-sp-d16"] if ARM else []
COMMON = ["-Os", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-Wno-unused-parameter", "-Werror",
          "-fdata-sections", "-ffunction-sections", "-fno-exceptions", "-funsigned-char",
          "-DARDUINO=10819", "-DARDUINO_ARDUINO_NANO33BLE", "-DARDUINO_ARCH_NRF52840", "-DARDUINO_ARCH_MBED"]
CFLAGS = ["-std=gnu11", *CPU, *COMMON]
CXXFLAGS = ["-std=gnu++14", "-fno-rtti", "-Wvla", *CPU, *COMMON]
needs_cxx = pytest.mark.skipif(shutil.which(CXX) is None or shutil.which(CC) is None,
                               reason="needs arm-none-eabi-g++ (or a host g++)")


def properties() -> dict[str, str]:
    lines = (FIRMWARE / "library.properties").read_text().splitlines()
    return dict(l.split("=", 1) for l in lines if "=" in l and not l.lstrip().startswith("#"))


def sketches() -> list[Path]:
    return sorted(p for p in EXAMPLES.iterdir() if p.is_dir())


def test_library_properties_has_every_field():
    props, lib = properties(), json.loads((FIRMWARE / "library.json").read_text())
    for k in REQUIRED:
        assert props.get(k, "").strip(), f"library.properties: {k} is missing or empty"
    assert props["name"] == lib["name"] == "reds"
    assert re.fullmatch(r"\d+\.\d+\.\d+", props["version"]) and props["version"] == lib["version"]
    assert props["category"] in CATEGORIES
    assert re.fullmatch(r"https?://\S+", props["url"])
    archs = [a.strip() for a in props["architectures"].split(",")]
    assert archs and all(re.fullmatch(r"\*|[a-z0-9_]+", a) for a in archs)
    assert "mbed_nano" in archs or "*" in archs  # the Nano 33 BLE's core
    assert props["includes"] == "reds.h" and (RUNTIME / "reds.h").is_file()
    assert lib["headers"] == "reds.h" and lib["build"]["srcDir"] == "src"


def test_layout_is_arduino_15():
    """src/ holds the sources; examples/<Name>/<Name>.ino; nothing compilable elsewhere."""
    assert RUNTIME == FIRMWARE / "src" and (RUNTIME / "reds.h").is_file()
    assert not (FIRMWARE / "utility").exists()  # the 1.0 format's folder
    names = [d.name for d in sketches()]
    assert {"SerialBenchmark", "KeywordSpotting"} <= set(names)
    for d in sketches():
        assert (d / f"{d.name}.ino").is_file(), f"examples/{d.name}/ has no {d.name}.ino"
        assert [p.name for p in d.glob("*.ino")] == [f"{d.name}.ino"]
    stray = [p.relative_to(FIRMWARE).as_posix() for p in FIRMWARE.rglob("*") if p.is_file()
             and p.suffix in COMPILED and RUNTIME not in p.parents and EXAMPLES not in p.parents]
    assert not stray, f"the Arduino builder would not compile these (outside src/): {stray}"
    lib = json.loads((FIRMWARE / "library.json").read_text())
    assert sorted(p.relative_to(FIRMWARE) for g in lib["examples"] for p in FIRMWARE.glob(g)) == \
        sorted(p.relative_to(FIRMWARE) for p in EXAMPLES.glob("*/*.ino"))


def test_each_op_is_defined_once_when_all_of_src_compiles():
    """The Arduino builder compiles every file of src/: the reference kernels that the
    cortex_m set replaces step aside under ARDUINO (REDS_ALL_SOURCES), the others do not."""
    assert firmware.kernel_targets() == ["cortex_m"], "a second optimized set would be compiled too by Arduino"
    opt = {p.name for p in firmware.kernel_dir("cortex_m").glob("*.c")}
    for ref in firmware.kernel_dir("reference").glob("*.c"):
        guarded = "#ifndef REDS_ALL_SOURCES" in ref.read_text()
        assert guarded == (ref.name in opt), ref.name
    assert "#define REDS_ALL_SOURCES" in (RUNTIME / "reds.h").read_text()


def _run(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"


@pytest.fixture(scope="module")
def library_objects(tmp_path_factory) -> list[Path]:
    """Every .c of src/, recursively, as the Arduino builder compiles a 1.5 library."""
    out = tmp_path_factory.mktemp("arduino-lib")
    objs = []
    for c in sorted(RUNTIME.rglob("*.c")):
        o = out / (c.relative_to(RUNTIME).as_posix().replace("/", "__") + ".o")
        _run([CC, *CFLAGS, f"-I{RUNTIME}", "-c", str(c), "-o", str(o)])
        objs.append(o)
    return objs


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A keyword-spotting family (1 x 49 x 10 MFCCs) that records REDS's MFCC front end,
    exported as reds_model.{h,c}, the name the sketches expect: the model carries the front
    end's tables and buffers and its class names."""
    from families import make_family
    from reds.ir.inputs import MfccFrontEnd

    fam = make_family(tmp_path_factory.mktemp("kws"), "dscnn-s", 0.25, frontend=MfccFrontEnd(20).to_json())
    out = tmp_path_factory.mktemp("arduino-model")
    export(open_family(fam), "c", out / "model", name="reds_model")
    return out / "model"


@needs_cxx
@pytest.mark.parametrize("name", [d.name for d in sketches()])
def test_example_compiles_for_the_nano(name, library_objects, model, tmp_path):
    folder = tmp_path / name  # the sketch folder, as a user fills it: the sketch, the exported model
    shutil.copytree(EXAMPLES / name, folder)
    for f in model.iterdir():
        shutil.copy2(f, folder / f.name)
    incs = [f"-I{STUB}", f"-I{RUNTIME}", f"-I{folder}"]
    objs = []
    ino = folder / f"{name}.ino"
    o = tmp_path / f"{name}.o"
    _run([CXX, *CXXFLAGS, *incs, "-x", "c++", *(["-c"] if ARM else ["-fsyntax-only"]), str(ino), "-o", str(o)])
    objs.append(o)
    for c in sorted(folder.glob("*.c")):  # the builder compiles the sketch folder's C files too
        o = tmp_path / f"{c.stem}.o"
        _run([CC, *CFLAGS, *incs, "-c", str(c), "-o", str(o)])
        objs.append(o)
    if not ARM:
        return
    core = tmp_path / "core.o"
    _run([CXX, *CXXFLAGS, f"-I{STUB}", "-c", str(STUB / "core.cpp"), "-o", str(core)])
    elf = tmp_path / f"{name}.elf"
    _run([CC, *CPU, "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections",
          "-T", str(STUB / "nrf52840_app.ld"), *map(str, objs), str(core), *map(str, library_objects),
          "-lm", "-o", str(elf)])
    syms = subprocess.run(["arm-none-eabi-nm", "-C", str(elf)], capture_output=True, text=True).stdout
    for s in ("setup()", "loop()", "reds_run", "reds_model"):
        assert re.search(rf"\s{re.escape(s)}$", syms, re.M), s
