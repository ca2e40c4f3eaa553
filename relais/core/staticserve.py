"""Static files: only what collectstatic produced is served; never a source map, a symlink, or a file dropped in later.

- Finders (STATICFILES_FINDERS) skip ``*.map``: no source map is collected, nor served by the development finders.
- The production storage removes ``sourceMappingURL`` comments while it hashes CSS and JS, so nothing points at a map.
- The WhiteNoise middleware serves, from STATIC_ROOT, only the hashed names in the collectstatic manifest
  (``staticfiles.json``) and their ``.gz``/``.br`` variants, and only when they are regular files reached without any
  symlink. Anything else under STATIC_ROOT answers 404, even if it is readable. Development serves through the finders
  and never reads STATIC_ROOT.

``collected_names`` is the same allowlist for other readers (the doctor's static-folder check, the nginx allowlist).
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.files.base import ContentFile, File
from whitenoise.middleware import WhiteNoiseMiddleware
from whitenoise.storage import CompressedManifestStaticFilesStorage

log = logging.getLogger(__name__)

SOURCE_MAP_SUFFIX = ".map"
MANIFEST_NAME = CompressedManifestStaticFilesStorage.manifest_name
COMPRESSED_SUFFIXES = (".gz", ".br")
_SOURCE_MAP_COMMENT = re.compile(rb"(?m)^[ \t]*//[#@][ \t]*sourceMappingURL=[^\r\n]*$|/\*[#@][ \t]*sourceMappingURL=[^*]*\*/")


def _is_source_map(path: str) -> bool:
    return path.lower().endswith(SOURCE_MAP_SUFFIX)


class _NoSourceMaps:
    """Finder mixin: source maps publish the unminified source; they are neither collected nor found."""

    def list(self, ignore_patterns: Any) -> Iterator[tuple[str, Any]]:
        for path, storage in super().list(ignore_patterns):  # type: ignore[misc]
            if not _is_source_map(path):
                yield path, storage

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> Any:
        if _is_source_map(path):
            return []  # what the stock finders answer for "not here", whether find_all or not
        return super().find(path, find_all=find_all, **kwargs)  # type: ignore[misc]


class FileSystemFinder(_NoSourceMaps, finders.FileSystemFinder):
    pass


class AppDirectoriesFinder(_NoSourceMaps, finders.AppDirectoriesFinder):
    pass


class CollectedStaticStorage(CompressedManifestStaticFilesStorage):
    """Production storage: hashed, compressed, and with every sourceMappingURL comment removed."""

    def url_converter(self, name: str, hashed_files: Any, template: str | None = None) -> Callable[[Any], str]:
        if template and "sourceMappingURL" in template:
            return lambda match: ""  # the map is not collected: drop the reference instead of failing on it
        return super().url_converter(name, hashed_files, template)  # type: ignore[no-any-return]

    def _save(self, name: str, content: File) -> str:  # type: ignore[type-arg]
        if name.endswith((".js", ".css")):
            content.seek(0)
            content = ContentFile(_SOURCE_MAP_COMMENT.sub(b"", content.read()))  # also the unhashed copy
        return super()._save(name, content)  # type: ignore[no-any-return]


def _safe_name(name: object) -> bool:
    if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return False
    return posixpath.normpath(name) == name and not name.startswith("..") and not _is_source_map(name)


def collected_names(static_root: str | os.PathLike[str]) -> set[str]:
    """The hashed names collectstatic wrote (its manifest), minus anything unsafe; empty if there is no manifest."""
    try:
        manifest = json.loads((Path(static_root) / MANIFEST_NAME).read_text(encoding="utf-8"))
        paths = manifest["paths"]
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("No readable %s in STATIC_ROOT: no static file is served (run collectstatic)", MANIFEST_NAME)
        return set()
    if not isinstance(paths, dict):
        return set()
    return {name for name in paths.values() if _safe_name(name)}


def _regular_file(path: str) -> os.stat_result | None:
    """The stat of a regular file reached without any symlink (``path`` is under an already resolved root)."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or os.path.realpath(path) != path:
        return None
    return info


class CollectedOnlyWhiteNoiseMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise that serves from STATIC_ROOT only the files collectstatic produced (listed once, at start-up)."""

    def add_files(self, root: str, prefix: str | None = None) -> None:
        if not settings.STATIC_ROOT or os.path.realpath(root) != os.path.realpath(settings.STATIC_ROOT):
            super().add_files(root, prefix)
        elif not self.autorefresh:  # development (autorefresh) serves through the finders, never this folder
            self._add_collected(os.path.realpath(root), prefix or "/")

    def _add_collected(self, root: str, prefix: str) -> None:
        prefix = prefix if prefix.endswith("/") else prefix + "/"
        names = collected_names(root)
        stat_cache: dict[str, os.stat_result] = {}
        for name in names:
            for variant in (name, *(name + suffix for suffix in COMPRESSED_SUFFIXES)):
                path = os.path.join(root, variant)
                info = _regular_file(path)
                if info is not None:
                    stat_cache[path] = info
        for name in sorted(names):
            path = os.path.join(root, name)
            if path in stat_cache:
                self.add_file_to_dictionary(prefix + name, path, stat_cache=stat_cache)
