"""Socket-holder processes: a forked child that enters a test namespace, drops to a
uid, and makes real sockets on command, so tests can ask the kernel what really
happens (the kernel is the oracle).

    with Holder(ns, uid=1001) as h:
        s = h.socket("tcp", 4, reuseaddr=True)
        assert h.bind(s, "127.0.0.1", 8080) is None      # None = success, else errno name
        h.listen(s)

Commands go over a pipe as JSON lines; every call is bounded by a timeout and the
child is killed on exit.
"""

from __future__ import annotations

import errno as errno_mod
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from typing import Any

from .netns import Netns, setns

SO_REUSEPORT = getattr(socket, "SO_REUSEPORT", 15)
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


def _family(fam: int) -> int:
    return socket.AF_INET if fam == 4 else socket.AF_INET6


def _sockaddr(fam: int, addr: str, port: int, scope: int = 0) -> tuple[Any, ...]:
    return (addr, port) if fam == 4 else (addr, port, 0, scope)


class _Server:
    """Runs in the child: executes commands on its own sockets."""

    def __init__(self) -> None:
        self.socks: dict[int, socket.socket] = {}
        self.next_id = 1

    def _add(self, s: socket.socket) -> int:
        sid = self.next_id
        self.next_id += 1
        self.socks[sid] = s
        return sid

    def cmd_socket(self, proto: str, family: int, reuseaddr: bool = False, reuseport: bool = False,
                   v6only: bool | None = None, device: str | None = None, nonblock: bool = False) -> int:
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        s = socket.socket(_family(family), kind)
        if reuseaddr:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            s.setsockopt(socket.SOL_SOCKET, SO_REUSEPORT, 1)
        if v6only is not None and family == 6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
        if device:
            s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, device.encode())
        if nonblock:
            s.setblocking(False)
        return self._add(s)

    def cmd_bind(self, sid: int, addr: str, port: int, scope: int = 0) -> int:
        s = self.socks[sid]
        s.bind(_sockaddr(4 if s.family == socket.AF_INET else 6, addr, port, scope))
        return s.getsockname()[1]

    def cmd_listen(self, sid: int, backlog: int = 128) -> None:
        self.socks[sid].listen(backlog)

    def cmd_connect(self, sid: int, addr: str, port: int) -> list[Any]:
        s = self.socks[sid]
        fam = 4 if s.family == socket.AF_INET else 6
        if s.type == socket.SOCK_STREAM and not s.getblocking():
            err = s.connect_ex(_sockaddr(fam, addr, port))
            if err not in (0, errno_mod.EINPROGRESS):
                raise OSError(err, os.strerror(err))
        else:
            s.connect(_sockaddr(fam, addr, port))
        return list(s.getsockname()[:2])

    def cmd_accept(self, sid: int, timeout: float = 5) -> int:
        s = self.socks[sid]
        s.settimeout(timeout)
        conn, _ = s.accept()
        conn.settimeout(None)
        return self._add(conn)

    def cmd_accept_as(self, sid: int, fsuid: int, timeout: float = 5) -> int:
        """accept() with the fsuid set to `fsuid` (root holders only): the accepted socket
        then belongs to that uid, as when a listener is passed to another user's process."""
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        old = libc.setfsuid(fsuid)
        try:
            return self.cmd_accept(sid, timeout)
        finally:
            libc.setfsuid(old)

    def cmd_close(self, sid: int) -> None:
        self.socks.pop(sid).close()

    def cmd_linger0(self, sid: int) -> None:
        """SO_LINGER {1, 0}: close() sends RST and leaves no TIME_WAIT."""
        self.socks[sid].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def cmd_shutdown(self, sid: int, how: int = socket.SHUT_WR) -> None:
        self.socks[sid].shutdown(how)

    def cmd_send(self, sid: int, data: str) -> int:
        return self.socks[sid].send(data.encode())

    def cmd_setsockopt(self, sid: int, level: int, opt: int, value: int) -> None:
        self.socks[sid].setsockopt(level, opt, value)

    def cmd_fileno(self, sid: int) -> int:
        return self.socks[sid].fileno()

    def cmd_inode(self, sid: int) -> int:
        return os.stat(f"/proc/self/fd/{self.socks[sid].fileno()}").st_ino

    def cmd_getsockname(self, sid: int) -> list[Any]:
        return list(self.socks[sid].getsockname()[:2])

    def cmd_fork_share(self) -> int:
        """Fork a sibling that keeps copies of every socket (a socket shared by two
        processes); it idles until this holder exits. Returns its pid."""
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            try:
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline and os.getppid() == parent:
                    time.sleep(0.2)
            finally:
                os._exit(0)
        return pid

    def cmd_cookie(self, sid: int) -> int:
        return int.from_bytes(self.socks[sid].getsockopt(socket.SOL_SOCKET, 57, 8), "little")  # SO_COOKIE

    def cmd_ping(self) -> int:
        return os.getpid()


def _child_main(rfd: int, wfd: int, netns_path: str | None, uid: int, gid: int) -> None:
    if netns_path:
        setns(netns_path)
    if gid or uid:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    server = _Server()
    rfile = os.fdopen(rfd, "r", buffering=1)
    wfile = os.fdopen(wfd, "w", buffering=1)
    for line in rfile:
        req = json.loads(line)
        if req["op"] == "exit":
            break
        try:
            result = getattr(server, "cmd_" + req["op"])(*req.get("args", []), **req.get("kwargs", {}))
            reply: dict[str, Any] = {"ok": True, "result": result}
        except OSError as exc:
            name = errno_mod.errorcode.get(exc.errno or 0, str(exc.errno))
            reply = {"ok": False, "errno": name, "msg": str(exc)}
        except Exception as exc:  # report, never hang the parent
            reply = {"ok": False, "errno": None, "msg": f"{type(exc).__name__}: {exc}"}
        wfile.write(json.dumps(reply) + "\n")


class HolderError(RuntimeError):
    def __init__(self, errno: str | None, msg: str) -> None:
        super().__init__(f"{errno}: {msg}")
        self.errno = errno


class Holder:
    """A child process in `netns` running as `uid` that creates sockets on command."""

    def __init__(self, netns: Netns | str | None = None, uid: int = 0, gid: int | None = None,
                 timeout: float = 10.0) -> None:
        if isinstance(netns, Netns):
            path: str | None = netns.path
        elif isinstance(netns, str):
            path = netns if netns.startswith("/") else f"/run/netns/{netns}"
        else:
            path = None
        self.uid = uid
        self.timeout = timeout
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(to_child_w)
                os.close(from_child_r)
                _child_main(to_child_r, from_child_w, path, uid, uid if gid is None else gid)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(to_child_r)
        os.close(from_child_w)
        self.pid = pid
        self._w = os.fdopen(to_child_w, "w", buffering=1)
        self._rfd = from_child_r
        self._buf = b""
        self.call("ping")

    def _readline(self) -> bytes:
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._rfd], [], [], left)[0]:
                raise TimeoutError(f"holder {self.pid} did not answer in {self.timeout}s")
            chunk = os.read(self._rfd, 65536)
            if not chunk:
                raise RuntimeError(f"holder {self.pid} died")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        self._w.write(json.dumps({"op": op, "args": args, "kwargs": kwargs}) + "\n")
        reply = json.loads(self._readline())
        if not reply["ok"]:
            raise HolderError(reply["errno"], reply["msg"])
        return reply["result"]

    def attempt(self, op: str, *args: Any, **kwargs: Any) -> str | None:
        """Run `op`; return None on success or the errno name (e.g. 'EADDRINUSE')."""
        try:
            self.call(op, *args, **kwargs)
            return None
        except HolderError as exc:
            if exc.errno is None:
                raise
            return exc.errno

    # Convenience wrappers
    def socket(self, proto: str, family: int = 4, **opts: Any) -> int:
        return self.call("socket", proto, family, **opts)

    def bind(self, sid: int, addr: str, port: int) -> str | None:
        return self.attempt("bind", sid, addr, port)

    def listen(self, sid: int, backlog: int = 128) -> str | None:
        return self.attempt("listen", sid, backlog)

    def connect(self, sid: int, addr: str, port: int) -> list[Any]:
        return self.call("connect", sid, addr, port)

    def accept(self, sid: int) -> int:
        return self.call("accept", sid)

    def close(self, sid: int) -> None:
        self.call("close", sid)

    def shutdown(self, sid: int) -> None:
        self.call("shutdown", sid)

    def inode(self, sid: int) -> int:
        return self.call("inode", sid)

    def fileno(self, sid: int) -> int:
        return self.call("fileno", sid)

    def cookie(self, sid: int) -> int:
        return self.call("cookie", sid)

    def stop(self) -> None:
        if self.pid:
            try:
                self._w.write(json.dumps({"op": "exit"}) + "\n")
                self._w.flush()
            except OSError:
                pass
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                done, _ = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    break
                time.sleep(0.01)
            else:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
            self.pid = 0
            for f in (self._w,):
                try:
                    f.close()
                except OSError:
                    pass
            try:
                os.close(self._rfd)
            except OSError:
                pass

    def __enter__(self) -> "Holder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
