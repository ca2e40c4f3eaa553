"""RELAIS_OID_ROOT (issue 16): Relais's identifier namespaces hang under it, so a value that is not an OID stops the
process at start-up, naming the setting; a valid one is used for every namespace."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = "import relais.settings as s, relais.transfer.identifiers as i\nprint('root', s.RELAIS_OID_ROOT)\n"


def _start(root: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RELAIS_ENV": "test", "RELAIS_OID_ROOT": root}
    return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, check=False, timeout=60)


@pytest.mark.parametrize("root", ["relais.example", "1.2.250.", "3.1", "1.02.3", "1", "1.2 .3"])
def test_a_root_that_is_not_an_oid_refuses_to_start(root: str) -> None:
    out = _start(root)
    assert out.returncode != 0 and "RELAIS_OID_ROOT is not an OID" in out.stderr, out.stderr[-1000:]


def test_a_registered_arc_is_used() -> None:
    out = _start("1.2.250.1.999")
    assert out.returncode == 0 and "root 1.2.250.1.999" in out.stdout, out.stderr[-1000:]
