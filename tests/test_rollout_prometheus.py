"""Garbage from Prometheus is an error, never a pass and never a crash; bad analysis options are refused.

A real HTTP server on loopback answers each query with what a broken, slow or hostile
Prometheus could send; the real client reads it.
"""

from __future__ import annotations

import base64
import http.server
import json
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rollout.checks import MAX_ANSWER_BYTES, Check, Prometheus, Target, builtin_checks, parse_check, redacted
from rollout.cli import parse_args
from rollout.gate import Gate, Progress, Verdict, judge
from tests.harness import serve_in_background

SUCCESS, LATENCY = builtin_checks()
TARGET = Target("default", "nginx-v2", "1m")
Answer = Callable[[http.server.BaseHTTPRequestHandler], None]


class FakePrometheus:
    """Answers every request with `self.answer`; remembers the Authorization headers and paths it saw."""

    def __init__(self) -> None:
        self.answer: Answer = json_answer("{}")
        self.authorizations: list[str | None] = []
        self.paths: list[str] = []
        self.errors: list[BaseException | None] = []  # what its handlers raised (a client that hung up)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.authorizations.append(self.headers.get("Authorization"))
                owner.paths.append(self.path)
                owner.answer(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                # Kept, not printed: a client gone mid-answer (a run stopped by a signal) would print a traceback
                # from this server's thread into whichever test's stderr is captured by then.
                owner.errors.append(sys.exc_info()[1])

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        serve_in_background(self.server)


def json_answer(body: str) -> Answer:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        payload = body.encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    return answer


def vector(*values: object) -> str:
    series = [{"metric": {}, "value": [1700000000.0, value]} for value in values]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": series}})


@pytest.fixture(scope="module")
def prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()
    yield fake
    fake.server.shutdown()


def evaluate(prometheus: FakePrometheus, answer: Answer, check: Check = SUCCESS, timeout: float = 10.0) -> str:
    prometheus.answer = answer
    (result,) = Prometheus(prometheus.url, timeout=timeout).evaluate([check], TARGET)
    assert not result.passed and result.value is None and result.error is not None, result
    return result.error


def test_a_good_answer_is_a_value(prometheus: FakePrometheus) -> None:
    prometheus.answer = json_answer(vector("99.5"))
    (result,) = Prometheus(prometheus.url).evaluate([SUCCESS], TARGET)
    assert (result.value, result.passed, result.error) == (99.5, True, None)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("<html>proxy error</html>", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"status": "success"}', "not an instant vector"),
        ('{"status": "success", "data": {"resultType": "matrix", "result": []}}', "not an instant vector"),
        ('{"status": "success", "data": {"resultType": "vector", "result": {}}}', "not an instant vector"),
        ('{"status": "success", "data": "nothing"}', "not an instant vector"),
        (vector(), "returned 0 series"),
        (vector("1", "2"), "returned 2 series"),
        ('{"status": "success", "data": {"resultType": "vector", "result": [7]}}', "not [time"),
        ('{"status": "success", "data": {"resultType": "vector", "result": [{"value": 99}]}}', "not [time"),
        (vector(99.5), "not [time"),  # a number where Prometheus sends a string
        (vector("lots"), "not [time"),
        (vector(None), "not [time"),
        (vector("NaN"), "NaN"),
        (vector("+Inf"), "value is inf"),
        (vector("-Inf"), "value is -inf"),
        (vector("150"), "150% is not a possible request-success-rate"),
        (vector("-3"), "-3% is not a possible request-success-rate"),
        ('{"status": "error", "error": "bad_data"}', "query failed: bad_data"),
    ],
)
def test_garbage_is_an_error_never_a_pass(prometheus: FakePrometheus, body: str, error: str) -> None:
    assert error in evaluate(prometheus, json_answer(body))


def cut(text: str, at: int) -> tuple[str, str]:
    """A garbage answer whose first `at` characters are shown and whose next one ("Z") is not."""
    assert len(text) == at and "Z" not in text
    return text + "Z", text


NOT_JSON, NOT_JSON_SHOWN = cut("<" * 80, 80)
NOT_OBJECT, NOT_OBJECT_SHOWN = cut('["' + "a" * 78, 80)
NOT_VECTOR, NOT_VECTOR_SHOWN = cut('{"status": "success", "data": "' + "a" * 89, 120)
SAMPLE = "n" * 64 + "Z"  # str([1700000000.0, SAMPLE]) shows 64 n's within its first 80 characters


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (NOT_JSON, repr(NOT_JSON_SHOWN.encode())),
        (NOT_OBJECT + '", 1]', repr(NOT_OBJECT_SHOWN.encode())),
        (NOT_VECTOR + '"}', repr(NOT_VECTOR_SHOWN.encode())),
        (vector(SAMPLE), f'the sample is not [time, "number"]: [1700000000.0, \'{"n" * 64}'),
        (json.dumps({"status": "error", "error": "e" * 300 + "Z"}), "query failed: " + "e" * 300),
        ('{"status": "error"}', "query failed: {'status': 'error'}"),  # no error text: the whole answer
    ],
    ids=["not-json", "not-an-object", "not-a-vector", "not-a-sample", "long-error", "error-without-text"],
)
def test_garbage_is_shown_from_its_start_and_cut_at_a_bound(prometheus: FakePrometheus, body: str, shown: str) -> None:
    error = evaluate(prometheus, json_answer(body))
    assert shown in error and "Z" not in error, error


def test_a_negative_latency_is_garbage(prometheus: FakePrometheus) -> None:
    assert "-1ms is not a possible request-duration" in evaluate(prometheus, json_answer(vector("-1")), LATENCY)


def test_a_huge_answer_is_cut_off(prometheus: FakePrometheus) -> None:
    assert "larger than" in evaluate(prometheus, json_answer(" " * (MAX_ANSWER_BYTES + 1) + vector("100")))


def test_a_trickling_answer_hits_the_deadline_for_the_whole_answer(prometheus: FakePrometheus) -> None:
    def trickle(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.end_headers()
        try:
            for _ in range(40):  # each byte well within the socket timeout, the whole far beyond the deadline
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    start = time.monotonic()
    assert "no complete answer within 1s" in evaluate(prometheus, trickle, timeout=1.0)
    assert time.monotonic() - start < 2.5


def test_a_silent_server_times_out(prometheus: FakePrometheus) -> None:
    def silent(handler: http.server.BaseHTTPRequestHandler) -> None:
        time.sleep(1.5)

    # Timed out at the socket, not served at last: it hangs up after 1.5 s, 3 times the timeout.
    assert evaluate(prometheus, silent, timeout=0.5) == f"Prometheus at {prometheus.url} did not answer: timed out"


def test_an_http_error_is_an_error(prometheus: FakePrometheus) -> None:
    def unavailable(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_error(503, "overloaded")

    assert "answered 503" in evaluate(prometheus, unavailable)


def test_garbage_counts_toward_the_error_limit_and_rolls_back(prometheus: FakePrometheus) -> None:
    gate = Gate((10, 50), threshold=5, error_limit=2)
    prometheus.answer = json_answer(vector("+Inf"))
    progress = Progress()
    verdicts = []
    for _ in range(2):
        verdict, progress = judge(gate, progress, Prometheus(prometheus.url).evaluate([SUCCESS, LATENCY], TARGET))
        verdicts.append(verdict)
    assert verdicts == [Verdict.HOLD, Verdict.ROLLBACK]


def test_credentials_in_the_url_are_sent_as_basic_auth_and_never_shown(prometheus: FakePrometheus) -> None:
    host = prometheus.url.removeprefix("http://")
    analyst = Prometheus(f"http://admin:hunter2@{host}")
    assert "hunter2" not in analyst.url
    prometheus.answer = json_answer("not json")
    prometheus.authorizations.clear()
    (result,) = analyst.evaluate([SUCCESS], TARGET)
    assert prometheus.authorizations == ["Basic YWRtaW46aHVudGVyMg=="]
    (down,) = Prometheus("http://admin:hunter2@127.0.0.1:9").evaluate([SUCCESS], TARGET)
    assert down.error is not None and "hunter2" not in down.error and "cannot be reached" in down.error
    with pytest.raises(LookupError, match="cannot be reached") as unready:
        Prometheus("http://admin:hunter2@127.0.0.1:9").ready()
    assert "hunter2" not in str(unready.value)
    prometheus.authorizations.clear()
    analyst.ready()
    Prometheus(f"http://reader@{host}").ready()  # a user without a password: an empty one
    assert prometheus.authorizations == ["Basic YWRtaW46aHVudGVyMg==", "Basic cmVhZGVyOg=="]
    assert result.error is not None and "hunter2" not in result.error


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--success-rate", "nan"], "--success-rate 'nan': must be a number from 0 to 100"),
        (["run", "--success-rate", "101"], "--success-rate '101': must be a number from 0 to 100"),
        (["run", "--success-rate", "inf"], "--success-rate 'inf': must be a number from 0 to 100"),
        (["run", "--max-latency", "-5"], "--max-latency '-5': must be a number from 0"),
        (["run", "--max-latency", "inf"], "--max-latency 'inf': must be a number from 0"),
        (["run", "--check", "x:max:inf:up"], "the bound 'inf' must be a number"),
        (["run", "--poll", "0s"], "--poll '0s': must be a duration like 60s or 1m, at least 1s"),
        (["run", "--interval", "1h1m"], "--interval '1h1m': must be a duration like 60s or 1m, at least 1s"),
        (["status", "--prometheus-url", "file:///etc/passwd"], "must be an http:// or https:// URL"),
        (
            ["run", "--prometheus-url", "ftp://u:s3cret@127.0.0.1/"],
            "'ftp://***@127.0.0.1/': must be an http:// or https://",
        ),
    ],
)
def test_bad_analysis_options_are_refused(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "s3cret" not in err


def test_a_bad_url_in_the_environment_is_refused_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CANARY_PROMETHEUS_URL", "gopher://127.0.0.1:9090")
    with pytest.raises(SystemExit):
        parse_args(["run"])
    assert "must be an http:// or https:// URL" in capsys.readouterr().err
    monkeypatch.setenv("CANARY_PROMETHEUS_URL", "https://127.0.0.1:9443")
    assert parse_args(["run"]).prometheus_url == "https://127.0.0.1:9443"
    assert parse_args(["run", "--no-builtin-checks", "--check", "x:min:1:up"]).check[0].name == "x"


def test_an_answer_of_exactly_the_limit_is_read() -> None:
    """MAX_ANSWER_BYTES is the largest answer accepted, not the first refused."""
    fake = FakePrometheus()
    try:
        body = vector("99.9")
        fake.answer = json_answer(" " * (MAX_ANSWER_BYTES - len(body)) + body)
        assert Prometheus(fake.url).query("up") == 99.9
    finally:
        fake.server.shutdown()


def test_no_data_says_why() -> None:
    fake = FakePrometheus()
    try:
        fake.answer = json_answer(vector("NaN"))
        with pytest.raises(LookupError) as no_data:
            Prometheus(fake.url).query("up")
        assert str(no_data.value) == "no data: the query's value is NaN (no requests in the window?)"
    finally:
        fake.server.shutdown()


def test_an_unreachable_prometheus_says_why() -> None:
    with socket.socket() as unused:  # a loopback port nothing listens on
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}"
    with pytest.raises(LookupError) as unreachable:
        Prometheus(url).ready()
    assert str(unreachable.value) == f"Prometheus at {url} cannot be reached ([Errno 111] Connection refused)"


def test_a_url_without_credentials_is_shown_as_it_is() -> None:
    assert redacted("http://127.0.0.1:9090/prometheus") == "http://127.0.0.1:9090/prometheus"
    assert redacted("http://reader@127.0.0.1:9090") == "http://***@127.0.0.1:9090"
    assert redacted("http://reader:p@ss@127.0.0.1:9090/x") == "http://***@127.0.0.1:9090/x", "an unescaped @ too"


def test_the_builtin_checks_names_bounds_and_units() -> None:
    assert [(c.name, c.kind, c.bound, c.unit) for c in builtin_checks(98.5, 250)] == [
        ("request-success-rate", "min", 98.5, "%"),
        ("request-duration", "max", 250, "ms"),
    ]
    custom = parse_check("errors:max:5:sum(rate(x[$window]))")
    assert (custom.name, custom.kind, custom.bound, custom.query) == ("errors", "max", 5, "sum(rate(x[$window]))")
    assert parse_check("up:min:1:up").kind == "min"


def test_a_url_ending_in_a_slash_queries_the_api_path(prometheus: FakePrometheus) -> None:
    prometheus.answer = json_answer(vector("99.5"))
    assert Prometheus(prometheus.url + "/").query("up") == 99.5
    assert prometheus.paths[-1] == "/api/v1/query?query=up"


def test_a_password_with_an_unescaped_at_sign_is_sent_whole_to_the_right_host(prometheus: FakePrometheus) -> None:
    prometheus.answer = json_answer(vector("99.5"))
    assert Prometheus(prometheus.url.replace("//", "//reader:p@ss@")).query("up") == 99.5
    assert prometheus.authorizations[-1] == "Basic " + base64.b64encode(b"reader:p@ss").decode()


def test_an_http_error_shows_the_start_of_its_body_with_bad_bytes_replaced(prometheus: FakePrometheus) -> None:
    def unavailable(handler: http.server.BaseHTTPRequestHandler) -> None:
        body = b"\xff" + b"x" * 400
        handler.send_response(503)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    error = evaluate(prometheus, unavailable)
    assert error == "Prometheus answered 503: \ufffd" + "x" * 299


def test_a_silent_prometheus_is_not_ready_once_its_timeout_passed(prometheus: FakePrometheus) -> None:
    """Asking /-/ready waits the Prometheus' own timeout when it is under READY_TIMEOUT_SECONDS, not until the
    server gives up (after 3 s here) or forever."""
    prometheus.answer = lambda handler: time.sleep(3)
    started = time.monotonic()
    with pytest.raises(LookupError) as silent:
        Prometheus(prometheus.url, timeout=0.3).ready()
    assert time.monotonic() - started < 2
    assert str(silent.value) == f"Prometheus at {prometheus.url} cannot be reached (timed out)"


def test_a_prometheus_that_hangs_up_is_named_with_what_happened(prometheus: FakePrometheus) -> None:
    prometheus.answer = lambda handler: None  # closes the connection without an answer
    with pytest.raises(LookupError) as unreachable:
        Prometheus(prometheus.url).ready()
    assert str(unreachable.value) == (
        f"Prometheus at {prometheus.url} cannot be reached (Remote end closed connection without response)"
    )


@pytest.mark.parametrize(
    ("check", "value", "error"),
    [
        (SUCCESS, "0", None),  # every request failed: a value, and a failing one
        (SUCCESS, "100", None),
        (SUCCESS, "100.5", "garbage: 100.5% is not a possible request-success-rate"),
        (LATENCY, "0.5", None),
        (LATENCY, "0", None),
    ],
    ids=["no-success", "all-success", "above-100", "half-a-millisecond", "no-latency"],
)
def test_the_possible_values_include_their_ends(
    prometheus: FakePrometheus, check: Check, value: str, error: str | None
) -> None:
    prometheus.answer = json_answer(vector(value))
    (result,) = Prometheus(prometheus.url).evaluate([check], TARGET)
    assert (result.value, result.error) == ((None, error) if error else (float(value), None))


def test_without_options_the_project_is_the_current_directory_and_only_the_builtin_checks_run() -> None:
    args = parse_args(["status"])
    assert (args.cwd, args.check, args.no_builtin_checks) == (Path.cwd(), [], False)


def test_no_checks_at_all_is_refused_with_why(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(["run", "--no-builtin-checks"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "canary: error: --no-builtin-checks needs at least one --check: a run with no checks would judge nothing"
    )
