"""What the contract promises before any route code runs, and the parts of the OpenAPI document a
client generator depends on (no Redis or worker is needed for these)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from app.api.deps import bearer_token
from app.core.config import Settings
from app.core.problems import PROBLEM_JSON
from app.main import create_app

BODY_ROUTES = ["/v1/advice", "/v1/advice/batch", "/v1/schedules/preview", "/v1/diagnose",
               "/v1/jobs/lr-range-test", "/v1/jobs/trials", "/v1/jobs/lr-range-test/batch"]


@pytest.fixture(scope="module")
def client() -> TestClient:
    with TestClient(create_app(Settings())) as c:
        yield c


@pytest.fixture(scope="module")
def doc(client: TestClient) -> dict:
    return client.get("/openapi.json").json()


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize(("raw", "message"), [
    (b'{"x": NaN}', "finite"), (b'{"x": Infinity}', "finite"), (b'{"x": -Infinity}', "finite"),
    (b'{"x": 1e400}', "finite"), (b'{"x": "\\ud800"}', "Unicode"),
    (b'{"\\udfff": 1}', "Unicode")])
def test_non_json_numbers_and_lone_surrogates_are_a_422_naming_the_field(
        client: TestClient, path: str, raw: bytes, message: str) -> None:
    r = client.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM_JSON
    err = r.json()["errors"][0]
    assert err["field"].startswith("body") and message in err["message"]


def test_a_nested_nan_names_its_path(client: TestClient) -> None:
    raw = b'{"items": [{"task": "llm_pretrain"}, {"batch_size": NaN}]}'
    r = client.post("/v1/advice/batch", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body.items[1].batch_size"


@pytest.mark.parametrize(("path", "mutate", "field"), [
    ("/v1/jobs/lr-range-test", lambda b: b.update(priority=False), "body.priority"),
    ("/v1/jobs/lr-range-test", lambda b: b["config"].update(end_lr=True), "body.config.end_lr"),
    ("/v1/jobs/lr-range-test", lambda b: b.update(force=1), "body.force"),
])
def test_booleans_are_not_numbers_nor_numbers_booleans(client: TestClient, path: str, mutate,
                                                       field: str) -> None:
    body = {"experiment": {"data": {"kind": "digits"}, "model": {"kind": "mlp", "hidden": [8]},
                           "batch_size": 8}, "config": {"num_steps": 20}}
    mutate(body)
    r = client.post(path, json=body)
    assert r.status_code == 422, r.text
    assert any(e["field"] == field for e in r.json()["errors"]), r.json()


def test_unknown_query_parameters_are_refused(client: TestClient) -> None:
    r = client.get("/v1/jobs", params={"lable": "team:vision"})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM_JSON
    (err,) = r.json()["errors"]
    assert err["field"] == "query.lable" and "label" in err["allowed"]
    assert client.get("/healthz", params={"x": "1"}).status_code == 422


def test_a_404_does_not_echo_a_huge_id(client: TestClient) -> None:
    r = client.get("/v1/jobs/" + "a" * 60_000)
    assert r.status_code in (404, 422) and len(r.content) < 3_000
    r = client.get("/v1/jobs/" + "0" * 32)  # well-formed; Redis may be absent here
    assert len(r.content) < 3_000


def test_problem_rendering_never_fails_on_odd_values() -> None:
    from app.core.problems import ProblemError, render

    doc = ProblemError(422, "t", "d", odd=float("nan"), s="\ud800" * 3, n=[object()]).to_dict()
    out = render(doc).decode()
    assert "NaN" not in out and "nan" in out


def test_operation_ids_tags_and_problem_schemas(doc: dict) -> None:
    ops = {op["operationId"]: (path, method, op) for path, item in doc["paths"].items()
           for method, op in item.items()}
    assert {"advise", "advise_batch", "submit_range_test", "submit_trials",
            "submit_range_test_batch", "get_job", "list_jobs", "cancel_job",
            "stream_job_events", "list_rules", "get_rule", "preview_schedule",
            "diagnose"} <= ops.keys()
    for op_id, (path, _, op) in ops.items():
        assert op.get("tags"), op_id
        for status, resp in op["responses"].items():
            if status.startswith(("4", "5")) or status == "default":
                assert resp["content"] == {PROBLEM_JSON: {"schema": {
                    "$ref": "#/components/schemas/Problem"}}}, (op_id, status)
        if path.startswith("/v1/") and "requestBody" in op:
            content = op["requestBody"]["content"]["application/json"]
            assert content.get("examples") or content.get("example"), op_id
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    problem = doc["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "instance", "request_id",
            "errors"} <= problem["properties"].keys()
    assert {"field", "message", "allowed", "value"} <= doc["components"]["schemas"][
        "ProblemItem"]["properties"].keys()
    # A cancel of a running job (202) and the result union are declared.
    assert "202" in ops["cancel_job"][2]["responses"]
    job = doc["components"]["schemas"]["JobView"]["properties"]["result"]
    assert "discriminator" in str(job) and "range_test" in str(doc["components"]["schemas"][
        "RangeTestResult"])
    # The event stream is text/event-stream with its event types.
    sse = ops["stream_job_events"][2]["responses"]["200"]
    assert list(sse["content"]) == ["text/event-stream"]
    assert set(sse["x-sse-events"]) == {"status", "progress"}
    # Batch maximums, cursor and Last-Event-ID formats are in the schema.
    params = {p["name"]: p for p in ops["list_jobs"][2]["parameters"]}
    assert params["cursor"]["schema"]["anyOf"][0]["pattern"]
    assert params["limit"]["schema"]["maximum"] == 100
    headers = {p["name"]: p for p in ops["stream_job_events"][2]["parameters"]}
    assert headers["Last-Event-ID"]["schema"]["anyOf"][0]["pattern"]
    schemas = doc["components"]["schemas"]
    assert schemas["RangeTestBatchRequest"]["properties"]["items"]["maxItems"] == 50
    assert schemas["AdviceBatchRequest"]["properties"]["items"]["maxItems"] == 100


def test_every_route_that_takes_a_key_declares_the_bearer_scheme(doc: dict) -> None:
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    secured = {op["operationId"] for item in doc["paths"].values() for op in item.values()
               if op.get("security") == [{"HTTPBearer": []}]}
    assert {"advise", "advise_batch", "submit_trials", "get_job", "cancel_job",
            "stream_job_events", "list_rules", "diagnose", "metrics"} <= secured
    open_ops = {op["operationId"] for item in doc["paths"].values() for op in item.values()
                if "security" not in op}
    assert {"healthz", "readyz"} <= open_ops  # probes need no key


@pytest.mark.parametrize(("header", "token"), [
    (None, None), ("Bearer oak_1", "oak_1"), ("bearer oak_1", "oak_1"),
    ("BEARER oak_1 x", "oak_1 x"), ("Basic dXNlcjpw", None), ("Bearer", None),
    ("Bearer ", None), ("", None)])
def test_the_bearer_header_is_read_as_http_bearer_reads_it(header: str | None,
                                                          token: str | None) -> None:
    headers = [] if header is None else [(b"authorization", header.encode())]
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": headers,
                       "query_string": b""})
    assert bearer_token(request) == token


def test_every_rule_the_advice_cites_resolves(client: TestClient) -> None:
    from app.schemas import examples

    rules = client.get("/v1/rules").json()["items"]
    ids = {r["id"] for r in rules}
    assert all(r["text"] and r["source"] for r in rules)
    for ex in examples.ADVICE.values():
        advice = client.post("/v1/advice", json=ex["value"]).json()
        for entry in advice["rationale"]:
            for rid, link in zip(entry["rule_ids"], entry["rule_links"], strict=True):
                assert rid in ids
                got = client.get(link)
                assert got.status_code == 200 and got.json()["id"] == rid
        assert set(advice["rules_fired"]) <= ids
    assert client.get("/v1/rules/NOPE").status_code == 404


def test_limits_429_with_retry_after_and_ratelimit_headers() -> None:
    import redis

    from app.auth.keys import KeyStore
    from tests.jobs_support import new_namespace

    ns = new_namespace()
    try:
        _, key = KeyStore(redis.Redis.from_url(ns.redis_url), ns.jobs_prefix).create(
            "ratelimited", "user")
        settings = Settings(**ns.settings_kwargs(), auth="keys", rate_limit_burst=3,
                            rate_limit_per_s=0.5)
        with TestClient(create_app(settings)) as c:
            codes = [c.get("/v1/rules", headers={"Authorization": f"Bearer {key}"})
                     for _ in range(4)]
        assert [r.status_code for r in codes] == [200, 200, 200, 429]
        limited = codes[-1]
        assert limited.headers["content-type"] == PROBLEM_JSON
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.headers["RateLimit-Limit"] == "3"
        assert limited.headers["RateLimit-Remaining"] == "0"
        assert limited.json()["type"].endswith("rate-limited")
    finally:
        ns.cleanup()


def test_a_public_address_without_keys_refuses_to_start() -> None:
    from tests.jobs_support import new_namespace

    ns = new_namespace()
    try:
        settings = Settings(**ns.settings_kwargs(), host="0.0.0.0")
        assert settings.effective_auth == "keys"
        with pytest.raises(RuntimeError, match="without API keys"), \
                TestClient(create_app(settings)):
            pass
        assert Settings(host="0.0.0.0", auth="open").effective_auth == "open"
        assert Settings(host="127.0.0.1").effective_auth == "open"
    finally:
        ns.cleanup()


def test_the_keys_command(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    from app import keys
    from tests.jobs_support import new_namespace

    ns = new_namespace()
    monkeypatch.setenv("OPTIM_REDIS_URL", ns.redis_url)
    monkeypatch.setenv("OPTIM_JOBS_KEY_PREFIX", ns.jobs_prefix)
    try:
        assert keys.main(["create", "--tenant", "ml-platform", "--role", "admin"]) == 0
        key = capsys.readouterr().out.strip()
        assert key.startswith("oak_")
        assert keys.main(["list"]) == 0
        listed = capsys.readouterr().out
        assert "ml-platform" in listed and key not in listed
        key_id = key.split("_")[1]
        assert keys.main(["revoke", key_id]) == 0
        assert keys.main(["revoke", key_id]) == 1
        assert keys.main(["create", "--tenant", "Bad Name"]) == 2
    finally:
        ns.cleanup()
