"""Run the periodic jobs (retention purge, unusual-access rules) when they are due; long-running."""

from relais.core.schedule import ScheduleWorker
from relais.core.worker import worker_command

Command = worker_command(ScheduleWorker)
