"""What the demo runs beside itself on loopback: the mesh's metrics, and a Prometheus scraping them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self


class BackgroundServer(ABC):
    """Started on entering a `with` block, stopped on leaving it. start() and stop() may also be
    called in between: the end-to-end tests stop Prometheus to see a run refuse to advance."""

    @abstractmethod
    def start(self) -> Self:
        """Start serving unless already serving; the server itself."""

    @abstractmethod
    def stop(self) -> None:
        """Stop serving, if serving."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
