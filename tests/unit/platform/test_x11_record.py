"""The X RECORD request parser: recorded bytes in, screen reads out (other clients' data,
so fuzzed: it never raises)."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from lockdown.platform.x11_record import GET_IMAGE, parse_requests

MASK = 0x001FFFFF
SHM = 130
COMPOSITE = 142
REQUESTS = {(GET_IMAGE, 0): "GetImage", (SHM, 4): "ShmGetImage", (COMPOSITE, 6): "NameWindowPixmap"}
CLIENT = 0x00A00000
ROOT = 0x0000050D


def get_image(drawable: int, w: int, h: int, order: str = "<") -> bytes:
    return struct.pack(order + "BBHIhhHHI", GET_IMAGE, 2, 5, drawable, 0, 0, w, h, 0xFFFFFFFF)


def shm_get_image(drawable: int, w: int, h: int) -> bytes:
    return struct.pack("<BBHIhhHHIB3xII", SHM, 4, 8, drawable, 0, 0, w, h, ~0 & 0xFFFFFFFF, 2, 7, 0)


def test_every_request_of_a_reply_is_read_and_the_clients_own_drawables_are_left_out() -> None:
    own = CLIENT | 0x12
    other = 0x00400003
    data = (
        get_image(ROOT, 1280, 800)
        + shm_get_image(own, 10, 10)
        + struct.pack("<BBHII", COMPOSITE, 6, 3, other, CLIENT | 0x40)
    )
    found = parse_requests(data, CLIENT, False, mask=MASK, requests=REQUESTS)
    assert [(f.request, f.drawable, f.owner, f.width, f.height) for f in found] == [
        ("GetImage", ROOT, 0, 1280, 800),
        ("NameWindowPixmap", other, 0x00400000, 0, 0),
    ]


def test_a_big_request_and_a_swapped_client_are_read() -> None:
    big = struct.pack("<BBHI", SHM, 4, 0, 9) + shm_get_image(ROOT, 64, 48)[4:]
    assert [f.width for f in parse_requests(big, CLIENT, False, mask=MASK, requests=REQUESTS)] == [
        64
    ]
    swapped = get_image(ROOT, 640, 480, order=">")
    found = parse_requests(swapped, CLIENT, True, mask=MASK, requests=REQUESTS)
    assert [(f.drawable, f.width, f.height) for f in found] == [(ROOT, 640, 480)]


def test_other_requests_pass_unseen() -> None:
    copy_area = struct.pack("<BBHIII", 62, 0, 7, ROOT, CLIENT | 1, 0) + bytes(12)
    assert parse_requests(copy_area, CLIENT, False, mask=MASK, requests=REQUESTS) == []


@given(st.binary(max_size=256), st.booleans())
def test_any_bytes_never_raise(data: bytes, swapped: bool) -> None:
    for found in parse_requests(data, CLIENT, swapped, mask=MASK, requests=REQUESTS):
        assert found.request in REQUESTS.values()
