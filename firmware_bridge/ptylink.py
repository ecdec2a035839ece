"""A pseudo-terminal that stands in for the UART cable between us and the flight controller.

The reporter opens :attr:`VirtualSerialPair.url`, a symlink to the pty's
device (as udev's ``/dev/serial/by-id`` links are), through pyserial like any
serial port; the other end, :attr:`VirtualSerialPair.fc_port`, is what the
flight controller would see. :meth:`unplug` closes the pty so the device
vanishes; :meth:`replug` creates a new pty behind the same path, which is what
a USB adapter does when the cable wiggles. Used by the tests, ``hbnn listen``
debugging and the runtime's demo. POSIX only.
"""
from __future__ import annotations

import errno
import os
import select
import shutil
import tempfile
import time
import tty
from typing import Optional


class MasterPort:
    """The flight-controller end: a minimal non-blocking port over the pty master."""

    def __init__(self, fd: int) -> None:
        self._fd: Optional[int] = fd

    def fileno(self) -> int:
        if self._fd is None:
            raise OSError(errno.EBADF, "pty end is closed")
        return self._fd

    def read(self, size: int = 4096) -> bytes:
        try:
            return os.read(self.fileno(), size)
        except BlockingIOError:
            return b""

    def write(self, data: bytes, timeout: float = 1.0) -> int:
        """Write ``data``; give up after ``timeout`` s if the other end stops reading. Returns bytes written."""
        view = memoryview(bytes(data))
        deadline = time.monotonic() + timeout
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            select.select([], [self.fileno()], [], left)
            try:
                view = view[os.write(self.fileno(), view):]
            except BlockingIOError:
                continue
        return len(data) - len(view)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class VirtualSerialPair:
    """A pty pair with a stable device path that survives unplug/replug."""

    def __init__(self, directory: Optional[str] = None) -> None:
        self._dir = tempfile.mkdtemp(prefix="hbnn-pty-", dir=directory)
        self.url = os.path.join(self._dir, "ttyFC")
        self.fc_port: Optional[MasterPort] = None
        self._slave: Optional[int] = None
        self.replug()

    def replug(self) -> None:
        """Create a fresh pty and point :attr:`url` at it."""
        if self.fc_port is not None:
            self.unplug()
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing: bytes pass through untouched
        os.set_blocking(master, False)
        # Holding the slave open keeps master reads from failing while no reporter is attached.
        self._slave = slave
        self.fc_port = MasterPort(master)
        tmp = self.url + ".new"
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.url)

    def unplug(self) -> None:
        """Close the pty: the reporter's reads and writes fail and the path dangles."""
        try:
            os.unlink(self.url)
        except FileNotFoundError:
            pass
        if self.fc_port is not None:
            self.fc_port.close()
            self.fc_port = None
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None

    def close(self) -> None:
        self.unplug()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "VirtualSerialPair":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
