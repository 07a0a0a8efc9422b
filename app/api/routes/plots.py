"""``GET /v1/jobs/{id}/plot.svg``: a finished job's curves as an SVG image (pure Python)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from app.api.deps import CallerDep, JobServiceDep
from app.api.responses import problems
from app.api.routes.jobs import JobId, owned_job_or_404
from app.core.problems import ProblemError
from app.schemas.job_results import read_result
from app.services.plots import job_svg

router = APIRouter(tags=["jobs"])


def _title(rec: dict[str, Any]) -> str:
    labels = rec.get("labels") or {}
    name = labels.get("name") or labels.get("label") or rec["id"][:8]
    kind = "LR range test" if rec.get("kind") == "range_test" else "trials"
    return f"{kind}: {name}"


@router.get("/jobs/{job_id}/plot.svg", summary="The job's curves as an SVG image",
            response_class=Response, operation_id="get_job_plot_svg",
            responses={200: {"content": {"image/svg+xml": {}},
                             "description": "range test: loss (raw and smoothed, validation when "
                                            "measured) against a log LR axis, every suggestion "
                                            "and the 1cycle bounds marked; trials: every "
                                            "candidate's smoothed train loss, the best one bold"},
                       **problems(401, 404, 409, 429, 503)})
async def job_plot_svg(job_id: JobId, caller: CallerDep, service: JobServiceDep) -> Response:
    rec = await owned_job_or_404(service, job_id, caller)
    view = read_result(rec.get("result")) if rec["status"] == "succeeded" \
        else None
    if view is None:
        raise ProblemError(409, "No result to plot",
                           f"job {job_id} is {rec['status']}; a plot exists once it succeeded",
                           type_="job-has-no-result", status_of_job=rec["status"])
    return Response(job_svg(view, _title(rec)), media_type="image/svg+xml",
                    headers={"Cache-Control": "private, max-age=3600"})
