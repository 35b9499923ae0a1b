"""SocketRecord.option_source mappings are shared per distinct content (model.with_sources):
the same values, in the same key order, as the per-record dicts updated in place before."""

from __future__ import annotations

import sockscope.model as M
from sockscope.model import with_sources


def updated(prior: dict[str, str] | None, reuse: str | None, v6only: str | None = None) -> dict[str, str]:
    """What the collectors did before: a dict per record, updated in place."""
    d = dict(prior or {})
    if reuse is not None:
        d["reuseaddr"] = reuse
        d["reuseport"] = reuse
    if v6only is not None:
        d["v6only"] = v6only
    return d


def test_same_content_and_key_order_as_updating_a_dict():
    words = (None, "kernel", "read", "remembered", "diag")
    priors: list[dict[str, str] | None] = [None, {"v6only": "diag"}, {"reuseaddr": "read", "reuseport": "read"},
                                          {"reuseaddr": "read", "reuseport": "read", "v6only": "read"}]
    for prior in priors:
        for reuse in words:
            for v6 in words:
                got = with_sources(prior, reuse, v6)
                want = updated(prior, reuse, v6)
                assert list(got.items()) == list(want.items()), (prior, reuse, v6)


def test_one_mapping_per_content_and_the_prior_never_changed():
    prior = {"v6only": "diag"}
    a = with_sources(prior, "kernel")
    assert prior == {"v6only": "diag"}  # a caller's own dict is left as it was
    assert with_sources(dict(prior), "kernel") is a  # equal content, shared
    step = with_sources(None, None, "diag")
    assert with_sources(step, "kernel") is a  # from a shared prior: the remembered step
    assert with_sources(None, "kernel") is with_sources(None, "kernel")
    assert with_sources(None, "kernel") is not a


def test_bounded_beyond_which_mappings_are_made_per_call(monkeypatch):
    monkeypatch.setattr(M, "_SHARED_SOURCES", {})
    monkeypatch.setattr(M, "_SHARED_IDS", set())
    monkeypatch.setattr(M, "_SOURCE_STEPS", {})
    monkeypatch.setattr(M, "MAX_SHARED_SOURCES", 2)
    made = [with_sources(None, f"source{i}") for i in range(6)]
    assert [m["reuseaddr"] for m in made] == [f"source{i}" for i in range(6)]
    assert len(M._SHARED_SOURCES) == 2 and len(M._SOURCE_STEPS) <= 8
    assert with_sources(None, "source5") is not made[5]  # not shared, still right
    assert with_sources(None, "source5") == made[5]
