"""The worker's GX child (streams.dq): it loads GX at the worker's priority, then lowers its own."""
from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor

from streams import dq


def _niceness_before_and_after_lowering() -> tuple[int, int]:
    before = os.nice(0)
    dq._lower_priority()
    dq._lower_priority()          # once only
    return before, os.nice(0)


def test_the_gx_child_lowers_its_priority_once_after_start_up():
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"),
                             initializer=dq._init_child, initargs=(os.getpid(), 7)) as child:
        before, after = child.submit(_niceness_before_and_after_lowering).result(timeout=60)
    mine = os.nice(0)
    assert before == mine and after == min(mine + 7, 19)
