"""Python client of optim-advisor (sync and async), and the ``optim-advisor`` CLI.

    from optim_advisor_client import Client
    with Client("http://127.0.0.1:8000") as c:
        job = c.range_test({"experiment": {...}})
        done = c.wait(job, timeout=600)
        print(c.result(done).suggestions.recommended)

Typed with the API's own models (``app.schemas.jobs``, ``optim_core.specs.results``,
``optim_core.advice.models``); imports
neither torch nor numpy.
"""

from app.schemas.job_results import ResultView, read_result
from app.schemas.jobs import JobBatchResult, JobPage, JobView
from optim_advisor_client.client import AsyncClient, Client
from optim_advisor_client.errors import (
    ApiError,
    ClientError,
    ConnectError,
    JobFailed,
    WaitTimeout,
)
from optim_advisor_client.sse import Event
from optim_core.specs.results import LrSuggestions, RangeTestResult, TrialResult, TrialsResult

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "ClientError",
    "ConnectError",
    "Event",
    "JobBatchResult",
    "JobFailed",
    "JobPage",
    "JobView",
    "LrSuggestions",
    "RangeTestResult",
    "ResultView",
    "TrialResult",
    "TrialsResult",
    "WaitTimeout",
    "read_result",
]
