"""Does a family fit a board? Refused before exporting (weights against flash, activations
against RAM) and checked again on what was built (text + data, data + bss)."""
from __future__ import annotations

from dataclasses import replace

from ..errors import RedsError
from ..family import OpenFamily
from ..quant import is_int8
from ..ir.cost import BYTES_PER_FLOAT
from .boards import Board


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


def reserved(board: Board, flash: int, ram: int) -> Board:
    """The board with `flash` / `ram` bytes taken by something else (an Arduino core)."""
    for what, have, taken in (("flash", board.flash_bytes, flash), ("RAM", board.ram_bytes, ram)):
        if have <= taken:
            raise RedsError(f"{describe(board)}: its {have:,} B of {what} leave nothing beside the Arduino core's "
                            f"~{taken:,} B; give --{what.lower()} more bytes")
    return replace(board, flash_bytes=board.flash_bytes - flash, ram_bytes=board.ram_bytes - ram,
                   raw={**board.raw, "limited": True})


def describe(board: Board) -> str:
    if board.raw.get("limited"):
        return f"{board.name} limited to {board.flash_bytes:,} B flash and {board.ram_bytes:,} B RAM"
    return board.name


def precheck(family: OpenFamily, board: Board) -> None:
    """Refuse before exporting when the family's weights or activations cannot fit."""
    from ..ir.fusion import absorbed_biases
    spec, big = family.spec, family.submodels[-1]
    by_name = {l.name: l for l in spec.layers}
    absorbed = sum(BYTES_PER_FLOAT * spec.size(by_name[n].out_ch, big.widths) for n in absorbed_biases(spec))
    weights = big.weight_bytes - absorbed  # at least this much goes into flash
    arena = big.arena_bytes
    if is_int8(family.dir):  # int8: a byte per weight and activation, at least
        weights, arena = weights // BYTES_PER_FLOAT, arena // BYTES_PER_FLOAT
    if weights > board.flash_bytes:
        raise RedsError(f"{family.dir}: does not fit {describe(board)}: its weights alone take {weights:,} B of "
                        f"flash, the board has {board.flash_bytes:,} B (train a smaller family: --width or --flash)")
    c, h, w = spec.input_shape
    ram = arena + BYTES_PER_FLOAT * c * h * w + board.stack_bytes
    if ram > board.ram_bytes:
        raise RedsError(f"{family.dir}: does not fit {describe(board)}: the largest submodel's activations, the "
                        f"input and the stack take {ram:,} B of RAM, the board has {board.ram_bytes:,} B "
                        f"(train with --ram to bound the arena)")


def check_image(board: Board, flash_used: int, ram_used: int, about: str = "") -> None:
    """Refuse an image whose flash (text + data) or RAM (data + bss) exceeds the board's.
    `about`: how the sizes were found, when they are an estimate (said in the message)."""
    for what, used, have in (("flash", flash_used, board.flash_bytes), ("RAM", ram_used, board.ram_bytes)):
        if used > have:
            est = f"about {used:,} B of {what} {about}" if about else f"{used:,} B of {what}"
            raise RedsError(f"the firmware does not fit {describe(board)}: it needs {est}, "
                            f"the board has {have:,} B (over by {used - have:,} B)")


def overflow_error(used_over: int, region: str, board: Board) -> RedsError:
    """The linker's `region X overflowed by N bytes`, as the same one-line refusal."""
    flash = region.upper() == "FLASH"
    have = board.flash_bytes if flash else board.ram_bytes
    what = "flash" if flash else "RAM"
    return RedsError(f"the firmware does not fit {describe(board)}: it needs {have + used_over:,} B of {what}, "
                     f"the board has {have:,} B (over by {used_over:,} B)")
