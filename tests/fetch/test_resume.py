"""Interrupted downloads resume with Range + If-Range, and every way a server can refuse is handled."""

from __future__ import annotations

from tests.fetch.conftest import DATA, Harness
from tests.support.httpfault import Exchange, FaultServer

CUT = 400_000


def test_reset_mid_body_is_resumed(h: Harness, srv: FaultServer) -> None:
    def fn(ex: Exchange) -> None:
        ex.serve(DATA, cut_after=CUT if ex.index == 0 else None, reset=True)

    path = h.fetch(h.item(srv.add("/f", fn)))

    assert path.read_bytes() == DATA
    first, second = srv.requests("/f")
    assert "range" not in first.headers
    start = int(second.headers["range"].removeprefix("bytes=").removesuffix("-"))
    assert 0 < start <= CUT
    assert second.headers["if-range"] == '"v1"'
    assert len(h.sleeps) == 1
    assert h.parts() == []


def test_part_left_by_a_killed_run_is_resumed_by_the_next(h: Harness, srv: FaultServer) -> None:
    def fn(ex: Exchange) -> None:
        ex.serve(DATA, cut_after=CUT if ex.index == 0 else None)

    url = srv.add("/f", fn)
    h.fail(h.item(url, retries=0))
    assert not h.dest.exists()
    assert sorted(p.suffix for p in h.parts()) == [".json", ".part"]

    assert h.fetch(h.item(url)).read_bytes() == DATA
    assert srv.requests("/f")[1].headers["range"].startswith("bytes=")


def test_resume_with_last_modified_when_there_is_no_etag(h: Harness, srv: FaultServer) -> None:
    stamp = "Wed, 21 Oct 2015 07:28:00 GMT"

    def fn(ex: Exchange) -> None:
        ex.serve(DATA, etag=None, last_modified=stamp, cut_after=CUT if ex.index == 0 else None)

    assert h.fetch(h.item(srv.add("/f", fn))).read_bytes() == DATA
    assert srv.requests("/f")[1].headers["if-range"] == stamp


def test_200_answered_to_a_range_request_starts_over(h: Harness, srv: FaultServer) -> None:
    def fn(ex: Exchange) -> None:
        ex.serve(DATA, ranges=False, cut_after=CUT if ex.index == 0 else None)

    assert h.fetch(h.item(srv.add("/f", fn))).read_bytes() == DATA
    assert "range" in srv.requests("/f")[1].headers


def test_wrong_content_range_start_starts_over(h: Harness, srv: FaultServer) -> None:
    def fn(ex: Exchange) -> None:
        if ex.index == 0:
            ex.serve(DATA, cut_after=CUT)
        elif ex.range_start is not None:
            # claims to continue, but from 10 bytes earlier than asked: appending would corrupt the file
            start = ex.range_start - 10
            ex.reply(
                206,
                DATA[start:],
                {"ETag": '"v1"', "Content-Range": f"bytes {start}-{len(DATA) - 1}/{len(DATA)}"},
            )
        else:
            ex.serve(DATA)

    assert h.fetch(h.item(srv.add("/f", fn))).read_bytes() == DATA
    third = srv.requests("/f")[2]
    assert "range" not in third.headers
    assert len(h.sleeps) == 1, "a refused resume restarts at once, without another wait"


def test_416_to_a_range_request_starts_over(h: Harness, srv: FaultServer) -> None:
    def fn(ex: Exchange) -> None:
        if ex.index == 0:
            ex.serve(DATA, cut_after=CUT)
        elif ex.range_start is not None:
            ex.reply(416, b"", {"Content-Range": f"bytes */{len(DATA)}"})
        else:
            ex.serve(DATA)

    assert h.fetch(h.item(srv.add("/f", fn))).read_bytes() == DATA
    assert [("range" in s.headers) for s in srv.requests("/f")] == [False, True, False]


def test_etag_changed_between_attempts_starts_over(h: Harness, srv: FaultServer) -> None:
    def fn(ex: Exchange) -> None:
        ex.serve(DATA, etag='"v1"' if ex.index == 0 else '"v2"', cut_after=CUT if ex.index == 0 else None)

    assert h.fetch(h.item(srv.add("/f", fn))).read_bytes() == DATA
    second = srv.requests("/f")[1]
    assert second.headers["if-range"] == '"v1"'  # the server saw it no longer matched and sent 200


def test_etag_changed_under_a_server_that_ignores_if_range_starts_over(h: Harness, srv: FaultServer) -> None:
    def fn(ex: Exchange) -> None:
        if ex.index == 0:
            ex.serve(DATA, cut_after=CUT)
        elif ex.range_start is not None:
            start = ex.range_start
            ex.reply(
                206,
                DATA[start:],
                {"ETag": '"v2"', "Content-Range": f"bytes {start}-{len(DATA) - 1}/{len(DATA)}"},
            )
        else:
            ex.serve(DATA, etag='"v2"')

    assert h.fetch(h.item(srv.add("/f", fn))).read_bytes() == DATA
    assert "range" not in srv.requests("/f")[2].headers


def test_part_without_a_validator_is_not_resumed(h: Harness, srv: FaultServer) -> None:
    def fn(ex: Exchange) -> None:
        ex.serve(DATA, etag=None, cut_after=CUT if ex.index == 0 else None)

    assert h.fetch(h.item(srv.add("/f", fn))).read_bytes() == DATA
    assert all("range" not in s.headers for s in srv.requests("/f"))
