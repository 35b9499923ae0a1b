"""User text -> a bind Candidate: the one parser behind `sockscope check` and the TUI's
bind-check form, so that both read `[fe80::1%eth0]:22`, a uid or a V6ONLY choice alike.

Scope, as inet6_bind() does it (kernel-bind-rules §1):
- for an address that needs a scope id (link-local fe80::/10, interface- and link-local
  multicast), `%scope` names the interface the socket is bound to; it replaces a device set
  with SO_BINDTODEVICE ("override any existing binding"), and without either bind() fails
  with EINVAL;
- for every other address the kernel ignores sin6_scope_id: `[::1%lo]:2222` is a plain
  bind of ::1 with no device, and a note says so.
A scope is an interface name or its index (`%2`), as getaddrinfo() accepts both.
`[::1]%lo:2222` (the way `sockscope list` and ss write a bound device) means SO_BINDTODEVICE.

V6ONLY is three-valued: True, False, or None = the namespace's net.ipv6.bindv6only, which
the engine applies (Candidate.v6only=None).
"""

from __future__ import annotations

from collections.abc import Mapping

from sockscope.userinput import InputError, parse_ifname, parse_uid

from .addresses import EndpointError, needs_scope_id, split_endpoint
from .types import Candidate

__all__ = ["CandidateInputError", "parse_candidate", "resolve_scope"]


class CandidateInputError(ValueError):
    """A bind candidate the user described that cannot be asked about; str() is one sentence."""


def resolve_scope(scope: str, interfaces: Mapping[int, str] | None) -> str:
    """An interface name, or the name of index `scope` (digits) in `interfaces` (ifindex -> name).
    With `interfaces` None (not read yet) the scope is returned as it is."""
    if scope.isascii() and scope.isdigit() and interfaces is not None:
        index = int(scope)
        name = interfaces.get(index)
        if name is None:
            known = ", ".join(f"{i}={n}" for i, n in sorted(interfaces.items())) or "none"
            raise CandidateInputError(f"scope %{scope}: no interface with index {index} in this network namespace ({known})")
        return name
    return scope


def parse_candidate(
    proto: str,
    endpoint: str,
    *,
    uid: int | str,
    reuseaddr: bool = False,
    reuseport: bool = False,
    v6only: bool | None = None,
    device: str | None = None,
    listen: bool = True,
    interfaces: Mapping[int, str] | None = None,
) -> tuple[Candidate, list[str]]:
    """(candidate, notes) from what the user typed; raises CandidateInputError.

    `uid` is a number or the text of one; `device` is SO_BINDTODEVICE (None = none);
    `interfaces` (HostFacts.interfaces) resolves numeric scopes. `notes` say what the
    kernel will do with input it ignores (a scope on an address that needs none).
    """
    proto_l = proto.strip().lower()
    if proto_l not in ("tcp", "udp"):
        raise CandidateInputError(f"protocol must be tcp or udp, not {proto!r}")
    try:
        ep = split_endpoint(endpoint)
        uid_n = parse_uid(str(uid))  # numbers handed in get the same bounds as text
    except (EndpointError, InputError) as exc:
        raise CandidateInputError(str(exc)) from None
    notes: list[str] = []
    try:
        dev = parse_ifname(device) if device is not None else None
    except InputError as exc:
        raise CandidateInputError(str(exc)) from None
    if dev is not None and ep.device is not None and dev != ep.device:
        raise CandidateInputError(f"the address names device {ep.device!r} but the device given is {dev!r}")
    dev = dev or ep.device
    scope = ep.scope
    if scope is not None and scope.isascii() and scope.isdigit() and int(scope) == 0:
        scope = None  # sin6_scope_id 0 is "no scope"
    if scope is not None:
        if needs_scope_id(ep.addr):
            scope_dev = resolve_scope(scope, interfaces)
            if dev is not None and dev != scope_dev:
                notes.append(
                    f"bind() binds the socket to {scope_dev}, the scope of {ep.addr}: for a link-local address "
                    f"the scope replaces the device set with SO_BINDTODEVICE ({dev})"
                )
            dev = scope_dev
        else:
            bound = f"on {dev} (SO_BINDTODEVICE)" if dev else "with no device"
            notes.append(
                f"the scope %{scope} is ignored: bind() uses a scope only for link-local addresses "
                f"(fe80::/10, ff01::/16, ff02::/16), so {ep.addr} is bound {bound}; "
                "SO_BINDTODEVICE is --device (or ADDR%DEV:PORT outside the brackets, as ss writes it)"
            )
    if v6only is not None and ep.family == 4:
        raise CandidateInputError("IPV6_V6ONLY (--v6only/--no-v6only) applies to IPv6 addresses only")
    cand = Candidate(
        proto="tcp" if proto_l == "tcp" else "udp",
        family=ep.family,
        addr=ep.addr,
        port=ep.port,
        reuseaddr=reuseaddr,
        reuseport=reuseport,
        v6only=v6only,
        device=dev,
        uid=uid_n,
        listen=listen if proto_l == "tcp" else False,
    )
    return cand, notes
