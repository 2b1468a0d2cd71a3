"""The toolchain's Python language host (scripts/language-host/main.go), over its gRPC API.

The engine asks it for About and GetRequiredPackages on every preview and update; it keeps
both answers in the virtualenv, so only the first run after a change of the venv pays for
the Python processes (`pip list`, `pip --version`, ...). The venv here is a stand-in whose
`python` logs each run and hands over to this project's interpreter, so the tests see when
the host runs Python and when it answers from what it kept.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc  # type: ignore[import-untyped]
import pytest
from google.protobuf import struct_pb2
from pulumi.runtime.proto import language_pb2, language_pb2_grpc

from tests.e2e.cli import ROOT
from tests.e2e.conftest import TOOLCHAIN_DIR


@pytest.fixture(scope="module")
def host_binary(toolchain: dict[str, str]) -> Path:
    """This checkout's host: the toolchain builds it into a directory named after main.go's hash."""
    version = subprocess.run(
        ["scripts/toolchain", "--versions"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()[1]
    source_hash = hashlib.sha256((ROOT / "scripts/language-host/main.go").read_bytes()).hexdigest()[:12]
    binary = TOOLCHAIN_DIR / f"pulumi-{version}-host-{source_hash}" / "bin" / "pulumi-language-python"
    assert binary.is_file(), f"the toolchain fixture builds {binary}"
    return binary


@pytest.fixture
def host(host_binary: Path) -> Iterator[language_pb2_grpc.LanguageRuntimeStub]:
    process = subprocess.Popen([host_binary], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield language_pb2_grpc.LanguageRuntimeStub(channel)
    finally:
        process.terminate()
        process.wait(timeout=10)


class Venv:
    """A virtualenv whose python logs each run and then runs this project's venv/bin/python."""

    def __init__(self, project: Path, system_site_packages: bool = False) -> None:
        self.project, self.path, self.log = project, project / "venv", project / "python-runs.log"
        python_version = next((ROOT / "venv" / "lib").glob("python3*")).name
        self.site_packages = self.path / "lib" / python_version / "site-packages"
        self.site_packages.mkdir(parents=True)
        cfg = (ROOT / "venv" / "pyvenv.cfg").read_text()
        if system_site_packages:
            cfg = cfg.replace("include-system-site-packages = false", "include-system-site-packages = true")
        (self.path / "pyvenv.cfg").write_text(cfg)
        python = self.path / "bin" / "python"
        python.parent.mkdir()
        self.failing_scripts = project / "fail-python-c"  # while it exists, `python -c ...` fails
        python.write_text(
            f'#!/bin/sh\necho "$1" >> {self.log}\n'
            f'[ "$1" = -c ] && [ -e {self.failing_scripts} ] && exit 1\n'
            f'exec {ROOT / "venv/bin/python"} "$@"\n'
        )
        python.chmod(0o755)
        (project / "Pulumi.yaml").write_text("name: t\nruntime:\n  name: python\n")

    def runs(self) -> int:
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0

    def info(self) -> language_pb2.ProgramInfo:
        options = struct_pb2.Struct()
        options.update({"toolchain": "pip", "virtualenv": "venv"})
        project = str(self.project)
        return language_pb2.ProgramInfo(
            root_directory=project, program_directory=project, entry_point=".", options=options
        )


def required(host: language_pb2_grpc.LanguageRuntimeStub, venv: Venv) -> list[tuple[str, str]]:
    answer = host.GetRequiredPackages(language_pb2.GetRequiredPackagesRequest(info=venv.info()))
    return sorted((p.name, p.version) for p in answer.packages)


def about(host: language_pb2_grpc.LanguageRuntimeStub, venv: Venv) -> language_pb2.AboutResponse:
    answer: language_pb2.AboutResponse = host.About(language_pb2.AboutRequest(info=venv.info()))
    return answer


def test_required_packages_are_answered_from_the_venv_until_its_packages_change(
    host: language_pb2_grpc.LanguageRuntimeStub, tmp_path: Path
) -> None:
    venv = Venv(tmp_path)
    first = required(host, venv)
    assert any(name == "kubernetes" for name, _ in first), first
    python_runs = venv.runs()
    assert python_runs >= 2, "pip list, then the search for pulumi-plugin.json"

    assert required(host, venv) == first
    assert venv.runs() == python_runs, "kept: no Python run"

    (venv.site_packages / "example-1.0.dist-info").mkdir()  # what pip does for an install
    assert required(host, venv) == first
    assert venv.runs() > python_runs, "a new distribution: asked again"
    python_runs = venv.runs()

    shutil.rmtree(venv.site_packages / "example-1.0.dist-info")  # and for a removal
    required(host, venv)
    assert venv.runs() > python_runs


def test_an_answer_without_the_pulumi_plugin_json_search_is_not_kept(
    host: language_pb2_grpc.LanguageRuntimeStub, tmp_path: Path
) -> None:
    """The search failing is tolerated (packages named pulumi-* still count), but only for that run."""
    venv = Venv(tmp_path)
    venv.failing_scripts.touch()
    assert "kubernetes" in {name for name, _ in required(host, venv)}
    python_runs = venv.runs()
    required(host, venv)
    assert venv.runs() == 2 * python_runs, "asked again"
    venv.failing_scripts.unlink()
    complete = required(host, venv)
    python_runs = venv.runs()
    assert required(host, venv) == complete
    assert venv.runs() == python_runs, "the complete answer is kept"


def test_about_is_answered_from_the_venv_as_well(host: language_pb2_grpc.LanguageRuntimeStub, tmp_path: Path) -> None:
    venv = Venv(tmp_path)
    first = about(host, venv)
    assert first.executable and first.version and first.metadata["toolchain"] == "Pip"
    python_runs = venv.runs()
    assert python_runs >= 3, "python --version, sys.executable, pip --version"
    assert about(host, venv) == first
    assert venv.runs() == python_runs


def test_a_venv_that_sees_the_systems_packages_is_asked_every_time(
    host: language_pb2_grpc.LanguageRuntimeStub, tmp_path: Path
) -> None:
    """The system's site-packages change without the venv: no stamp of the venv covers them."""
    venv = Venv(tmp_path, system_site_packages=True)
    required(host, venv)
    python_runs = venv.runs()
    required(host, venv)
    assert venv.runs() == 2 * python_runs
