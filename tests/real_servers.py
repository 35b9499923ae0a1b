"""Real servers in a private namespace, for the predictor's reload and restart questions.

nginx (2 workers, `listen ... reuseport`, workers as nobody), haproxy in front of it, redis
as another uid, and dnsmasq (UDP and TCP, IPv4 and IPv6 wildcards), each started inside the
test namespace with its configuration in a temporary directory, plus a small bounded client
that gives them traffic on loopback. Every process started here is stopped by its pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from kit import Netns

NGINX_PORT = 8080
HAPROXY_PORT = 8081
REDIS_PORT = 6379
DNS_PORT = 5353
REDIS_UID = 1002
NOBODY = 65534

PROGRAMS = {"nginx": "/usr/sbin/nginx", "haproxy": "/usr/sbin/haproxy", "redis": "/usr/bin/redis-server", "dnsmasq": "/usr/sbin/dnsmasq"}


def missing_programs() -> list[str]:
    return [name for name, path in PROGRAMS.items() if not os.access(path, os.X_OK)]


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]

    def send(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5) -> None:
        self.send(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.send(signal.SIGKILL)
            self.proc.wait(5)


@dataclass
class Servers:
    ns: Netns
    tmp: str
    running: dict[str, Server] = field(default_factory=dict)
    clients: list[socket.socket] = field(default_factory=list)

    # -- starting -----------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], uid: int | None = None) -> None:
        cmd = ["ip", "netns", "exec", self.ns.name]
        if uid is not None:
            cmd += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        log = open(os.path.join(self.tmp, f"{name}.out"), "wb")
        # ip netns exec execs the program in place: the Popen pid is the server's own pid.
        self.running[name] = Server(name, subprocess.Popen(cmd + argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))

    def start_all(self) -> None:
        t = self.tmp
        os.chmod(t, 0o755)
        with open(f"{t}/nginx.conf", "w") as f:
            f.write(f"""
worker_processes 2;
daemon off;
master_process on;
user nobody nogroup;
pid {t}/nginx.pid;
error_log {t}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {t}/body; proxy_temp_path {t}/proxy; fastcgi_temp_path {t}/fcgi;
    uwsgi_temp_path {t}/uwsgi; scgi_temp_path {t}/scgi;
    keepalive_timeout 120;
    server {{ listen 0.0.0.0:{NGINX_PORT} reuseport; location / {{ return 200 "ok\\n"; }} }}
}}
""")
        with open(f"{t}/haproxy.cfg", "w") as f:
            f.write(f"""
global
    maxconn 64
defaults
    mode tcp
    timeout connect 2s
    timeout client 120s
    timeout server 120s
frontend fe
    bind 127.0.0.1:{HAPROXY_PORT}
    default_backend be
backend be
    server n1 127.0.0.1:{NGINX_PORT}
""")
        redis_dir = f"{t}/redis"
        os.makedirs(redis_dir, exist_ok=True)
        os.chown(redis_dir, REDIS_UID, REDIS_UID)
        self._spawn("nginx", [PROGRAMS["nginx"], "-c", f"{t}/nginx.conf", "-p", t])
        self._spawn("haproxy", [PROGRAMS["haproxy"], "-db", "-f", f"{t}/haproxy.cfg"])
        self._spawn("redis", [PROGRAMS["redis"], "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--daemonize", "no", "--dir", redis_dir, "--protected-mode", "no"],
                    uid=REDIS_UID)
        self._spawn("dnsmasq", [PROGRAMS["dnsmasq"], "-k", "-C", "/dev/null", f"--port={DNS_PORT}", "--no-resolv",
                                "--no-hosts", f"--pid-file={t}/dnsmasq.pid", "--user=nobody", "--group=nogroup",
                                "--address=/sockscope.test/127.0.0.1"])
        for port in (NGINX_PORT, HAPROXY_PORT, REDIS_PORT, DNS_PORT):
            self._wait_listening(port)

    def _wait_listening(self, port: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(["ip", "netns", "exec", self.ns.name, "ss", "-Htln", f"sport = :{port}"],
                                 capture_output=True, text=True, timeout=10).stdout
            if out.strip():
                return
            for s in self.running.values():
                if s.proc.poll() is not None:
                    raise RuntimeError(f"{s.name} exited: " + open(os.path.join(self.tmp, f"{s.name}.out")).read()[-2000:])
            time.sleep(0.05)
        raise TimeoutError(f"nothing listens on port {port}")

    # -- traffic (bounded; loopback inside the namespace only) ----------------------------
    def traffic(self) -> None:
        """Requests through haproxy to nginx that the server closes (TIME_WAIT on the
        servers' ports), keep-alive connections to nginx held open (accepted by its
        workers as nobody), redis clients held connected and a few told to QUIT (redis
        closes first), and DNS queries over UDP and TCP."""
        from kit.netns import setns

        pid = os.fork()
        if pid == 0:  # the client runs in the namespace; its connections are handed back by count only
            code = 1
            try:
                setns(self.ns.path)
                code = _client_main(self.tmp)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError("traffic client failed: " + open(f"{self.tmp}/client.out").read()[-2000:])

    def stop_all(self) -> None:
        for s in list(self.running.values()):
            s.stop()
        self.running.clear()
        hold = f"{self.tmp}/client.pid"
        if os.path.exists(hold):
            with open(hold) as f:
                pid = int(f.read())
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            os.unlink(hold)

    def release_clients(self) -> None:
        """Close the held client connections (so orphans of a killed server finish closing)."""
        hold = f"{self.tmp}/client.pid"
        if os.path.exists(hold):
            with open(hold) as f:
                pid = int(f.read())
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    break
                time.sleep(0.02)
            os.unlink(hold)


def _dns_query(name: str, qid: int) -> bytes:
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack("!HH", 1, 1)


def _client_main(tmp: str) -> int:
    """Runs in a forked child inside the namespace. Makes bounded traffic, then forks a
    holder that keeps the long-lived client connections open until told to stop."""
    out = open(f"{tmp}/client.out", "w")
    held: list[socket.socket] = []

    def conn(port: int, family: int = socket.AF_INET, host: str = "127.0.0.1") -> socket.socket:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect((host, port))
        return s

    # HTTP through haproxy, Connection: close (nginx closes first: TIME_WAIT on :8080).
    for _ in range(12):
        s = conn(HAPROXY_PORT)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while s.recv(4096):
            pass
        s.close()
    # Keep-alive connections straight to nginx, held open (children of the workers, uid nobody).
    for _ in range(4):
        s = conn(NGINX_PORT)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(4096)
        held.append(s)
    # One held through haproxy too.
    s = conn(HAPROXY_PORT)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    s.recv(4096)
    held.append(s)
    # redis: QUIT makes the server close first (TIME_WAIT on :6379); others stay connected.
    for _ in range(3):
        s = conn(REDIS_PORT)
        s.sendall(b"PING\r\n")
        s.recv(64)
        s.sendall(b"QUIT\r\n")
        s.recv(64)
        s.close()
    for _ in range(3):
        s = conn(REDIS_PORT)
        s.sendall(b"PING\r\n")
        assert s.recv(64).startswith(b"+PONG")
        held.append(s)
    # DNS over UDP (IPv4 and IPv6) and TCP.
    for i, (fam, host) in enumerate([(socket.AF_INET, "127.0.0.1")] * 6 + [(socket.AF_INET6, "::1")] * 4):
        u = socket.socket(fam, socket.SOCK_DGRAM)
        u.settimeout(2)
        u.sendto(_dns_query("a.sockscope.test", i + 1), (host, DNS_PORT))
        u.recv(512)
        u.close()
    s = conn(DNS_PORT)
    q = _dns_query("b.sockscope.test", 99)
    s.sendall(struct.pack("!H", len(q)) + q)
    s.recv(512)
    held.append(s)
    print(f"traffic done; holding {len(held)} connections", file=out, flush=True)
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            time.sleep(0.2)
        os._exit(0)
    with open(f"{tmp}/client.pid", "w") as f:
        f.write(str(pid))
    for s in held:
        s.close()  # the holder keeps its copies
    return 0


def open_servers(ns: Netns) -> Servers:
    tmp = tempfile.mkdtemp(prefix="sockscope-servers-")
    return Servers(ns, tmp)


def cleanup(servers: Servers) -> None:
    servers.stop_all()
    shutil.rmtree(servers.tmp, ignore_errors=True)
