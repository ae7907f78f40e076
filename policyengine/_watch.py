"""Hot reload: a driver's policy follows its files.

``PolicyWatcher`` polls the size, modification time and inode of the policy
files (those given, and those ``$POLICYENGINE_POLICY`` names) every
``interval`` seconds from a daemon thread, and on a change reloads the
driver (``Driver.reload``): atomically, for the calls that start after it. A
file that does not load is rejected whole: every problem is logged once (on
the ``policyengine`` logger, ERROR), the policy in use stays, and the next
change is tried again. Polling needs no extra dependency and works on every
file system, network ones included.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import NamedTuple

from ._driver import LOGGER, Driver
from ._errors import PolicyError
from ._layers import PRESET_PREFIX, env_files

__all__ = ["DEFAULT_INTERVAL", "PolicyWatcher"]

#: Seconds between two looks at the files.
DEFAULT_INTERVAL = 1.0


class _Seen(NamedTuple):
    """What a file looked like (None: it could not be read)."""

    mtime_ns: int
    size: int
    inode: int


def _look(path: str) -> _Seen | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return _Seen(st.st_mtime_ns, st.st_size, st.st_ino)


class PolicyWatcher:
    """Reload ``driver`` whenever one of its policy files changes.

    Use it as a context manager, or ``start()`` and ``stop()``::

        with pe.PolicyWatcher(transport.driver, "/etc/app/prod.toml"):
            serve()

    Args:
        driver: The driver to reload (``adapter.driver`` for an adapter).
        files: The files layered over the default, as for ``load_policy``.
        env: Also watch (and layer) the files ``$POLICYENGINE_POLICY`` names.
        default: Start from the bundled default policy.
        interval: Seconds between two looks at the files.
        logger: Where reloads and rejected files are logged.
    """

    def __init__(
        self,
        driver: Driver,
        *files: str | os.PathLike[str],
        env: bool = True,
        default: bool = True,
        interval: float = DEFAULT_INTERVAL,
        logger: logging.Logger | None = None,
    ) -> None:
        self.driver = driver
        self.files: tuple[str, ...] = tuple(os.fspath(f) for f in files)
        self.env = env
        self.default = default
        self.interval = interval
        self.logger = logger if logger is not None else LOGGER
        self._seen = self._look()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _watched(self) -> Sequence[str]:
        """The files to look at: the layers given and those of the
        environment, but the bundled presets (``preset:NAME``)."""
        layers = (*self.files, *(env_files() if self.env else ()))
        return [path for path in layers if not path.startswith(PRESET_PREFIX)]

    def _look(self) -> dict[str, _Seen | None]:
        return {path: _look(path) for path in self._watched()}

    def check(self) -> bool:
        """Look once; reload when a file changed.

        Returns:
            Whether the driver now runs a new policy.
        """
        seen = self._look()
        if seen == self._seen:
            return False
        self._seen = seen
        try:
            self.driver.reload(*self.files, env=self.env, default=self.default)
        except PolicyError as error:
            self.logger.error(
                "policy not reloaded, the one in use stays: %d problem%s\n%s",
                len(error.problems),
                "s" * (len(error.problems) != 1),
                error,
                extra={"problems": [str(p) for p in error.problems]},
            )
            return False
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # never let the watcher die of an odd file system
                self.logger.exception("policy watcher: could not look at the files")

    def start(self) -> PolicyWatcher:
        """Start watching in a daemon thread (again after ``stop``)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="policyengine-watch", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(1.0, 2 * self.interval))
            self._thread = None

    def __enter__(self) -> PolicyWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
