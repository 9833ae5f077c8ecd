"""How the steps of a run execute: in the run's own process.

Steps of SQL models and ingests do their heavy work inside the warehouse, the broker client or
Arrow; a subprocess per step (Dagster's multiprocess default) would add seconds of Python start-up
to every step on small machines. Runs themselves stay isolated processes (the run launcher).
"""

from dagster import in_process_executor

DEFAULT_EXECUTOR = in_process_executor
