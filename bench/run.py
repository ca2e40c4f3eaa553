"""`make bench`: the throughput figures of issue 13 in one run, against a fresh database, with the bare-Python floor.

Usage: nice .venv/bin/python bench/run.py [--quick] [--batches 5] [--batch-size 1000] [--growth-patients 1000000]
                                         [--skip-transfer] [--skip-single] [--keep]
1. A fresh Relais in a temporary folder (development settings, SQLite: WAL, synchronous=FULL), the demo pharmacy and an
   API client; the floor (bench/floor.py) records the same batches on a copy of that database, each just before the app
   gets it in step 2 (paired and alternated, so both see the same machine load).
2. intake_per_s: gunicorn (2 workers) on loopback; --batches batches of --batch-size new patients (e-mail and phone
   each) posted one by one to POST /api/v1/screenings/batch; accepted results over the wall time of the POSTs. The rows every
   result must leave (certificate, outbox row, result link, two notifications, audit events) are counted afterwards.
3. growth_ratio_1m: bench/seed_bulk.py adds --growth-patients patients and as many tests to the same pharmacy, then
   ANALYZE; the server restarts and the same number of batches (new patients) is posted: rate over the empty rate.
4. deliver_hl7_per_s, deliver_fhir_per_s: bench/transfer_throughput.run(); single_p99_ms_at_100 and the failures at
   200 requests/s: bench/single_post.run(); each in its own process, "not measured" while the script has no run().
Ends with one line: `bench: intake_per_s=... deliver_hl7_per_s=... deliver_fhir_per_s=... single_p99_ms_at_100=...
intake_ratio_to_floor=... growth_ratio_1m=...`. Exit status 1 when an accepted result lacks one of its rows.
--quick: 2 batches of 100, 2,000 patients seeded, small sizes for the helpers (a smoke run, figures meaningless).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import floor  # noqa: E402
from intake_throughput import PY, App, check_effects, post_batches, row_counts  # noqa: E402

NOT_MEASURED = "not_measured"
_CALL = """
import importlib, inspect, json, sys
sys.path.insert(0, {bench!r}); sys.path.insert(0, {root!r})
module = importlib.import_module({name!r})
run = getattr(module, "run", None)
if run is None:
    print("RESULT null", flush=True)
else:
    wanted = {kwargs!r}
    accepted = inspect.signature(run).parameters
    kwargs = {{k: v for k, v in wanted.items() if k in accepted}}
    print("RESULT " + json.dumps(run(**kwargs), default=str), flush=True)
"""


def say(line: str) -> None:
    print(line, flush=True)


def machine() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?"
    )
    mem_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), 0)
    load = os.getloadavg()
    return (
        f"machine: {os.cpu_count()} cores ({model}), {mem_kb / 1024 / 1024:.1f} GB RAM, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run([shutil.which("git") or "git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    dirty = " (uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    return f"commit: {git('rev-parse', '--short', 'HEAD')} {git('log', '-1', '--format=%cI %s')[:100]}{dirty}"


def warm_up(app: App) -> None:
    """One small untimed batch, so that both gunicorn workers have loaded their code and keys before the clock starts."""
    for _ in range(2):
        post_batches(app, batches=1, offset=WARM_UP_OFFSET + _warmed.pop(), size=20, label="warm-up")


TWO_CLIENTS_OFFSET = 5_000_000  # patients of the two-client run: distinct from the empty and growth runs
_warmed = list(range(0, 1000, 20))  # distinct warm-up patients for each call
WARM_UP_OFFSET = 11_000_000


def call_helper(name: str, **kwargs: Any) -> dict[str, Any] | None:
    """``bench/<name>.py``'s run(**kwargs) in its own process (its output passes through); None when it has no run()."""
    if not (BENCH / f"{name}.py").exists():
        return None
    code = _CALL.format(bench=str(BENCH), root=str(ROOT), name=name, kwargs=kwargs)
    process = subprocess.Popen([PY, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    result: dict[str, Any] | None = None
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
        else:
            print(f"  [{name}] {line}", end="", flush=True)
    if process.wait() != 0:
        say(f"  [{name}] failed with status {process.returncode}")
        return None
    return result


def pick(figures: dict[str, Any] | None, names: tuple[str, ...], *parts: str) -> Any:
    """The first of ``names`` present, else the first number whose name holds every one of ``parts``."""
    if not figures:
        return None
    for name in names:
        if name in figures:
            return figures[name]
    return next((v for k, v in figures.items() if all(p in k for p in parts) and isinstance(v, int | float)), None)


def fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return NOT_MEASURED
    if isinstance(value, float | int):
        return f"{value:.{digits}f}"
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--batches", type=int, default=None, help="batches per intake run (default 5, quick 2)")
    parser.add_argument("--batch-size", type=int, default=None, help="results per batch (default 1000, quick 100)")
    parser.add_argument(
        "--growth-patients", type=int, default=None, help="patients (and tests) seeded (default 1,000,000, quick 2,000; 0 skips)"
    )
    parser.add_argument("--skip-transfer", action="store_true")
    parser.add_argument("--skip-single", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    batches = args.batches or (2 if args.quick else 5)
    size = args.batch_size or (100 if args.quick else 1000)
    growth = args.growth_patients if args.growth_patients is not None else (2000 if args.quick else 1_000_000)
    command = "nice .venv/bin/python bench/run.py " + " ".join(sys.argv[1:])
    began = time.perf_counter()
    say(machine())
    say(commit())
    say(f"command: {command.strip()}")
    folder = Path(tempfile.mkdtemp(prefix="relais-bench-"))
    problems: list[str] = []
    app = App(folder)
    try:
        say("setting up a fresh database (migrate, demo pharmacy, API client)...")
        app.setup()

        # The floor records each batch just before the app gets it: both see the same load (paired, alternated).
        bodies = floor.make_bodies(batches=batches, size=size, offset=0)
        (folder / "floor").mkdir()
        bare = floor.Floor(schema_db=app.db, folder=folder / "floor")  # a copy of the fresh database: schema, pharmacy, devices
        bare.batch(floor.make_bodies(batches=1, size=20, offset=WARM_UP_OFFSET)[0])  # warm-up, not counted
        bare.results, bare.seconds = 0, 0.0
        floor_times: list[tuple[int, float]] = []

        def floor_batch(index: int) -> None:
            accepted, took = bare.batch(bodies[index])
            floor_times.append((accepted, took))
            say(f"  floor batch {index + 1}/{batches}: {accepted} results in {took:.2f} s = {accepted / took:.0f} results/s")

        say(f"intake, empty database: {batches} batches of {size} new patients to POST /api/v1/screenings/batch (gunicorn, 2 workers),")
        say("  each batch first recorded by the floor (bench/floor.py: same work, one process, no Django, a copy of the database)")
        app.start()
        warm_up(app)
        before = row_counts(app.db)
        empty = post_batches(app, batches=batches, offset=0, size=size, clients=1, before_each=floor_batch)
        after = row_counts(app.db)
        # The server's throughput when two clients post at once (a relay serves many pharmacies' software): the
        # planning of one batch (checks, matching, encryption, certificates) overlaps the other's write transaction.
        say(f"intake, two clients at once: {batches * 2} batches of {size} new patients, two POSTs in flight (one per worker)")
        before_two = row_counts(app.db)
        two = post_batches(app, batches=batches * 2, offset=TWO_CLIENTS_OFFSET, size=size, clients=2, label="batch (2 clients)")
        missing_two = check_effects(before_two, row_counts(app.db), two.accepted)
        problems += missing_two
        say(
            "  effects: "
            + ("MISSING: " + "; ".join(missing_two) if missing_two else f"all {two.accepted} accepted results have their rows")
        )
        say(f"intake_2clients_per_s: {two.per_s:.0f} results/s ({two.accepted} in {two.seconds:.1f} s, wall time of the whole run)")
        app.stop()
        floor_rows = bare.close()
        missing = check_effects(before, after, empty.accepted)
        problems += missing
        delta = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}
        say(f"  rows written: {json.dumps(delta)}")
        say("  effects: " + ("MISSING: " + "; ".join(missing) if missing else f"all {empty.accepted} accepted results have their rows"))
        say(f"  floor rows (whole copy): {json.dumps(floor_rows)}")
        if empty.rejected or empty.duplicates:
            problems.append(f"{empty.rejected} rejected and {empty.duplicates} duplicates among new patients")
        if bare.results != empty.accepted:
            problems.append(f"the floor recorded {bare.results} results, the app {empty.accepted}")
        pair_ratios = sorted((size / app_s) / (n / floor_s) for (n, floor_s), app_s in zip(floor_times, empty.batch_seconds, strict=True))
        ratio = empty.per_s / bare.per_s if bare.per_s else None
        say(
            f"intake_per_s: {empty.per_s:.0f} results/s ({empty.accepted} in {empty.seconds:.1f} s; "
            f"batches {', '.join(f'{t:.2f}' for t in empty.batch_seconds)} s)"
        )
        say(f"floor_per_s: {bare.per_s:.0f} results/s ({bare.results} in {bare.seconds:.1f} s)")
        say(
            f"intake_ratio_to_floor: {fmt(ratio, 3)} (target at least 0.30; per batch pair, median "
            f"{pair_ratios[len(pair_ratios) // 2]:.3f}, range {pair_ratios[0]:.3f}-{pair_ratios[-1]:.3f})"
        )

        growth_ratio = None
        if growth:
            say(f"growth: seeding {growth:,} patients and {growth:,} tests into the same pharmacy (bench/seed_bulk.py)...")
            seeded = subprocess.run(
                [PY, str(BENCH / "seed_bulk.py"), "--var-dir", str(folder / "var"), "--patients", str(growth), "--tests", str(growth)],
                cwd=ROOT,
                env=app.env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for line in seeded.stdout.splitlines():
                say(f"  {line}")
            if seeded.returncode != 0:
                raise SystemExit("seeding failed")
            say(f"intake with {growth:,} patients stored: {batches} batches of {size} new patients, each first recorded by")
            say("  the floor again, on its own small database: it measures the machine's speed now, for the paired ratio")
            app.start()
            warm_up(app)
            (folder / "floor-grown").mkdir()
            grown_bodies = floor.make_bodies(batches=batches, size=size, offset=batches * size)
            beside = floor.Floor(schema_db=folder / "floor" / "floor.sqlite3", folder=folder / "floor-grown")
            beside.batch(floor.make_bodies(batches=1, size=20, offset=WARM_UP_OFFSET + 500)[0])  # warm-up, not counted
            beside.results, beside.seconds = 0, 0.0

            def floor_beside(index: int) -> None:
                accepted, took = beside.batch(grown_bodies[index])
                say(f"  floor batch {index + 1}/{batches}: {accepted} results in {took:.2f} s = {accepted / took:.0f} results/s")

            before = row_counts(app.db)
            grown = post_batches(app, batches=batches, offset=batches * size, size=size, before_each=floor_beside)
            beside.close()
            after = row_counts(app.db)
            app.stop()
            missing = check_effects(before, after, grown.accepted)
            problems += missing
            say("  effects: " + ("MISSING: " + "; ".join(missing) if missing else f"all {grown.accepted} accepted results have their rows"))
            say(f"  patients stored: {after['patients_patient']:,}, tests: {after['screenings_screening']:,}")
            growth_ratio = grown.per_s / empty.per_s if empty.per_s else None
            times = ", ".join(f"{t:.2f}" for t in grown.batch_seconds)
            say(f"intake_per_s with {growth:,} stored: {grown.per_s:.0f} results/s (batches {times} s)")
            say(f"growth_ratio: {fmt(growth_ratio, 3)} (target at least 0.85)")
            drift = beside.per_s / bare.per_s if bare.per_s else None
            paired = growth_ratio / drift if growth_ratio is not None and drift else None
            say(
                f"growth_ratio_paired: {fmt(paired, 3)} (each half divided by the floor's rate measured beside it: "
                f"{bare.per_s:.0f} then {beside.per_s:.0f} results/s, so the machine's drift between them cancels)"
            )

        quick_transfer = {"messages": 200, "postgres": False} if args.quick else {}
        transfer = None if args.skip_transfer else call_helper("transfer_throughput", quick=args.quick, **quick_transfer)
        hl7, fhir = (
            pick(transfer, ("deliver_hl7_per_s", "hl7_per_s"), "hl7", "per_s"),
            pick(transfer, ("deliver_fhir_per_s", "fhir_per_s"), "fhir", "per_s"),
        )
        say(f"deliver_hl7_per_s: {fmt(hl7).replace('_', ' ')} (HL7 v2 over MLLP, one worker, target at least 1,000)")
        say(f"deliver_fhir_per_s: {fmt(fhir).replace('_', ' ')} (FHIR over HTTPS, one worker, target at least 1,000)")
        for fmt_name in ("hl7", "fhir"):
            two_over_one = pick(transfer, (f"pg_{fmt_name}_2w_over_1w",))
            if two_over_one is not None:
                say(f"pg_{fmt_name}_2w_over_1w: {two_over_one} (PostgreSQL, two workers over one, target at least 1.8)")
        single = None if args.skip_single else call_helper("single_post", quick=args.quick, **({"seconds": 5} if args.quick else {}))
        p99 = pick(single, ("single_p99_ms_at_100", "p99_ms_at_100"), "p99", "100")
        failures = pick(single, ("single_failures_at_200", "failed_at_200"), "fail", "200")
        say(f"single_p99_ms_at_100: {fmt(p99, 1).replace('_', ' ')} (open loop, target under 50 ms)")
        say(f"single_failures_at_200: {fmt(failures).replace('_', ' ')} (target 0)")
        for name, figures in (("transfer_throughput", transfer), ("single_post", single)):
            if figures:
                flat = {k: v for k, v in figures.items() if not isinstance(v, dict)}  # nested details were printed by the helper
                say(f"  {name}: {json.dumps(flat, default=str)}")

        say(f"total time: {time.perf_counter() - began:.0f} s")
        if problems:
            say("PROBLEMS: " + "; ".join(problems))
        growth_1m = growth_ratio if growth >= 1_000_000 else None  # a smaller seed is a smoke run, not the figure
        say(
            f"bench: intake_per_s={empty.per_s:.0f} deliver_hl7_per_s={fmt(hl7)} deliver_fhir_per_s={fmt(fhir)} "
            f"single_p99_ms_at_100={fmt(p99, 1)} intake_ratio_to_floor={fmt(ratio, 3)} growth_ratio_1m={fmt(growth_1m, 3)}"
        )
    finally:
        app.stop()
        if args.keep:
            say(f"kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
