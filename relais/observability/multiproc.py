"""Multiprocess mode (PROMETHEUS_MULTIPROC_DIR) under gunicorn: a finished worker's figures folded into one archive.

Each worker process writes its counters and histograms to ``<type>_<pid>.db`` in the folder, and a scrape adds up every
file there. gunicorn replaces workers (max_requests), so without folding the folder would gain a file per replaced
worker and every scrape would read more of them. gunicorn's ``child_exit`` hook (deploy/gunicorn.conf.py) calls
``absorb_dead_process(worker.pid)``: the dead worker's values are added to ``<type>_archive.db`` and its files removed,
so totals never go down. ``reset_directory()`` in ``on_starting`` empties the folder of a previous run (systemd's
RuntimeDirectory does the same). Runs in the gunicorn master: imports neither Django nor the metrics themselves."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector

TYPES = ("counter", "histogram")  # the request metrics use no gauge: nothing "live" to drop


def absorb_dead_process(pid: int, directory: str | None = None) -> int:
    """Fold ``pid``'s files into the archives; returns how many files were folded."""
    folder = Path(directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""))
    if not str(folder) or not folder.is_dir():
        return 0
    folded = 0
    for kind in TYPES:
        dead = folder / f"{kind}_{pid}.db"
        if not dead.exists():
            continue
        archive = folder / f"{kind}_archive.db"
        sources = [str(dead)] + ([str(archive)] if archive.exists() else [])
        merged = MultiProcessCollector.merge(sources, accumulate=False)  # per-bucket values, as the files hold them
        partial = folder / f".{kind}_archive.partial"  # not *.db: a scrape meanwhile does not read it
        partial.unlink(missing_ok=True)
        target = MmapedDict(str(partial))
        try:
            for metric in merged:
                for sample in metric.samples:
                    key = mmap_key(metric.name, sample.name, list(sample.labels), list(sample.labels.values()), metric.documentation)
                    target.write_value(key, sample.value, 0.0)
        finally:
            target.close()
        os.replace(partial, archive)
        dead.unlink()  # a scrape between these two lines counts this worker twice, once: read as a counter reset
        folded += 1
    return folded


def reset_directory(directory: str | None = None) -> int:
    """Remove the figures of a previous server run (counters start again from zero, as Prometheus expects after a
    restart); returns how many files were removed. Call before any worker starts."""
    folder = Path(directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""))
    if not str(folder) or not folder.is_dir():
        return 0
    stale = [*folder.glob("*.db"), *folder.glob(".*.partial")]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)
