"""Named fault-injection points: tests kill, interrupt or fill the disk at an exact place, not a time.

The project calls :func:`fault_point` where it writes: every atomic write (``before_rename``
and ``after_rename``, context ``file``: the final file's name), the end of a training epoch
after its resume state (``epoch_end``: ``fold``, ``epoch``), the end of a fold after its
record (``fold_end``: ``fold``), and feature extraction: in the main process after each
file (``extracted``: ``n``, the files done) and in the worker that reads a file, before it
reads it (``mfcc_task``: ``index``, the file's place in the list; in the worker processes when
``--jobs`` is above 1, so a signal it sends reaches the main process wherever it is). Nothing happens unless ``TIMNET_FAULT`` is set when the process
starts; then the first matching hit (or the ``@N``-th) fires its action once::

    TIMNET_FAULT="POINT[:KEY=VALUE...][@N]:ACTION"     several: separated by ';'

    TIMNET_FAULT="epoch_end:fold=2:epoch=1:SIGKILL"           # killed after fold 2's epoch 1 is saved
    TIMNET_FAULT="before_rename:file=*.hdf5@3:ENOSPC"         # the third weights write finds the disk full
    TIMNET_FAULT="after_rename:file=metrics.json:SIGINT"      # Ctrl-C once the report is written
    TIMNET_FAULT="extracted:n=5:SIGKILL"                      # extraction killed after 5 files
    TIMNET_FAULT="mfcc_task:index=7:PGSIGINT"                 # Ctrl-C while a worker starts file 7

``KEY=VALUE`` matches a context value as text (shell-style wildcards allowed). Actions:
``SIGKILL``, ``SIGINT``, ``SIGTERM`` (sent to this process), ``PGSIGINT`` (SIGINT to the
whole process group, as a terminal's Ctrl-C: the worker processes get it too), ``SIGSTOP`` (the process
pauses there until a test has changed the world, say remounted the disk read-only, and
sends ``SIGCONT``), ``ENOSPC``, ``EROFS``, ``EIO``
(an :class:`OSError` with that errno, as the operating system raises it), ``RAISE`` (a
:class:`RuntimeError`, an internal error). ``TIMNET_FAULT_TRACE=FILE`` appends one line per
point reached (``POINT KEY=VALUE ...``), so a test can list the points of a command and pick
some with a seed. Unset, a fault point costs one function call and a test of ``None``.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import signal
from dataclasses import dataclass, field
from typing import Any

ENV = "TIMNET_FAULT"
TRACE_ENV = "TIMNET_FAULT_TRACE"
SIGNAL_ACTIONS = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM,
                  "SIGSTOP": signal.SIGSTOP}
GROUP_ACTIONS = {"PGSIGINT": signal.SIGINT}  # to the whole process group, as a terminal's Ctrl-C
ERRNO_ACTIONS = {"ENOSPC": errno.ENOSPC, "EROFS": errno.EROFS, "EIO": errno.EIO}
ACTIONS = (*SIGNAL_ACTIONS, *GROUP_ACTIONS, *ERRNO_ACTIONS, "RAISE")


@dataclass
class Fault:
    """One planned fault: where (point and context), which hit, and what happens."""

    point: str
    action: str
    match: dict[str, str] = field(default_factory=dict)
    nth: int = 1
    hits: int = 0

    def matches(self, point: str, context: dict[str, Any]) -> bool:
        if point != self.point:
            return False
        return all(key in context and fnmatch.fnmatchcase(str(context[key]), pattern)
                   for key, pattern in self.match.items())


def parse(spec: str) -> list[Fault]:
    """``TIMNET_FAULT``'s value as faults; a malformed value is an error (a test's mistake)."""
    faults = []
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        fields = part.split(":")
        if len(fields) < 2 or fields[-1] not in ACTIONS:
            raise ValueError(f"{ENV}={spec!r}: expected POINT[:KEY=VALUE...][@N]:ACTION, ACTION one of "
                             f"{', '.join(ACTIONS)}")
        point, *conditions, action = fields
        nth = 1
        if conditions and "@" in conditions[-1]:
            conditions[-1], count = conditions[-1].rsplit("@", 1)
            nth = int(count)
        elif "@" in point:
            point, count = point.rsplit("@", 1)
            nth = int(count)
        match = dict(c.split("=", 1) for c in conditions if c)
        faults.append(Fault(point, action, match, nth))
    return faults


_FAULTS: list[Fault] | None = parse(os.environ[ENV]) if os.environ.get(ENV) else None
_TRACE: str | None = os.environ.get(TRACE_ENV) or None


def fault_point(point: str, **context: Any) -> None:
    """A place where a fault can be injected (see the module docstring); a no-op unless planned."""
    if _FAULTS is None and _TRACE is None:
        return
    if _TRACE is not None:
        with open(_TRACE, "a") as trace:
            trace.write(" ".join([point, *(f"{k}={v}" for k, v in context.items())]) + "\n")
    for fault in _FAULTS or ():
        if fault.hits >= fault.nth or not fault.matches(point, context):
            continue
        fault.hits += 1
        if fault.hits == fault.nth:
            _fire(fault, point, context)


def _fire(fault: Fault, point: str, context: dict[str, Any]) -> None:
    if fault.action in SIGNAL_ACTIONS:
        os.kill(os.getpid(), SIGNAL_ACTIONS[fault.action])
        return
    if fault.action in GROUP_ACTIONS:
        os.killpg(os.getpgrp(), GROUP_ACTIONS[fault.action])
        return
    if fault.action in ERRNO_ACTIONS:
        code = ERRNO_ACTIONS[fault.action]
        raise OSError(code, os.strerror(code), context.get("path", context.get("file")))
    raise RuntimeError(f"injected fault at {point} {context}")
