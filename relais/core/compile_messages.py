"""Compile .po translations to .mo with polib, so no system gettext is needed."""

from __future__ import annotations

from pathlib import Path

import polib


def compile_all(root: Path) -> list[Path]:
    compiled = []
    for po_path in root.glob("*/LC_MESSAGES/*.po"):
        mo_path = po_path.with_suffix(".mo")
        if not mo_path.exists() or mo_path.stat().st_mtime < po_path.stat().st_mtime:
            polib.pofile(str(po_path)).save_as_mofile(str(mo_path))
            compiled.append(mo_path)
    return compiled


if __name__ == "__main__":
    compile_all(Path(__file__).resolve().parent.parent / "locale")
