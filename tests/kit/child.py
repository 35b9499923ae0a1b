"""Running a piece of a test in a forked child: inside a namespace, and often as another
uid or with fewer rights, which the test process itself must not take on."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .netns import setns


def become(uid: int, gid: int | None = None) -> None:
    """Drop to `uid` (and `gid`, default the same number) with no supplementary groups."""
    g = uid if gid is None else gid
    os.setgroups([])
    os.setresgid(g, g, g)
    os.setresuid(uid, uid, uid)


def in_child(netns_path: str, fn: Callable[[], Any]) -> Any:
    """fn() run in a forked child inside the namespace at `netns_path`; its result (passed
    back as its repr). A failure in the child fails the caller with it."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            setns(netns_path)
            os.write(w, repr(fn()).encode())
            code = 0
        except BaseException as exc:
            os.write(w, repr(("error", f"{type(exc).__name__}: {exc}")).encode())
        finally:
            os._exit(code)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    # Our own child's repr, read back in the namespace of the module that wrote `fn`
    # (which imports the types it returns: model classes, say).
    result = eval(data.decode(), getattr(fn, "__globals__", {}))
    assert os.waitstatus_to_exitcode(status) == 0, result
    return result
