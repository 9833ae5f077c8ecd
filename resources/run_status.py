"""The one list of run statuses the platform treats as "in flight" (created and not finished).

Every sensor that must not plan over a running run (Kafka offsets, MongoDB watermark), the
run-failure sensor looking for a run that supersedes a failed one, and the benchmarks waiting for
an idle instance read it from here, so they cannot disagree about what "in flight" means. A
CANCELING run is in flight (its worker may still be writing), and so is a SUSPENDED one (it resumes
where it stopped, with its tags and planned ranges): every status but the finished ones and
MANAGED (runs of another system, never launched here). Same set as Dagster's internal
``NOT_FINISHED_STATUSES``, which is not public API.
"""

from dagster import DagsterRunStatus

IN_FLIGHT_STATUSES: tuple[DagsterRunStatus, ...] = (
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.SUSPENDED,
    DagsterRunStatus.CANCELING,
)

__all__ = ["IN_FLIGHT_STATUSES"]
