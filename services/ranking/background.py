"""A step repeated from a daemon thread until stopped (ranking's data-version refresher and
its day-snapshot keeper)."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)


class BackgroundLoop:
    """Calls step() every pause_s, or, when `pace` is set, waits at least pace times as long
    as the last step took (a costly step then keeps to a share of the time). A failing step
    is logged and tried again at the next turn."""

    def __init__(self, name: str, step: Callable[[], object], pause_s: float, failure: str, pace: float = 0.0):
        self.name, self.step, self.pause_s, self.failure, self.pace = name, step, pause_s, failure, pace
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def _run(self) -> None:
        pause = self.pause_s
        while not self._stop.wait(pause):
            started = time.monotonic()
            try:
                self.step()
            except Exception as exc:
                log.warning("%s: %s", self.failure, exc)
            pause = max(self.pause_s, self.pace * (time.monotonic() - started))

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Returns once the step is no longer running (or after timeout_s)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
