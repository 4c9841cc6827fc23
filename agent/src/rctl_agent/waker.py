"""A wake-up call for the agent's main loop that signal handlers may use."""

from __future__ import annotations

import fcntl
import os
import select


class Waker:
    """Wakes the main loop; ``wake`` is safe from signal handlers and threads."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        self._closed = False
        for fd in (self._r, self._w):
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)

    def wake(self) -> None:
        """Make the current or next :meth:`wait` return (async-signal-safe)."""
        if self._closed:
            return  # the descriptor number may belong to another file by now
        try:
            os.write(self._w, b"!")
        except (BlockingIOError, OSError):
            pass  # already awake (pipe full) or closed

    def wait(self, timeout: float) -> None:
        """Block until woken or ``timeout`` seconds pass; consume pending wakes."""
        select.select([self._r], [], [], max(timeout, 0.0))
        try:
            while os.read(self._r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        """Release the pipe; later wakes are ignored."""
        self._closed = True
        os.close(self._r)
        os.close(self._w)
