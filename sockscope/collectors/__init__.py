"""Collectors: read a network namespace's TCP/UDP sockets, their owners and options, and
the host facts, into a `sockscope.model.Snapshot`. No UI code here, no framework.

Modules (one job each):
  netlink.py     a raw NETLINK_SOCK_DIAG socket and the dump loop (multipart, NLMSG_ERROR,
                 NLM_F_DUMP_INTR retry, ENOBUFS)
  inet_diag.py   the struct-based decoder of inet_diag_msg and its attributes (pure, bytes in)
  sockdiag.py    the sock_diag collector: TCP and UDP, IPv4 and IPv6, every state
  procfs.py      the fallback: /proc/net/{tcp,udp}[6], parsed by hand, same records, options unknown
  owners.py      inode -> owners by scanning /proc/*/fd, cached across refreshes
  options.py     SO_REUSEADDR / SO_REUSEPORT / IPV6_V6ONLY / SO_BINDTODEVICE via pidfd_getfd,
                 remembered by cookie
  hostfacts.py   sysctls, interfaces and local addresses of the namespace
  netns.py       entering a named network namespace for the calling thread
  snapshotter.py `Collector`: ties the above together; keeps caches for warm refreshes
  namespaces.py  every network namespace of the host (/proc/*/ns/net, /run/netns, nsfs
                 mounts), identified by inode and named (ip netns, container, process)
  containers.py  container names: cgroup path -> Docker, containerd/CRI, Podman state on disk
  multi.py       `MultiCollector`: every namespace in one Snapshot (records carry `netns`)
  portmap.py     docker-proxy style port mappings linked to the listener they forward to

Public interface used by the CLI, the predictor's tests and the TUI:

    from sockscope.collectors.snapshotter import Collector
    with Collector(netns="NAME" or None, method="auto"|"sockdiag"|"procfs") as c:
        snap = c.snapshot()                       # every state
        snap = c.snapshot(states={"LISTEN", "UNCONN"})  # cheap: listeners only

    from sockscope.collectors.multi import MultiCollector
    with MultiCollector() as m:                   # every namespace of the host
        snap = m.snapshot()                       # records carry .netns; snap.namespaces
        one = snap.for_netns(inode)               # one namespace, with its own facts
"""
