"""Every CLI argument, fed Unicode digits and odd strings: one line on stderr, exit status
2, never a traceback, and nothing collected (bad input is refused before any work)."""

from __future__ import annotations

import pytest

import sockscope.cli as cli
from sockscope.cli import check_cmd, list_cmd, why_cmd

# Wrong for every number below: other scripts' digits, which str.isdigit(), int() or
# float() accept; signs, exponents, separators; control characters; blanks; too long.
NUMBERS = [
    "²", "٣", "１２", "𝟙", "⁰", "8080²", "-1", "+1", "1_000", "0x10", "1e3", " ", "", "nan", "inf",
    "99999999999999999999999", "\x1b[2J", "1\n2", "\x00", "8\u200b0", "a" * 300, "%", "[", "]", ":",
]  # fmt: skip
# Wrong for every interface name (dev_valid_name(): 1-15 bytes, no '/', ':' or blank).
NAMES = ["", " ", "a/b", "a:b", "a b", "\x1b[2J", "\n", "\x00", "x" * 16, "é" * 8, "\t", "."]
# Wrong for every ADDR:PORT.
ENDPOINTS = NUMBERS[:12] + ["[::1", "::1:80", "1.2.3:80", "[::1]80", "[::1]:", "[fe80::1%]:1", "[::1]%:1",
                            "localhost:80", "127.0.0.1:80:80", "[::1]:8080²", "[²::1]:80", "\x1b]0;x\x07:80"]

# argv templates: {} is replaced by each value of the list beside it.
TEMPLATES = [
    (["list", "-p", "{}"], NUMBERS + ["65536"]),
    (["list", "--port={}"], NUMBERS),
    (["list", "--pid", "{}"], NUMBERS + ["0", "4194305"]),
    (["list", "-s", "{}"], NUMBERS + [",", "bogus"]),
    (["list", "--collector", "{}"], NUMBERS),
    (["check", "{}", "127.0.0.1:80"], NUMBERS + ["sctp"]),
    (["check", "tcp", "{}"], ENDPOINTS),
    (["check", "tcp", "127.0.0.1:{}"], NUMBERS + ["65536"]),
    (["check", "udp", "[::1]:{}"], NUMBERS + ["65536"]),
    (["check", "tcp", "[fe80::1%{}]:80"], NAMES),
    (["check", "tcp", "[::1]%{}:80"], NAMES),
    (["check", "tcp", "127.0.0.1:80", "--uid", "{}"], NUMBERS + ["4294967295", "4294967296"]),
    (["check", "tcp", "127.0.0.1:80", "--device", "{}"], NAMES),
    (["why", "{}"], NUMBERS + ["0", "65536"]),
    (["why", "127.0.0.1:{}"], NUMBERS + ["0", "65536"]),
    (["why", "{}"], ENDPOINTS),
    (["tui", "--interval", "{}"], NUMBERS + ["0", "0.01", "3601"]),
    (["tui", "--collector", "{}"], NUMBERS),
    (["{}"], NUMBERS),
]


def _accepts(args: list[str]) -> bool:
    raise AssertionError(f"bad input was accepted and collection started: {args!r}")


@pytest.fixture(autouse=True)
def no_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    for mod in (list_cmd, check_cmd, why_cmd):
        monkeypatch.setattr(mod, "take_snapshot", lambda args, *a, **k: _accepts(vars(args)))
    import sockscope.collectors.snapshotter as snapshotter

    monkeypatch.setattr(snapshotter, "Collector", lambda *a, **k: _accepts([a, k]))


CASES = [[part.replace("{}", odd) for part in template] for template, values in TEMPLATES for odd in values]


@pytest.mark.parametrize("argv", CASES, ids=lambda a: repr(a)[:60])
def test_bad_argument_is_one_line_and_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        status = cli.main(argv)
    except SystemExit as exc:  # argparse
        status = exc.code
    out, err = capsys.readouterr()
    assert status == 2, (argv, out, err)
    assert err.count("\n") == 1 and err.endswith("\n"), (argv, err)
    assert "Traceback" not in err
    assert not any(ord(c) < 32 and c != "\n" or c == "\x7f" for c in err), (argv, err)
    assert out == ""


@pytest.mark.parametrize(
    "argv, message",
    [
        (["check", "tcp", "127.0.0.1:80", "--uid", "²"], "bad uid '²'"),
        (["check", "tcp", "127.0.0.1:²"], "'²' is not a port number"),
        (["why", "²"], "bad port '²'"),
        (["list", "--uid" if False else "-p", "٣"], "bad port '٣'"),
        (["check", "tcp", "127.0.0.1:80", "--uid", "4294967295"], "out of range 0-4294967294"),
        (["list", "-s", ""], "at least one state"),
        (["list", "-s", ","], "at least one state"),
        (["tui", "--interval", "１"], "bad interval"),
    ],
)
def test_the_reported_cases(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        status = cli.main(argv)
    except SystemExit as exc:
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2 and message in err and err.count("\n") == 1, err
