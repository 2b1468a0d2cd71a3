"""A real Prometheus (the `prometheus` on PATH) scraping given targets, on 127.0.0.1.

The demo (`scripts/try-local demo`) and the end-to-end tests run it; scripts/toolchain
provides the binary (`scripts/toolchain --print-path prometheus` is the directory to put on PATH).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Self

from rollout.demo.background import BackgroundServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrometheusServer(BackgroundServer):
    """`with PrometheusServer(["127.0.0.1:PORT"]) as prom: prom.wait_for_series("up")`.

    stop() and start() again keep the port and the data, as a restarted Prometheus would.
    """

    def __init__(self, targets: list[str], scrape_interval: str = "1s", workdir: Path | None = None) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="prometheus-")) if workdir is None else workdir
        self.port = free_port()
        self.log_path = self.workdir / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None
        scrape = {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval}
        config = {"global": scrape, "scrape_configs": [{"job_name": "mesh", "static_configs": [{"targets": targets}]}]}
        self.config_path = self.workdir / "prometheus.yml"
        self.config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Self:
        """Start the server and wait until /-/ready answers."""
        if self._process is not None:
            return self
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError(
                "no prometheus on PATH (put the directory `scripts/toolchain --print-path prometheus` prints on it)"
            )
        command = [
            binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"prometheus not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server (kill it if it does not exit in time); its URL then refuses connections."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result (/api/v1/query); raises on an error status."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body: dict[str, Any] = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for_series(self, query: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll an instant query until it returns at least one series; that result."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(query)
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"no series for {query!r} after {timeout}s")
            time.sleep(0.25)

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __exit__(self, *exc_info: object) -> None:
        super().__exit__(*exc_info)
        if self._own_workdir:  # kept across stop() and start(), not beyond the with block
            shutil.rmtree(self.workdir, ignore_errors=True)
