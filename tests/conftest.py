"""Shared fixtures: a small real synth-kws data set, generated once per test worker."""
from __future__ import annotations

import shutil

import pytest

KWS_TOOLS = shutil.which("espeak-ng") is not None and shutil.which("sox") is not None
needs_kws_tools = pytest.mark.skipif(
    not KWS_TOOLS, reason="needs espeak-ng and sox (apt-get install espeak-ng sox)")


@pytest.fixture(scope="session")
def synth_kws(tmp_path_factory):
    """A synth-kws data set with 10 utterances per keyword (~170 clips)."""
    if not KWS_TOOLS:
        pytest.skip("needs espeak-ng and sox (apt-get install espeak-ng sox)")
    from reds.data.synth_kws import generate

    out = tmp_path_factory.mktemp("kws") / "synth-kws"
    generate(out, per_word=10, seed=0, jobs=1, progress=False)
    return out


def pytest_configure(config):
    # builds made without --build go to a cache folder: the tests' own, not the user's
    import os
    import tempfile

    if "REDS_CACHE" not in os.environ:  # set once, by the first process (xdist workers inherit it)
        config._reds_cache = os.environ["REDS_CACHE"] = tempfile.mkdtemp(prefix="reds-test-cache-")


def pytest_unconfigure(config):
    import shutil

    if getattr(config, "_reds_cache", None):
        shutil.rmtree(config._reds_cache, ignore_errors=True)
    # Tests run two workers on two cores (pytest -n 2): one intra-op thread each, or small
    # convolutions slow down about tenfold from oversubscription.
    import torch

    torch.set_num_threads(1)
