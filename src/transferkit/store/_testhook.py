"""A test hook that freezes an extraction at a named point, so a test can SIGKILL it exactly there.

``TRANSFERKIT_TEST_STOP_AT=commit:2`` makes the process send itself SIGSTOP the second time it reaches
the point named ``commit``; the test sees it stopped (state ``T`` in /proc) and kills it. The hook
never changes what is written: it only pauses. Points, in the order a run reaches them:

  create    working file written under its temporary name, not yet renamed into place
  batch     a batch of rows added to the in-memory buffer (not yet written)
  data      a commit's rows written and flushed, its progress record not yet written
  commit    a commit's progress record written and flushed
  finalize  the finished file written under its temporary name, not yet renamed into place
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "TRANSFERKIT_TEST_STOP_AT"
_seen: Counter = Counter()


def checkpoint(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    _seen[name] += 1
    point, _, nth = spec.partition(":")
    if point == name and _seen[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGSTOP)
