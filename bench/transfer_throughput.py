"""Messages per second delivered to the sandbox, per destination (format + transport).

Usage: .venv/bin/python bench/transfer_throughput.py [--messages 500] [--destinations a,b,c]
Each destination gets a fresh SQLite database and a fresh sandbox; one worker drains the queue
(`transfer_worker --until-empty`) and the wall time of that drain gives the rate.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.transfer.live import Relais, relais_env, start_sandbox

DEFAULT = "sandbox-mllp-hl7v2,sandbox-https-hl7v2,sandbox-https-hl7v2-batch,sandbox-https-fhir"


def measure(destination: str, messages: int) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        sandbox = start_sandbox(tmp)
        try:
            relais = Relais(relais_env(tmp, sandbox, destination=destination))
            relais.manage("migrate", "--no-input")
            relais.manage("loadgen", "--screenings", str(messages), "--patients", "50", "--correct-share", "0", "--no-progress")
            started = time.perf_counter()
            relais.manage("transfer_worker", "--until-empty", timeout=3600)
            elapsed = time.perf_counter() - started
            acknowledged = relais.stats()["by_status"].get("acknowledged", 0)
            stored = sandbox.control("/control/stats")["accepted"]
        finally:
            sandbox.stop()
    return elapsed, acknowledged, stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--destinations", default=DEFAULT)
    args = parser.parse_args()
    for destination in args.destinations.split(","):
        elapsed, acknowledged, stored = measure(destination, args.messages)
        print(
            f"{destination:<28} {acknowledged} acknowledged, {stored} stored by the sandbox in {elapsed:.1f} s "
            f"= {acknowledged / elapsed:.0f} messages/s (includes worker start-up)",
            flush=True,
        )


if __name__ == "__main__":
    main()
