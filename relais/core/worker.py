"""The one worker loop every queue runs: flags, signals, polling, deadline, database connections, request context.

A queue subclasses ``Worker`` (``round`` claims a batch and processes it) and its management command is
``worker_command(ThatWorker)``. SIGTERM/SIGINT: the row in hand is finished, the leases not started are given back,
the process exits 0. A killed worker's leases run out and another worker resumes. ``run_workers`` runs every queue's
loop in one process (one thread each) for small deployments.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections, connection

from relais.core.context import request_context
from relais.core.queue import log_unexpected, worker_id

log = logging.getLogger("relais.worker")

FAILURE_PAUSE = 5.0  # seconds a long-running worker waits after its queue itself failed (database gone) before trying again


class Worker:
    """One queue's loop. ``round`` returns how many rows it claimed; 0 means the queue had nothing due."""

    name: ClassVar[str] = ""  # request context channel and log name
    logger: ClassVar[str] = ""  # logger, if not relais.<name>
    poll: ClassVar[float] = 1.0  # default seconds between polls of an empty queue
    batch: int = 20  # default rows claimed at a time (a worker may set its own from its configuration)
    counted: ClassVar[tuple[str, ...]] = ()  # outcomes named in the summary line, in this order

    def __init__(self, **options: Any) -> None:
        """Checks the configuration (raise CommandError to refuse to start) and opens what the loop needs."""
        self.options = options
        self.owner = worker_id()
        self.stopping = threading.Event()
        self.counts: Counter[str] = Counter()
        self.log = logging.getLogger(self.logger or f"relais.{self.name}")

    @classmethod
    def add_arguments(cls, parser: CommandParser) -> None:
        """Flags of this queue only; the common ones are added by worker_command."""

    @property
    def limit(self) -> int:
        return int(self.options.get("batch") or self.batch)

    def round(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        """Release what __init__ opened."""

    def summary(self) -> str:
        figures = ", ".join(f"{self.counts[k]} {k}" for k in self.counted)
        return f"{self.name} worker {self.owner}: {figures}, stopped"

    def stop(self, signum: int | None = None) -> None:
        if signum is not None:
            self.log.info("%s worker: signal %s, finishing the row in hand", self.name, signum)
        self.stopping.set()

    def run(self, *, once: bool = False, poll: float | None = None, max_seconds: float = 0) -> None:
        """Claim and process until stopped, until ``max_seconds`` have passed, or (``once``) until nothing is due."""
        poll = self.poll if poll is None else poll
        deadline = time.monotonic() + max_seconds if max_seconds else None
        try:
            with request_context(channel=self.name, request_id=self.owner):
                while not self.stopping.is_set() and (deadline is None or time.monotonic() < deadline):
                    # Outside a test's transaction, drop a connection the database closed or that is too old.
                    if not connection.in_atomic_block:
                        close_old_connections()
                    try:
                        claimed = self.round()
                    except Exception as exc:
                        if once:
                            raise  # a one-off run reports the failure
                        # Per-row errors are recorded on the row; this is the queue itself (database gone): wait, retry.
                        log_unexpected(self.log, exc, f"{self.name} worker: round failed, trying again in {FAILURE_PAUSE:g} s")
                        self.stopping.wait(max(poll, FAILURE_PAUSE))
                        continue
                    if not claimed:
                        if once:
                            break
                        self.stopping.wait(poll)
        finally:
            self.close()


def install_signals(stop: Callable[[int], None]) -> None:
    """SIGTERM and SIGINT stop the loop gracefully. Signal handlers can only be installed from the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: Any) -> None:
        stop(signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def add_common_arguments(parser: CommandParser, *, poll: float | None = None) -> None:
    """The same flags for every worker (and run_workers)."""
    parser.add_argument("--poll", type=float, default=poll, help="seconds between polls of an empty queue")
    parser.add_argument("--once", "--until-empty", dest="once", action="store_true", help="exit once nothing is due (tests, one-off runs)")
    parser.add_argument("--max-seconds", type=float, default=0, help="stop after this long (0: run until stopped)")
    parser.add_argument("--batch", type=int, default=0, help="rows claimed at a time (0: the queue's default)")


def run_options(options: dict[str, Any]) -> dict[str, Any]:
    return {"once": options["once"], "poll": options["poll"], "max_seconds": options["max_seconds"]}


def worker_command(worker: type[Worker]) -> type[BaseCommand]:
    """The management command that runs ``worker`` alone."""

    class Command(BaseCommand):
        help = f"Run the {worker.name} worker (long-running; --once to empty the queue and exit)."

        def add_arguments(self, parser: CommandParser) -> None:
            add_common_arguments(parser, poll=worker.poll)
            worker.add_arguments(parser)

        def handle(self, *args: Any, **options: Any) -> None:
            instance = worker(**options)
            install_signals(instance.stop)
            instance.run(**run_options(options))
            self.stdout.write(instance.summary())

    Command.__module__ = worker.__module__
    return Command


def run_together(workers: Iterable[Worker], *, once: bool = False, poll: float | None = None, max_seconds: float = 0) -> None:
    """Run several queues' loops in this process, one thread each; they stop together."""
    workers = list(workers)
    errors: list[BaseException] = []

    def target(worker: Worker) -> None:
        try:
            worker.run(once=once, poll=poll, max_seconds=max_seconds)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            log_unexpected(log, exc, f"{worker.name} worker stopped")
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=target, args=(w,), name=f"relais-{w.name}", daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)  # a short join keeps the main thread free to receive signals
    if errors:
        raise errors[0]
