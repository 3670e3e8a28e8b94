"""The Arduino Nano 33 BLE board (boards/nano33ble) without the board and without
PlatformIO's downloads:
- `reds build --board nano33ble` writes a PlatformIO project that `pio project config`
  accepts (skips without `pio`), with the platform and the Arduino core pinned to exact
  versions, and its main.cpp is the library's SerialBenchmark sketch;
- `reds build` compiles (`pio run`) and never uploads (a stand-in `pio` records what it is
  asked); without PlatformIO or its downloads it says so in one line and keeps the project;
  a compile error fails the build in one line;
- the runtime, protocol, model and the sketch compile with arm-none-eabi-gcc/g++ for the
  nRF52840 (Cortex-M4F flags) against a minimal Arduino stand-in (tests/arduino_stub), link
  into an image for the nRF52840's application region, and fit it with room for the
  Arduino core;
- no sketch waits for the host without a timeout (`while (!Serial)`);
- `reds flash` uploads (`pio run -t upload`) and says in one line what is missing
  (PlatformIO, its downloads, the board).
With REDS_PORT (and REDS_NANO_FAMILY, the family flashed there) set, the real board is
benched.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from families import shared_family
from reds.build import build, firmware, platformio, summary
from reds.build.boards import get_board
from reds.cli import main
from reds.device.flash import classify, pio_command, upload_command
from reds.errors import RedsError
from reds.family import open as open_family
from reds.sources import firmware_dir

HERE = Path(__file__).resolve().parent
STUB = HERE / "arduino_stub"
SKETCHES = sorted((firmware_dir() / "examples").glob("*/*.ino"))
# the exact releases boards/nano33ble/platformio.ini pins (README there says why)
PLATFORM, CORE = "platformio/nordicnrf52 @ 10.6.0", "platformio/framework-arduino-mbed @ 4.1.5"
BOARD = get_board("nano33ble")
M4F = list(BOARD.cflags)
ARM = all(shutil.which(t) for t in ("arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-size"))
needs_arm = pytest.mark.skipif(not ARM, reason="needs gcc-arm-none-eabi and libnewlib-arm-none-eabi "
                               "(apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A build as without PlatformIO (the one here would try its downloads for a minute)."""
    fam = shared_family(tmp_path_factory, "dscnn-s", 0.25)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(platformio, "pio_command", lambda: None)
        return fam, build(open_family(fam), "nano33ble", tmp_path_factory.mktemp("nano") / "build")


def test_board_facts():
    b = BOARD
    assert (b.build, b.clock_hz, b.flash_bytes, b.ram_bytes, b.timer, b.cycle) == \
        ("platformio", 64_000_000, 983_040, 262_144, "dwt-cyccnt", "cpu-cycle")
    ini = (b.folder / "platformio.ini").read_text()
    for line in ("board = nano33ble", "framework = arduino", "upload_protocol = sam-ba"):
        assert line in ini
    for line in (f"platform = {PLATFORM}", f"platform_packages = {CORE}"):
        assert line in ini.splitlines()
    assert not (b.folder / "src").exists()  # the program is the library's example sketch
    main_cpp = platformio.sketch(b).read_text()
    assert platformio.sketch(b) == firmware_dir() / "examples" / "SerialBenchmark" / "SerialBenchmark.ino"
    for s in ("0xE000EDFC", "DEMCR_TRCENA", "DWT_CTRL_CYCCNTENA", "Serial.write", "reds_proto_feed"):
        assert s in main_cpp


def test_no_sketch_waits_for_a_host_forever():
    """`while (!Serial)` alone never returns on a board without a host; each wait is bounded
    by millis()."""
    assert len(SKETCHES) >= 2
    for ino in SKETCHES:
        text = re.sub(r"/\*.*?\*/|//[^\n]*", "", ino.read_text(), flags=re.S)
        assert not re.search(r"while\s*\(\s*!\s*Serial\s*\)", text), ino
        waits = re.findall(r"while\s*\((.*!\s*Serial\b.*)$", text, re.M)
        assert waits and all("millis()" in w for w in waits), (ino, waits)


def test_build_writes_a_project(project):
    fam, res = project
    out = Path(res.out)
    assert res.kind == "platformio" and (out / "platformio.ini").is_file()
    for f in ("src/main.cpp", "src/reds_config.h", "src/dscnn_s.c", "src/dscnn_s.h", "lib/reds/library.json"):
        assert (out / f).is_file(), f
    assert (out / "src" / "main.cpp").read_text() == platformio.sketch(BOARD).read_text()
    ini = (out / "platformio.ini").read_text().splitlines()
    assert f"platform = {PLATFORM}" in ini and f"platform_packages = {CORE}" in ini
    # the runtime with the board's kernels (cortex_m, the reference for the rest), flat
    want = [p.name for p in firmware.sources(BOARD.kernels) + firmware.headers(BOARD.kernels)]
    assert sorted(p.name for p in (out / "lib" / "reds").iterdir() if p.suffix in (".c", ".h")) == sorted(want)
    assert (out / "lib" / "reds" / "conv2d_f32.c").read_text() == \
        (firmware.kernel_dir("cortex_m") / "conv2d_f32.c").read_text()
    assert "#define REDS_MODEL dscnn_s" in (out / "src" / "reds_config.h").read_text()
    if ARM:
        assert res.text > 0 and res.flash_used < res.flash_bytes and res.ram_used < res.ram_bytes
    text = summary(res)
    assert "reds flash" in text
    why = [l for l in text.splitlines() if "not compiled by PlatformIO" in l]
    assert len(why) == 1 and "not installed (pip install platformio" in why[0]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(platformio, "pio_command", lambda: None)
        assert build(open_family(fam), "nano33ble", out).rebuilt is False


def test_pio_accepts_the_project(project):
    pio = pio_command()
    if pio is None:
        pytest.skip("PlatformIO is not installed (pip install platformio)")
    r = subprocess.run([pio, "project", "config", "-d", project[1].out, "--json-output"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    conf = json.loads(r.stdout[r.stdout.index("["):])
    env = dict(conf)["env:nano33ble"]
    opts = dict(env)
    assert (opts["platform"], opts["board"]) == (PLATFORM, "nano33ble")
    assert opts["platform_packages"] in ([CORE], CORE)


@needs_arm
def test_compiles_links_and_fits_the_nrf52840(project, tmp_path):
    out = Path(project[1].out)
    lib, src = out / "lib" / "reds", out / "src"
    common = [*M4F, "-O2", "-ffunction-sections", "-fdata-sections", "-Wall", "-Wextra", "-Werror"]
    objs = []
    jobs = [(["arm-none-eabi-gcc", "-std=c99", "-ffp-contract=fast"], c) for c in
            [*sorted(lib.glob("*.c")), src / "dscnn_s.c"]]
    jobs += [(["arm-none-eabi-g++", "-std=gnu++17", "-fno-exceptions", "-fno-rtti"], c)
             for c in (src / "main.cpp", STUB / "core.cpp")]
    for cc, c in jobs:
        o = tmp_path / (c.stem + ".o")
        r = subprocess.run([*cc, *common, f"-I{STUB}", f"-I{lib}", f"-I{src}", "-c", str(c), "-o", str(o)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        objs.append(str(o))
    elf = tmp_path / "nano.elf"
    r = subprocess.run(["arm-none-eabi-gcc", *M4F, "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
                        "-Wl,--gc-sections", "-T", str(STUB / "nrf52840_app.ld"), *objs, "-lm", "-o", str(elf)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text, data, bss = (int(v) for v in subprocess.run(["arm-none-eabi-size", "-B", str(elf)], capture_output=True,
                                                      text=True).stdout.splitlines()[1].split()[:3])
    core_flash, core_ram = BOARD.raw["core_flash_bytes"], BOARD.raw["core_ram_bytes"]
    assert text + data <= BOARD.flash_bytes - core_flash, (text, data)
    assert data + bss <= BOARD.ram_bytes - core_ram, (data, bss)
    syms = {l.split()[-1] for l in subprocess.run(["arm-none-eabi-nm", "-C", str(elf)], capture_output=True,
                                                    text=True).stdout.splitlines()}
    for s in ("reds_proto_feed", "reds_run", "dscnn_s", "setup()", "loop()"):
        assert s in syms, s
    print(f"nano33ble image (stub core): text {text} data {data} bss {bss}", file=sys.stderr)


def _fake_pio(folder: Path, output: str, rc: int) -> None:
    folder.mkdir()
    p = folder / "pio"
    p.write_text(f"#!/bin/sh\ncat <<'END'\n{output}\nEND\nexit {rc}\n")
    p.chmod(p.stat().st_mode | stat.S_IEXEC)


def _recording_pio(folder: Path, output: str = "", rc: int = 0) -> Path:
    """A stand-in `pio` that writes its arguments (one a line) to folder/args and prints `output`."""
    folder.mkdir()
    p = folder / "pio"
    p.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > '{folder / 'args'}'\ncat <<'END'\n{output}\nEND\nexit {rc}\n")
    p.chmod(p.stat().st_mode | stat.S_IEXEC)
    return p


def test_build_compiles_and_never_uploads(project, tmp_path, monkeypatch):
    fam = open_family(project[0])
    pio = _recording_pio(tmp_path / "bin", "Linking .pio/build/nano33ble/firmware.elf\n[SUCCESS]")
    monkeypatch.setattr(platformio, "pio_command", lambda: str(pio))
    out = tmp_path / "b"
    res = build(fam, "nano33ble", out)
    args = (tmp_path / "bin" / "args").read_text().split()
    assert args[:2] == ["run", "-d"] and len(args) == 3, args  # compile only: no -t upload, no port
    assert "upload" not in args and "-t" not in args
    assert "compiled by PlatformIO" in summary(res) and "not compiled" not in summary(res)
    assert json.loads((out / "build.json").read_text())["compiled"] is True
    assert upload_command("pio", out, "/dev/ttyACM9") == ["pio", "run", "-d", str(out), "-t", "upload",
                                                          "--upload-port", "/dev/ttyACM9"]


def test_build_says_in_one_line_when_pio_cannot_compile(project, tmp_path, monkeypatch):
    fam = open_family(project[0])
    pio = _recording_pio(tmp_path / "bin", "Platform Manager: Installing platformio/nordicnrf52 @ 10.6.0\n"
                                            "HTTPClientError: ", 1)
    monkeypatch.setattr(platformio, "pio_command", lambda: str(pio))
    out = tmp_path / "b"
    res = build(fam, "nano33ble", out)  # the project is kept: the download failed, not the code
    why = [l for l in summary(res).splitlines() if "not compiled by PlatformIO" in l]
    assert len(why) == 1 and "could not download" in why[0] and (out / "platformio.ini").is_file()
    assert json.loads((out / "build.json").read_text())["compiled"] is False
    assert build(fam, "nano33ble", out).rebuilt is True  # not compiled yet, and pio is there: again
    broken = _recording_pio(tmp_path / "bin2", "src/main.cpp:12:1: error: 'Serial' was not declared", 1)
    monkeypatch.setattr(platformio, "pio_command", lambda: str(broken))
    with pytest.raises(RedsError) as e:
        build(fam, "nano33ble", tmp_path / "c")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("pio run (compiling the sketch) failed: src/main.cpp:12:1: error:")
    assert not (tmp_path / "c").exists()


def test_flash_says_what_is_missing(project, tmp_path, monkeypatch, capsys):
    out = project[1].out
    monkeypatch.setattr("reds.device.flash.pio_command", lambda: None)
    assert main(["flash", out]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("reds: error: PlatformIO (pio) not found: pip install platformio")
    monkeypatch.undo()
    fake = tmp_path / "bin"
    _fake_pio(fake, "Platform Manager: Installing nordicnrf52\nHTTPClientError: \nError: ...", 1)
    monkeypatch.setattr("reds.device.flash.pio_command", lambda: str(fake / "pio"))
    assert main(["flash", out, "--port", "/dev/ttyACM9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("reds: error: PlatformIO could not download the nordicnrf52 platform")
    assert classify("Looking for upload port...\nError: No device found", 1, Path(out)).startswith(
        "no Nano 33 BLE found")
    assert main(["flash", str(tmp_path)]) == 2
    assert "not a reds build" in capsys.readouterr().err
    ok = _recording_pio(tmp_path / "ok", "[SUCCESS]")
    monkeypatch.setattr("reds.device.flash.pio_command", lambda: str(ok))
    assert main(["flash", out, "--port", "/dev/ttyACM9"]) == 0
    assert (tmp_path / "ok" / "args").read_text().split() == ["run", "-d", out, "-t", "upload", "--upload-port",
                                                              "/dev/ttyACM9"]


@pytest.mark.skipif(not (os.environ.get("REDS_PORT") and os.environ.get("REDS_NANO_FAMILY")),
                    reason="a real Nano 33 BLE: set REDS_PORT=/dev/ttyACM0 and REDS_NANO_FAMILY=<family flashed there>")
def test_real_nano(tmp_path, capsys):
    rc = main(["bench", os.environ["REDS_NANO_FAMILY"], "--port", os.environ["REDS_PORT"], "--runs", "5",
               "--json", str(tmp_path / "b.json")])
    assert rc == 0
    rep = json.loads((tmp_path / "b.json").read_text())
    assert rep["board"] == "nano33ble" and rep["timer"] == "dwt-cyccnt" and rep["clock_hz"] == 64_000_000
    assert rep["switch"]["max"] < 200  # an index store, in real cycles
