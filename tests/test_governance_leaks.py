"""No NHS number where it does not belong: out-of-range and offset-less times are 4xx
problems (never 500s that log the person's path), problems name the route template,
bad numbers get no check-digit hint, publish bodies are strict JSON of the JSON type,
request heads are bounded; and a real server's whole log, after every error case,
holds no NHS number (issue 11)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cli.app import app as cli
from domain.nhs_number import is_valid_nhs_number
from domain.settings import get_settings
from tests.envelopes import NHS_A, NHS_B, envelope, later
from tests.fixtures_api import auth, keys_json

PROBLEM = "application/problem+json"
WRONG_DIGIT = NHS_A[:9] + "8"

# Each of these was a 500 on the old main (and logged the person's path).
CRASHERS = [
    f"/v1/patients/{NHS_A}/replay?as_of=9999-12-31T23:59:59-23:59",
    f"/v1/patients/{NHS_A}/replay?known_at=0001-01-01T00:00:00%2B23:59",
    f"/v1/patients/{NHS_A}/coordinator?as_of=9999-12-31T23:59:59-23:59",
    f"/v1/patients/{NHS_A}/coordinator?as_of=0001-01-01T00:00:00%2B23:59",
]
# Each of these was accepted on the old main: a number read as seconds, a naive time.
UNANCHORED = [
    f"/v1/patients/{NHS_A}/replay?as_of=1735689600",
    f"/v1/patients/{NHS_A}/replay?known_at=2026-03-02T10:00:00",
    f"/v1/patients/{NHS_A}/coordinator?as_of=2026-03-02T10:00:00",
    "/v1/access-log?from=0.5",
    "/v1/access-log?to=2026-03-02T10:00:00",
    "/v1/access-log?from=1735689600",
]
NHS_LIKE = re.compile(r"(?<![0-9])[0-9]{10}(?![0-9])")


def _nhs_numbers_in(text: str) -> set[str]:
    return {m for m in NHS_LIKE.findall(text) if is_valid_nhs_number(m)} | {
        n for n in (NHS_A, NHS_B, WRONG_DIGIT) if n in text
    }


@pytest.fixture
def person(publish: Callable, catch_up: Callable) -> None:
    publish(envelope(), envelope("CoordinatorAssigned", at=later(1)))
    catch_up()


@pytest.mark.parametrize("path", CRASHERS)
def test_out_of_range_times_are_422_problems_without_the_path(
    client: TestClient, person: None, path: str, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.DEBUG):
        response = client.get(path, headers=auth("admin"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert "out of range" in body["detail"]
    assert NHS_A not in response.text
    assert body["instance"].startswith("/v1/patients/{nhs}/")
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert not _nhs_numbers_in("\n".join(r.getMessage() for r in server_side))


@pytest.mark.parametrize("path", UNANCHORED)
def test_times_without_an_offset_are_refused_everywhere(
    client: TestClient, person: None, path: str
):
    response = client.get(path, headers=auth("admin"))
    assert response.status_code == 422, response.text
    assert "UTC offset" in response.json()["detail"]
    assert NHS_A not in response.text


def test_times_with_an_offset_still_work(client: TestClient, person: None):
    for path in (
        f"/v1/patients/{NHS_A}/replay?as_of=2026-03-02T12:00:00Z",
        f"/v1/patients/{NHS_A}/replay?known_at=2099-01-01T00:00:00%2B01:00",
        f"/v1/patients/{NHS_A}/coordinator?as_of=2026-03-02T12:00:00-05:00",
        "/v1/access-log?from=2026-01-01T00:00:00Z&to=2199-12-31T00:00:00Z",
    ):
        assert client.get(path, headers=auth("admin")).status_code == 200, path


def test_journey_page_far_dates_are_an_html_422(client: TestClient, person: None):
    signed = client.post(
        "/pages/sign-in",
        data={"api_key": auth("admin")["Authorization"][7:]},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text
    for query in ("to=9999-12-31", "from=0001-01-01", "to=0.5"):
        page = client.get(f"/pages/journey/{NHS_A}?{query}")
        assert page.status_code == 422, query
        assert page.headers["content-type"].startswith("text/html")
        assert not page.text.lstrip().startswith("{")


def test_bad_numbers_are_not_echoed_and_get_no_check_digit_hint(client: TestClient):
    response = client.get(f"/v1/patients/{WRONG_DIGIT}/journey", headers=auth("admin"))
    assert response.status_code == 422
    body = response.json()
    assert body["instance"] == "/v1/patients/{nhs}/journey"
    assert WRONG_DIGIT not in response.text
    assert body["detail"] == "path.nhs: NHS number check digit does not match"
    unmatched = client.get(f"/v1/patients/{WRONG_DIGIT}/nothing", headers=auth("admin"))
    assert unmatched.status_code == 404
    assert WRONG_DIGIT not in unmatched.text


def test_unauthenticated_person_paths_are_not_echoed(client: TestClient):
    response = client.get(f"/v1/patients/{NHS_A}/events")
    assert response.status_code == 401
    assert response.json()["instance"] == "/v1/patients/{nhs}/events"


def test_duplicate_keys_are_refused(client: TestClient, ledger):
    one = json.dumps(envelope(nhs=NHS_B))
    twice = one[:-1] + f', "nhs_number": "{NHS_A}"}}'
    response = client.post(
        "/v1/events",
        content=twice,
        headers={**auth("publisher"), "content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert "appears twice" in response.json()["detail"]
    nested = json.dumps([envelope()]).replace('"system":', '"system": "x", "system":', 1)
    response = client.post(
        "/v1/events",
        content=nested,
        headers={**auth("publisher"), "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert ledger.head_position() == 0


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
def test_publishing_without_the_json_type_is_415(client: TestClient, ledger, content_type):
    headers = auth("publisher")
    if content_type:
        headers["content-type"] = content_type
    response = client.post("/v1/events", content=json.dumps(envelope()), headers=headers)
    assert response.status_code == 415, response.text
    assert response.headers["content-type"] == PROBLEM
    assert "application/json" in response.json()["detail"]
    assert ledger.head_position() == 0
    ok = client.post(
        "/v1/events",
        content=json.dumps(envelope()),
        headers={**auth("publisher"), "content-type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 201


def test_header_size_and_count_are_bounded_in_the_app(client: TestClient):
    big = client.get("/v1/access-log", headers={"Authorization": "Bearer " + "a" * 40_000})
    assert big.status_code == 431
    assert big.json()["type"] == "urn:carejourney:problem:headers-too-large"
    many = client.get(
        "/v1/access-log", headers={**auth("admin"), **{f"x-h{i}": "v" for i in range(150)}}
    )
    assert many.status_code == 431
    assert client.get("/v1/access-log", headers=auth("admin")).status_code == 200


def test_cli_errors_name_no_nhs_number(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv("CAREJOURNEY_DATABASE_URL", database_url)
    monkeypatch.setenv("CAREJOURNEY_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        for args in (
            ["history", WRONG_DIGIT],
            ["history", NHS_B],
            ["journey", NHS_B],
            ["coordinator", NHS_B],
            ["erase", NHS_B],
        ):
            result = runner.invoke(cli, args)
            assert result.exit_code != 0, args
            assert not _nhs_numbers_in(result.output + (result.stderr or "")), args
        naive = runner.invoke(cli, ["history", NHS_B, "--known-at", "2026-03-02T10:00:00"])
        assert "no UTC offset; read as local time in Europe/London" in naive.stderr
    finally:
        get_settings.cache_clear()


# -- a real server, its whole log -------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(database_url: str, tmp_path: Path, publish: Callable) -> Iterator[tuple[str, Path]]:
    publish(envelope(), envelope("CoordinatorAssigned", at=later(1)), envelope(nhs=NHS_B))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREJOURNEY_")}
    env.update(
        CAREJOURNEY_DATABASE_URL=database_url,
        CAREJOURNEY_DATA_DIR=str(tmp_path / "data"),
        CAREJOURNEY_API_KEYS=keys_json(),
        CAREJOURNEY_PSEUDONYM_KEY="a-test-secret-that-is-not-the-placeholder",
    )
    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.app", "serve", "--port", str(port), "--log-level", "debug"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.3)
        yield base, log
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _raw(base: str, request: bytes) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(request)
        try:
            return s.recv(4096)
        except ConnectionResetError:
            return b""


@pytest.mark.slow
def test_a_real_servers_log_holds_no_nhs_number_after_every_error_case(
    server: tuple[str, Path],
):
    base, log = server
    statuses: dict[str, int] = {}
    with httpx.Client(base_url=base, timeout=30) as http:
        paths = [*CRASHERS, *UNANCHORED]
        for nhs in (NHS_A, NHS_B, WRONG_DIGIT, "943 476 5919", "94347659199"):
            for tail in ("events", "replay", "verify", "coordinator", "journey", "care-plans"):
                paths.append(f"/v1/patients/{nhs}/{tail}")
                paths.append(f"/v1/patients/{nhs}/{tail}?as_of=-1&known_at=x")
            paths += [
                f"/v1/patients/{nhs}/nothing",
                f"/v1/access-log?patient={nhs}",
                f"/pages/journey/{nhs}?to=9999-12-31",
                f"/pages/journey/{nhs}",
            ]
        for path in paths:
            for who in ("admin", "coordinator", "other-coordinator", "evaluator", None):
                headers = auth(who) if who else {}
                statuses[f"{who} {path}"] = http.get(path, headers=headers).status_code
        for body, kind in (
            (json.dumps(envelope(nhs=WRONG_DIGIT)), "application/json"),
            (json.dumps(envelope())[:-1] + f', "nhs_number": "{NHS_B}"}}', "application/json"),
            (json.dumps(envelope(nhs=NHS_B)), "text/plain"),
            (json.dumps([envelope(nhs=NHS_B, organisation="RXH01")]), "application/json"),
            ("{" + f'"nhs_number": "{NHS_A}"', "application/json"),
        ):
            response = http.post(
                "/v1/events", content=body, headers={**auth("publisher"), "content-type": kind}
            )
            statuses[f"POST {body[:30]}"] = response.status_code
        metrics = http.get("/metrics").text
    head = _raw(
        base,
        b"GET /v1/access-log HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + b"a" * (32 * 1024 * 1024)
        + b"\r\n\r\n",
    )
    assert head.startswith(b"HTTP/1.1 431"), head[:200]
    many = _raw(
        base,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"x-h%d: v\r\n" % i for i in range(500))
        + b"\r\n",
    )
    assert many.startswith(b"HTTP/1.1 431"), many[:200]
    assert not [k for k, v in statuses.items() if v >= 500], statuses
    assert statuses[f"admin {CRASHERS[0]}"] == 422
    time.sleep(0.5)
    text = log.read_text()
    assert "serving on" in text
    assert not _nhs_numbers_in(text), [line for line in text.splitlines() if NHS_LIKE.search(line)]
    assert "/v1/patients/9" not in text and "/pages/journey/9" not in text
    assert not _nhs_numbers_in(metrics)
