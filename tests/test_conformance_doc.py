"""docs/conformance.md cites, for every receiver-profile rule, where it is enforced and the tests that fail if it breaks.
A citation that no longer resolves is worse than none: this test fails when a cited test, parametrised case, module or
function is renamed or removed. Names are found by reading the files; the parametrised cases by one
`pytest --collect-only` of the files that cite them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "conformance.md"

# `tests/x/test_y.py::test_name` or `...::test_name[case-id]`
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:\[([^\]`]+)\])?`")
# `relais.x.y`, `relais.x.y:function`, `sandbox.x:Class.method`, `relais.x.y.NAME`
CODE_REF = re.compile(r"`((?:relais|sandbox)(?:\.\w+)+)(?::([\w.]+))?`")
NOT_CODE = {"relais.example"}  # the reserved domain the document says is no longer used


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def _defines(source: str, name: str) -> bool:
    """``name`` is a function, class, method or top-level assignment in ``source``."""
    pattern = rf"^\s*(?:async\s+def|def|class)\s+{re.escape(name)}\b|^{re.escape(name)}\s*[:=]"
    return re.search(pattern, source, re.MULTILINE) is not None


def _module_file(parts: list[str]) -> tuple[Path, list[str]] | None:
    """The longest prefix of ``parts`` that is a module (x.py or x/__init__.py), and the names after it."""
    for end in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:end])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate, parts[end:]
    return None


def test_the_document_cites_tests_and_code() -> None:
    text = _text()
    assert len(TEST_REF.findall(text)) > 100
    assert len(CODE_REF.findall(text)) > 50
    for section in ("## 1. Corrections as updates", "## 2. Profiles", "## 3. Pseudonyms", "## 4. Codes", "## 5. Certificates"):
        assert section in text, section
    assert "## 6. Independent validation" in text and "## Known limits" in text


def test_every_cited_test_exists() -> None:
    missing = []
    for path, name, _case in TEST_REF.findall(_text()):
        file = ROOT / path
        if not file.is_file() or not re.search(rf"^(?:async\s+)?def {name}\(", file.read_text(encoding="utf-8"), re.MULTILINE):
            missing.append(f"{path}::{name}")
    assert missing == []


def test_every_cited_module_and_function_exists() -> None:
    missing = []
    for module, attribute in CODE_REF.findall(_text()):
        if module in NOT_CODE:
            continue
        found = _module_file(module.split("."))
        if found is None:
            missing.append(module)
            continue
        file, rest = found
        names = rest + (attribute.split(".") if attribute else [])
        source = file.read_text(encoding="utf-8")
        missing += [f"{module}:{attribute}" for name in names if not _defines(source, name)]
    assert missing == []


def test_every_cited_parametrised_case_is_collected() -> None:
    cases = {(path, f"{path}::{name}[{case}]") for path, name, case in TEST_REF.findall(_text()) if case}
    assert cases, "the document cites parametrised cases"
    files = sorted({path for path, _ in cases})
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *files],
        cwd=ROOT,
        env={**os.environ, "RELAIS_ENV": "test"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    collected = set(result.stdout.split())
    assert sorted(node for _, node in cases if node not in collected) == [], result.stderr[-2000:]
