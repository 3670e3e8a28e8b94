"""`reds build`: a family folder -> firmware for a board (an ELF that speaks the protocol).

A board's `build` field (board.json) says how: `gcc-bare-metal` (qemu-m4: compiled and
linked here, below), `make` (rpi: a Linux program, `buildkinds.build_make`) or
`platformio` (nano33ble: a PlatformIO project for `reds flash`, `buildkinds.build_platformio`).
What follows describes the bare-metal kind; the others share the checks and the stamp.

Steps: refuse early what cannot fit (the family's weights against the board's flash, its
arena against the RAM); export the family as C into BUILD/model (`reds export --format
c`); compile the runtime (`firmware/`), the board's port (`boards/<board>/`) and the model
with the board's CPU flags; link with the board's linker script; measure text / data /
bss with `size` against the board's flash and RAM. The linker's own overflow error is
turned into the same one-line refusal.

BUILD/build.json records what was built and a key over every input (the family's hash,
the C sources, the flags, the exporter), so `reds bench` rebuilds only when one changed.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from . import __version__
from .boards import Board, firmware_dir, get_board, source_root
from .errors import RedsError

STAMP = "build.json"
FORMAT = "reds-build"
MODEL_DIR = "model"
ELF = "firmware.elf"
LOG = "build.log"
FIRMWARE_SOURCES = ("reds_runtime.c", "reds_kernels.c", "reds_protocol.c")
# -ffp-contract=fast: a*b + c compiles to one vfma.f32 (ISO C mode turns contraction off);
# the kernels' inner loops are multiply-adds, ~15 % fewer instructions.
CFLAGS = ("-O2", "-std=c99", "-ffp-contract=fast", "-Wall", "-Wextra", "-ffunction-sections", "-fdata-sections")
LDFLAGS = ("-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections")
LIBS = ("-lm",)


@dataclass
class BuildResult:
    board: str
    out: str
    elf: str
    model: str  # the exported model's C name
    family_hash: str
    layout: str
    text: int
    data: int
    bss: int
    flash_used: int  # text + data (the initial values of .data live in flash)
    ram_used: int  # data + bss, the stack included
    flash_bytes: int
    ram_bytes: int
    stack_bytes: int
    key: str
    rebuilt: bool = True
    kind: str = "gcc-bare-metal"  # the board's build kind
    note: str = ""  # what the sizes mean when they are not a linked image's

    def summary(self) -> str:
        def pct(a, b):
            return f"{100.0 * a / b:.1f} %" if b else "?"
        if self.kind != "gcc-bare-metal":
            from .buildkinds import summary
            return summary(self)
        return (f"{'built' if self.rebuilt else 'up to date:'} {self.elf} for {self.board} (model {self.model}, layout {self.layout}, "
                f"family {self.family_hash[:12]})\n"
                f"  text {self.text:,} B  data {self.data:,} B  bss {self.bss:,} B\n"
                f"  flash {self.flash_used:,} of {self.flash_bytes:,} B ({pct(self.flash_used, self.flash_bytes)})  "
                f"RAM {self.ram_used:,} of {self.ram_bytes:,} B ({pct(self.ram_used, self.ram_bytes)}, "
                f"{self.stack_bytes:,} B of it stack)")


# ---- checks ------------------------------------------------------------------------------
def missing_toolchain(board: Board) -> str | None:
    """None if the board's compiler, `size` and C library are installed, else the reason."""
    tc = board.toolchain
    pkgs = " ".join(tc.get("packages", [])) or "the board's toolchain"
    fix = f"install {pkgs} (Debian/Ubuntu: apt-get install {pkgs})"
    for tool in (tc.get("cc"), tc.get("size")):
        if not tool or shutil.which(tool) is None:
            return f"{tool or 'a compiler'} not found: {fix}"
    try:
        lib = subprocess.run([tc["cc"], *board.cflags, "-print-file-name=libc_nano.a"], capture_output=True,
                             text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"{tc['cc']} does not run ({e}): {fix}"
    if not os.path.isabs(lib):
        return f"{tc['cc']} has no C library (newlib): {fix}"
    return None


def check_toolchain(board: Board) -> None:
    why = missing_toolchain(board)
    if why:
        raise RedsError(why)


def limited(board: Board, flash: int | None, ram: int | None) -> Board:
    """The board with at most `flash` / `ram` bytes (None: the board's own)."""
    for what, v in (("flash", flash), ("ram", ram)):
        if v is not None and v <= 0:
            raise RedsError(f"--{what} must be a positive number of bytes, got {v}")
    if flash is None and ram is None:
        return board
    return replace(board, flash_bytes=min(board.flash_bytes, flash or board.flash_bytes),
                   ram_bytes=min(board.ram_bytes, ram or board.ram_bytes),
                   raw={**board.raw, "limited": True})


def describe(board: Board) -> str:
    if board.raw.get("limited"):
        return f"{board.name} limited to {board.flash_bytes:,} B flash and {board.ram_bytes:,} B RAM"
    return board.name


def model_name(arch: str) -> str:
    """The exported model's C name: the architecture, e.g. dscnn-s -> dscnn_s."""
    name = re.sub(r"\W", "_", arch)
    return name if re.match(r"[A-Za-z_]", name) else f"m_{name}"


def precheck(family_dir: Path, board: Board) -> None:
    """Refuse before exporting when the family's weights or activations cannot fit."""
    from .export.c import absorbed_biases
    from .family import read_manifest

    fam = read_manifest(family_dir)
    spec = fam.spec()
    big = fam.submodels[-1]
    by_name = {l.name: l for l in spec.layers}
    absorbed = sum(4 * spec.size(by_name[n].out_ch, big.widths) for n in absorbed_biases(spec))
    weights = big.weight_bytes - absorbed  # at least this much goes into flash
    if weights > board.flash_bytes:
        raise RedsError(f"{family_dir}: does not fit {describe(board)}: its weights alone take {weights:,} B of flash, "
                        f"the board has {board.flash_bytes:,} B (train a smaller family: --width or --flash)")
    ram = big.arena_bytes + 4 * spec.input_shape[0] * spec.input_shape[1] * spec.input_shape[2] + board.stack_bytes
    if ram > board.ram_bytes:
        raise RedsError(f"{family_dir}: does not fit {describe(board)}: the largest submodel's activations, the input "
                        f"and the stack take {ram:,} B of RAM, the board has {board.ram_bytes:,} B "
                        f"(train with --ram to bound the arena)")


def check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise RedsError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and read_stamp(out) is None:
        raise RedsError(f"{out}: folder is not empty and holds no reds build ({STAMP}); choose another --out")


def read_stamp(out: Path) -> dict | None:
    try:
        d = json.loads((Path(out) / STAMP).read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) and d.get("format") == FORMAT else None


# ---- the build -----------------------------------------------------------------------------
def _digest(h, path: Path) -> None:
    h.update(str(path.name).encode() + b"\0" + path.read_bytes() + b"\0")


def build_key(family_hash: str, board: Board, layout: str, name: str) -> str:
    """sha256 over everything the ELF depends on."""
    h = hashlib.sha256()
    h.update(json.dumps([__version__, family_hash, layout, name, CFLAGS, LDFLAGS, LIBS]).encode())
    for p in sorted(firmware_dir().glob("*.[ch]")):
        _digest(h, p)
    for p in sorted(board.folder.rglob("*")):
        if p.is_file() and (p.suffix in (".c", ".h", ".ld", ".json", ".cpp", ".ini") or p.name == "Makefile"):
            _digest(h, p)
    for p in sorted((source_root() / "reds" / "export").glob("*.py")):
        _digest(h, p)
    return h.hexdigest()


def defines(board: Board, name: str) -> list[str]:
    frac = board.cycles_per_tick()
    return [f"-DREDS_MODEL={name}", f'-DREDS_MODEL_HEADER="{name}.h"', f"-DREDS_INPUT_FLOATS={name.upper()}_INPUT_SIZE",
            f"-DBOARD_CYCLES_NUM={frac.numerator}u", f"-DBOARD_CYCLES_DEN={frac.denominator}u"]


def _run(cmd: list[str], log: list[str]) -> subprocess.CompletedProcess:
    log.append("$ " + shlex.join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    log.append((r.stdout + r.stderr).rstrip())
    return r


def _first_error(text: str) -> str:
    for line in text.splitlines():
        if "error" in line.lower():
            return line.strip()
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1].strip() if lines else "no output"


def up_to_date(out: Path, key: str) -> dict | None:
    stamp = read_stamp(out)
    if stamp and stamp.get("complete") and stamp.get("key") == key and \
            Path((stamp.get("result") or {}).get("elf") or out / ELF).exists():
        return stamp
    return None


def start_stamp(out: Path) -> None:
    """The folder is a reds build from now on (so a later build may reuse it), but not a
    finished one: no result, no key, until the artifact is made and fits."""
    out.mkdir(parents=True, exist_ok=True)
    (out / STAMP).write_text(json.dumps({"format": FORMAT, "version": 1, "complete": False}) + "\n")


def finish_stamp(out: Path, res: BuildResult, cmd: str, family_dir: Path, **extra) -> None:
    doc = {"format": FORMAT, "version": 1, "complete": True, "reds_version": __version__, "command": cmd,
           "family_dir": str(family_dir), "key": res.key, "result": asdict(res), **extra}
    (out / STAMP).write_text(json.dumps(doc, indent=2) + "\n")


def build(family_dir: str | Path, board: str = "qemu-m4", out: str | Path | None = None, layout: str = "nested",
          force: bool = False, command: str | None = None, flash: int | None = None,
          ram: int | None = None, cross: bool = False) -> BuildResult:
    """Build `family_dir` for `board` into `out` (default FAMILY/build-BOARD); a build that
    is up to date is kept (force=True rebuilds). `flash` / `ram` (bytes) check the result
    against a smaller memory than the board's (the part one means to ship on). `cross`
    (rpi): cross-compile for aarch64 (static) instead of building natively."""
    from .buildkinds import KINDS
    from .export import export
    from .export.c import check_layout
    from .family import family_hash, read_manifest

    family_dir = Path(family_dir)
    b = limited(get_board(board), flash, ram)
    if b.build != "gcc-bare-metal" and b.build not in KINDS:
        raise RedsError(f"board '{b.name}' is built with {b.build}, not by `reds build`; see boards/{b.name}/README.md")
    if cross and b.build != "make":
        raise RedsError(f"--cross is for the rpi board (a Linux program); board '{b.name}' has one toolchain")
    check_layout(layout)
    fam = read_manifest(family_dir)
    out = Path(out) if out is not None else family_dir / f"build-{b.name}"
    check_out(out)
    fhash = family_hash(family_dir)
    name = model_name(fam.arch)
    key = build_key(fhash, b, layout, name) + f"-{b.flash_bytes}-{b.ram_bytes}" + ("-cross" if cross else "")
    stamp = None if force else up_to_date(out, key)
    if stamp:
        res = BuildResult(**{k: v for k, v in stamp["result"].items() if k in BuildResult.__dataclass_fields__})
        res.rebuilt = False
        return res
    cmd = command or shlex.join(["reds", "build", str(family_dir), "--board", b.name, "--out", str(out),
                                 "--layout", layout] + (["--cross"] if cross else []))
    if b.build in KINDS:
        return KINDS[b.build](family_dir, b, out, layout=layout, name=name, fhash=fhash, key=key, cmd=cmd,
                              cross=cross)
    check_toolchain(b)
    precheck(family_dir, b)

    out.mkdir(parents=True, exist_ok=True)
    (out / ELF).unlink(missing_ok=True)
    start_stamp(out)
    export(family_dir, "c", out / MODEL_DIR, layout=layout, name=name, command=cmd)

    cc, size = b.toolchain["cc"], b.toolchain["size"]
    fw = firmware_dir()
    model = out / MODEL_DIR
    sources = [b.folder / s for s in b.sources] + [fw / s for s in FIRMWARE_SOURCES] + [model / f"{name}.c"]
    flags = [*b.cflags, *CFLAGS, f"-I{fw}", f"-I{b.folder}", f"-I{model}", *defines(b, name)]
    objdir = out / "obj"
    objdir.mkdir(exist_ok=True)
    log: list[str] = []
    logs: list[list[str]] = [[] for _ in sources]
    objs = [objdir / (s.stem + ".o") for s in sources]

    def compile_one(i):
        return _run([cc, *flags, "-c", str(sources[i]), "-o", str(objs[i])], logs[i])

    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        results = list(pool.map(compile_one, range(len(sources))))
    for entry in logs:
        log += entry
    failed = [(s, r) for s, r in zip(sources, results) if r.returncode != 0]
    if failed:
        _write_log(out, log)
        s, r = failed[0]
        raise RedsError(f"compiling {s.name} failed: {_first_error(r.stderr)} (full log: {out / LOG})")
    elf = out / ELF
    r = _run([cc, *b.cflags, *LDFLAGS, "-T", str(b.folder / b.linker_script), f"-Wl,-Map={out / 'firmware.map'}",
              *map(str, objs), *LIBS, "-o", str(elf)], log)
    _write_log(out, log)
    if r.returncode != 0:
        raise _link_error(r.stderr, b, out)
    text, data, bss = elf_size(size, elf)
    res = BuildResult(board=b.name, out=str(out), elf=str(elf), model=name, family_hash=fhash, layout=layout,
                      text=text, data=data, bss=bss, flash_used=text + data, ram_used=data + bss,
                      flash_bytes=b.flash_bytes, ram_bytes=b.ram_bytes, stack_bytes=b.stack_bytes, key=key)
    for what, used, have in (("flash", res.flash_used, b.flash_bytes), ("RAM", res.ram_used, b.ram_bytes)):
        if used > have:
            elf.unlink()
            raise RedsError(f"the firmware does not fit {describe(b)}: it needs {used:,} B of {what}, "
                            f"the board has {have:,} B (over by {used - have:,} B)")
    finish_stamp(out, res, cmd, family_dir)
    return res


def _write_log(out: Path, log: list[str]) -> None:
    (out / LOG).write_text("\n".join(l for l in log if l) + "\n")


def _link_error(stderr: str, board: Board, out: Path) -> RedsError:
    m = re.search(r"region `(\w+)' overflowed by (\d+) bytes", stderr)
    if m:
        region, over = m.group(1), int(m.group(2))
        have = board.flash_bytes if region.upper() == "FLASH" else board.ram_bytes
        what = "flash" if region.upper() == "FLASH" else "RAM"
        return RedsError(f"the firmware does not fit {describe(board)}: it needs {have + over:,} B of {what}, "
                         f"the board has {have:,} B (over by {over:,} B)")
    return RedsError(f"linking failed: {_first_error(stderr)} (full log: {out / LOG})")


def elf_size(size_tool: str, elf: Path) -> tuple[int, int, int]:
    r = subprocess.run([size_tool, "-B", str(elf)], capture_output=True, text=True)
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or len(lines) < 2:
        raise RedsError(f"{size_tool} could not read {elf}: {r.stderr.strip()}")
    text, data, bss = (int(v) for v in lines[1].split()[:3])
    return text, data, bss
