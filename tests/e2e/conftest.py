"""The end-to-end tier: the real Pulumi CLI drives the real program against a local control plane.

scripts/toolchain provides the pinned CLI, Kubernetes provider and control plane (built
or reused from its cache); scripts/local-cluster runs the control plane on loopback, as a
cluster of the tests' own (canary-e2e), so a trial stack of scripts/try-local is never touched.
Istio cannot be installed here (its charts cannot be downloaded), so the stack runs in
existing-cluster mode with installIstio=false, on a cluster that has what Istio leaves:
Istio's and the Gateway API's real CRDs (their schemas validate every object, as in a
real cluster), the istio-system namespace and istiod's GatewayClasses.
"""

from __future__ import annotations

import importlib.metadata
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from rollout.demo import MeshTraffic, PrometheusServer
from tests.e2e.cli import ROOT, CommandLog, Kubectl, Stack, copy_project, held_alone, run

WINDOW = "5s"  # the analysis window: Flagger's 1m, shortened to match a 1s scrape interval
TOOLCHAIN_DIR = Path(os.environ.get("CANARY_TOOLCHAIN_DIR", Path.home() / ".cache/canary-toolchain"))
# Runs of the tier on one machine take turns on this cluster; another name lets one run beside it.
E2E_CLUSTER = os.environ.get("CANARY_E2E_CLUSTER_NAME", "canary-e2e")
CLUSTER_WAIT_SECONDS = 40 * 60  # a whole tier takes about 18 min; CI allows 90 for everything
LOG_DIR = Path(os.environ.get("CANARY_E2E_LOG_DIR", ROOT / ".e2e-logs"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e)


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Marks a test whose body failed, for fixtures that clean up after a failure only (`failed`)."""
    report: pytest.TestReport = yield
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True
    return report


def failed(request: pytest.FixtureRequest) -> bool:
    """In a fixture's teardown: whether the test's body failed."""
    return bool(request.node.stash.get(FAILED, False))


@pytest.fixture(scope="session", autouse=True)
def interruptible_commands() -> Iterator[None]:
    """The commands these tests start take SIGINT as from a terminal, however the suite was started.

    A background job of a non-interactive shell (`cmd &` in a script) starts with SIGINT ignored, and
    Python and every process it starts keep it so: `canary run`'s Ctrl-C tests would see nothing happen.
    A Python handler here is reset to the default in each child at exec."""
    if signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture(scope="session")
def command_log() -> CommandLog:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    path = LOG_DIR / f"e2e-{time.strftime('%Y%m%d-%H%M%S')}.log"
    return CommandLog(path)


@pytest.fixture(scope="session")
def toolchain(command_log: CommandLog) -> dict[str, str]:
    """PATH and PULUMI_HOME with the pinned tools; the provider registered for the SDK's version."""
    pulumi_home = TOOLCHAIN_DIR / "pulumi-home"
    env = {**os.environ, "PULUMI_HOME": str(pulumi_home)}
    sdk_version = importlib.metadata.version("pulumi_kubernetes")
    result = run(
        ["scripts/toolchain", "--print-path", f"--install-plugin={sdk_version}", "pulumi", "cluster"], command_log, env
    )
    bin_dir = result.stdout.strip().splitlines()[-1]
    return {"PATH": f"{bin_dir}:{ROOT / 'venv/bin'}:{os.environ['PATH']}", "PULUMI_HOME": str(pulumi_home)}


def terminal(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Writes a line to the terminal as it happens, past pytest's capture of a fixture's output."""
    plugins = request.config.pluginmanager
    capture, reporter = plugins.get_plugin("capturemanager"), plugins.get_plugin("terminalreporter")
    if capture is None or reporter is None:  # run with -p no:terminal or no capture at all
        return print

    def write_line(line: str) -> None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)

    return write_line


@pytest.fixture(scope="session")
def cluster(toolchain: dict[str, str], command_log: CommandLog, request: pytest.FixtureRequest) -> Iterator[Kubectl]:
    """A fresh control plane of the tests' own (not scripts/try-local's), with what Istio leaves.

    One run at a time uses it: a second run on the same machine (another checkout, CI beside
    a developer) waits for the first. Whatever a killed run left in it is deleted first, so
    one run's objects never meet another's.
    """
    env = {
        **os.environ,
        **toolchain,
        "CANARY_CLUSTER_NAME": E2E_CLUSTER,
        "CANARY_KUBECONFIG": str(TOOLCHAIN_DIR / f"kubeconfig-{E2E_CLUSTER}"),
    }
    lock = TOOLCHAIN_DIR / f"{E2E_CLUSTER}.lock"
    with held_alone(lock, f"the end-to-end cluster {E2E_CLUSTER}", terminal(request), CLUSTER_WAIT_SECONDS):
        run(["scripts/local-cluster", "stop"], command_log, env)
        kubeconfig = run(["scripts/local-cluster", "start"], command_log, env).stdout.strip().splitlines()[-1]
        kubectl = Kubectl(kubeconfig, env, command_log)
        for crds in run(["scripts/toolchain", "--print-crds"], command_log, env).stdout.split():
            kubectl("apply", "--server-side", "-f", crds)
        kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        footprint = run([sys.executable, "scripts/istio_footprint.py"], command_log, env).stdout
        kubectl("apply", "--server-side", "-f", "-", stdin=footprint)
        yield kubectl
        if not os.environ.get("CANARY_KEEP_CLUSTER"):
            run(["scripts/local-cluster", "stop"], command_log, env, check=False)


@pytest.fixture(scope="module")
def stack(
    toolchain: dict[str, str], cluster: Kubectl, command_log: CommandLog, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("pulumi")
    (workdir / "backend").mkdir()
    env = {
        **os.environ,
        **toolchain,
        "PULUMI_BACKEND_URL": f"file://{workdir / 'backend'}",
        "PULUMI_CONFIG_PASSPHRASE": "e2e-only-passphrase",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    }
    stack = Stack("e2e", copy_project(workdir / "project"), env, command_log)
    run(["pulumi", "stack", "init", "e2e", "--non-interactive"], command_log, env, cwd=stack.project)
    settings = {
        "clusterMode": "existing",
        "kubeconfig": cluster.kubeconfig,
        "installIstio": "false",  # Istio's charts cannot be downloaded here; the CRDs are in place
        "prometheus": "false",
        "grafana": "false",
        "kiali": "false",
    }
    for key, value in settings.items():
        stack.set_config(key, value)
    yield stack
    stack("destroy", "--yes", check=False)  # a no-op once the lifecycle test destroyed it


@pytest.fixture(scope="session")
def mesh_traffic() -> Iterator[MeshTraffic]:
    """Istio-shaped metrics of nginx-v1 and nginx-v2 in `default`, as their sidecars would export them."""
    with MeshTraffic(app="nginx", namespace="default") as mesh:
        mesh.set("v1", rps=100, error_ratio=0, latency_ms=50)
        mesh.set("v2", rps=100, error_ratio=0, latency_ms=50)
        yield mesh


def prometheus_bin_dir() -> str:
    """The toolchain's bin directory with prometheus and promtool (downloaded on first use)."""
    result = subprocess.run(
        [str(ROOT / "scripts/toolchain"), "--print-path", "prometheus"], capture_output=True, text=True, check=True
    )
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def prometheus(mesh_traffic: MeshTraffic) -> Iterator[PrometheusServer]:
    """Debian's Prometheus on loopback, scraping the mesh every second; ready once every series has a window."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", prometheus_bin_dir(), prepend=":")
        with PrometheusServer([mesh_traffic.target], scrape_interval="1s") as server:
            server.wait_for_series(f"count(count_over_time(istio_requests_total[{WINDOW}]) >= 4) >= 2", 30)
            yield server
