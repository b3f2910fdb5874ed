"""One exception type for problems the user can fix; the CLI prints it as one line."""

from __future__ import annotations

import errno
import os
from pathlib import Path

# Why a write fails that the user can fix: a full disk or quota, a read-only or forbidden folder, a disk error.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO})


class UserError(Exception):
    """Bad input or configuration: printed as a single line, exit code 2."""

    exit_code = 2


def write_fix(code: int | None) -> str:
    """What to do about a failed write, by its errno."""
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        what = "free some space there (or choose another folder)"
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM):
        what = "make the folder writable (or choose another folder)"
    else:
        what = "check the disk (or choose another folder)"
    return f"{what}, then run the command again"


def reason(exc: OSError) -> str:
    """The operating system's short reason (h5py's messages span several lines)."""
    return os.strerror(exc.errno) if exc.errno else str(exc).splitlines()[0]


class WriteError(UserError):
    """A file could not be written (disk full, read-only folder, ...); nothing is left
    under its name. The message names the file, the reason and the fix."""

    def __init__(self, path: str | Path, exc: OSError, then: str | None = None) -> None:
        self.path, self.errno = Path(path), exc.errno
        fix = write_fix(exc.errno)
        if then:
            fix = fix.replace("run the command again", then)
        self.reason = reason(exc)
        super().__init__(f"{self.path}: cannot write it ({self.reason}); {fix}")

    def then(self, what: str) -> WriteError:
        """The same error whose fix ends with ``what`` instead of "run the command again"."""
        return WriteError(self.path, OSError(self.errno, self.reason), then=what)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C that stopped a command after some of its work was saved: the message says
    what was kept and how to continue (exit 130, one line)."""
