"""The C sources go into the wheel: `reds build` compiles firmware/ and boards/ wherever
reds is installed. They stay at the top of the source tree (they are also a PlatformIO /
Arduino library); building the wheel copies them to reds/_c/ (see reds/sources.py).
Everything else is in pyproject.toml."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
C_TREES = ("firmware", "boards")


class BuildPyWithC(build_py):
    def run(self):
        super().run()
        dest = Path(self.build_lib) / "reds" / "_c"
        for tree in C_TREES:
            shutil.copytree(ROOT / tree, dest / tree, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.o", "*.elf", ".pio"))


setup(cmdclass={"build_py": BuildPyWithC})
