"""The command line as a new user meets it: a fast `--help`, every flag's default said."""
from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from reds.cli import main
from reds.cli.parser import DefaultsFormatter, _budgets, _parsers, build_parser

SAID = ("default", "(required)", "(off unless given)")


def test_help_imports_neither_torch_nor_ortools():
    code = ("import sys\nfrom reds.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'ortools', 'onnx', 'onnxruntime', 'safetensors') if m in sys.modules]\n"
            "print(','.join(heavy) or 'none')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "none"


def test_every_flag_says_its_default_or_that_it_has_none():
    parsers = list(_parsers(build_parser()))
    assert len(parsers) >= 13  # reds, its commands, data synth-kws
    missing = []
    for p in parsers:
        fmt = DefaultsFormatter(p.prog)
        for a in p._actions:
            if not a.option_strings or isinstance(a, (argparse._HelpAction, argparse._VersionAction)):
                continue
            text = fmt._get_help_string(a) if a.help else ""
            if not any(s in text for s in SAID):
                missing.append(f"{p.prog} {a.option_strings[-1]}")
    assert not missing, missing


@pytest.mark.parametrize("command", [None, "arch", "data", "train", "eval", "info", "export", "build", "flash",
                                     "serve", "bench", "report"])
def test_every_help_runs_and_describes(command, capsys):
    with pytest.raises(SystemExit) as e:
        main(([command] if command else []) + ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: reds") and len(out.splitlines()) > 5


def test_version_short_and_long(capsys):
    for flag in ("-V", "--version"):
        with pytest.raises(SystemExit):
            main([flag])
        assert capsys.readouterr().out.startswith("reds ")


def test_budgets_are_fractions_or_percentages_never_guessed():
    assert _budgets("0.25,0.5,1") == [0.25, 0.5, 1.0]
    assert _budgets("25%,50%,100%") == [0.25, 0.5, 1.0]
    for bad in ("25,50", "0.5,0.5", "0,1", "110%", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            _budgets(bad)
