"""BER-TLV (EMV Book 3 Annex B): known encodings, errors with location, properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emvwire import tlv
from emvwire.errors import DecodeError
from emvwire.tlv import Tlv

# A Visa qVSDC GPO response (template 77) shaped like fixtures/transcripts/mock-visa-online.json.
GPO_77 = bytes.fromhex(
    "7744"
    "82022000"
    "9F360200 01"
    "9F2608C74D18B08248FEFC"
    "9F100706011203900000"
    "9F2701 80"
    "5F340101"
    "9F6C02 3E00"
    "9F6E04 20700000"
    "57104761739001010010D22122011438044F".replace(" ", "")
)


def test_decodes_a_gpo_response_with_nested_primitives() -> None:
    (top,) = tlv.decode(GPO_77)
    assert top.tag == 0x77
    assert top.constructed
    assert [c.tag for c in top.children] == [
        0x82, 0x9F36, 0x9F26, 0x9F10, 0x9F27, 0x5F34, 0x9F6C, 0x9F6E, 0x57,
    ]  # fmt: skip
    flat = tlv.flatten(tlv.decode(GPO_77))
    assert flat[0x9F26] == bytes.fromhex("C74D18B08248FEFC")
    assert flat[0x9F36] == b"\x00\x01"
    assert tlv.encode(0x77, top.children) == GPO_77


@pytest.mark.parametrize(
    ("encoded", "tag", "after"),
    [
        ("82", 0x82, 1),  # one byte
        ("9F26", 0x9F26, 2),  # two bytes: b5-b1 of the first all set
        ("DF8129", 0xDF8129, 3),  # three bytes: b8 of the second set
        ("BF0C", 0xBF0C, 2),
    ],
)
def test_tag_forms(encoded: str, tag: int, after: int) -> None:
    assert tlv.read_tag(bytes.fromhex(encoded)) == (tag, after)
    assert tlv.tag_bytes(tag) == bytes.fromhex(encoded)


def test_four_byte_tag_is_refused() -> None:
    with pytest.raises(DecodeError, match="longer than three bytes"):
        tlv.read_tag(bytes.fromhex("DF818101"))


@pytest.mark.parametrize(
    ("length", "encoded"),
    [(0, "00"), (0x7F, "7F"), (0x80, "8180"), (0xFF, "81FF"), (0x100, "820100"),
     (0x10000, "83010000")],
)  # fmt: skip
def test_length_forms(length: int, encoded: str) -> None:
    assert tlv.encode_length(length) == bytes.fromhex(encoded)
    assert tlv.read_length(bytes.fromhex(encoded)) == (length, len(encoded) // 2)


def test_long_value_round_trips() -> None:
    value = bytes(range(256)) * 2
    enc = tlv.encode(0x70, [Tlv(0x9F46, value)])
    assert enc[:4] == bytes.fromhex("70820205")
    (rec,) = tlv.decode(enc)
    assert rec.children[0].value == value


def test_padding_between_objects_is_skipped() -> None:
    # Book 3 B1: 00 and FF may precede, separate and follow data objects.
    data = bytes.fromhex("00FF 9F3602 0001 0000 FF 8A02 3030 FF00".replace(" ", ""))
    assert [(o.tag, o.value) for o in tlv.decode(data)] == [
        (0x9F36, b"\x00\x01"),
        (0x8A, b"00"),
    ]


def test_multiple_occurrences_are_kept_in_order() -> None:
    # A PPSE FCI holds one 61 directory entry per application.
    entries = [tlv.encode(0x61, [Tlv(0x4F, bytes.fromhex(a)), Tlv(0x87, bytes([p]))])
               for a, p in (("A0000000031010", 2), ("A0000000041010", 1))]  # fmt: skip
    fci = tlv.encode(0x6F, [tlv.encode(0x84, b"2PAY.SYS.DDF01"),
                            tlv.encode(0xA5, [tlv.encode(0xBF0C, entries)])])  # fmt: skip
    found = tlv.find_all(tlv.decode(fci), 0x61)
    assert [tlv.flatten([e])[0x4F].hex().upper() for e in found] == [
        "A0000000031010",
        "A0000000041010",
    ]
    first = tlv.find(tlv.decode(fci), 0x87)
    assert first is not None
    assert first.value == b"\x02"


def test_error_carries_tag_offset_and_what_was_decoded() -> None:
    data = bytes.fromhex("9F360200019F2608C74D18")
    with pytest.raises(DecodeError) as err:
        tlv.decode(data)
    assert err.value.tag == 0x9F26
    assert err.value.offset == 5
    assert err.value.decoded == [Tlv(0x9F36, b"\x00\x01")]
    assert "9F26" in str(err.value)


def test_error_inside_a_template_names_the_inner_tag() -> None:
    data = bytes.fromhex("7706 9F3602 0001 8A05".replace(" ", ""))
    with pytest.raises(DecodeError) as err:
        tlv.decode(data)
    assert err.value.tag == 0x8A


@pytest.mark.parametrize(
    ("hexdata", "message"),
    [
        ("9F", "tag ended early"),
        ("9F36", "length expected"),
        ("9F3680", "indefinite length"),
        ("9F368401000000", "too long"),
        ("9F3682FF", "length ended early"),
    ],
)
def test_malformed_inputs_raise_decode_error(hexdata: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        tlv.decode(bytes.fromhex(hexdata))


def test_nesting_bomb_is_refused() -> None:
    data = b""
    for _ in range(40):
        data = tlv.encode(0x70, data)
    with pytest.raises(DecodeError, match="nested too deep"):
        tlv.decode(data)


def test_decode_one_checks_the_tag_and_count() -> None:
    assert tlv.decode_one(GPO_77, 0x77).tag == 0x77
    with pytest.raises(DecodeError, match="expected tag 80"):
        tlv.decode_one(GPO_77, 0x80)
    with pytest.raises(DecodeError, match="expected one data object"):
        tlv.decode_one(GPO_77 + bytes.fromhex("9F360100"))


def test_decode_leading_ignores_what_follows_the_template() -> None:
    for tail in (b"", bytes.fromhex("9F360100"), bytes.fromhex("DEAD"), b"\x9f", b"\x00\x00"):
        found = tlv.decode_leading(b"\x00" + GPO_77 + tail, 0x77)
        assert found == tlv.decode_one(GPO_77, 0x77)
    with pytest.raises(DecodeError, match="expected tag 6F"):
        tlv.decode_leading(GPO_77, 0x6F)
    with pytest.raises(DecodeError, match="runs past the end"):
        tlv.decode_leading(GPO_77[:-1], 0x77)
    with pytest.raises(DecodeError):
        tlv.decode_leading(b"\x77\x03\x9f\x36\x05", 0x77)  # broken inside the template
    with pytest.raises(DecodeError):
        tlv.decode_leading(b"", 0x77)


def test_repr_never_shows_the_value() -> None:
    pan = Tlv(0x5A, bytes.fromhex("4761739001010010"))
    assert "4761739001010010" not in repr(pan)
    assert repr(pan) == "Tlv(5A, 8 bytes)"


# --- properties -----------------------------------------------------------------------

# Valid EMV tags: the first byte is never 00/FF (padding); multi-byte tags end with a
# byte whose b8 is clear; b6 of the first byte says constructed. Strategies build
# primitive and constructed tags directly rather than filtering, to keep hypothesis fast.


def _tags(constructed: bool) -> st.SearchStrategy[int]:
    flag = 0x20 if constructed else 0x00
    one = (
        st.integers(0x01, 0xFE)
        .map(lambda b: (b & ~0x20) | flag)
        .filter(lambda b: b & 0x1F != 0x1F and b not in (0x00, 0xFF))
    )
    # 0xDF | 0x20 would be FF, which is padding, not a tag.
    firsts = [0x1F, 0x5F, 0x9F, 0xDF] if not constructed else [0x3F, 0x7F, 0xBF]
    classes = st.sampled_from(firsts)
    two = st.tuples(classes, st.integers(0x01, 0x7F)).map(lambda t: (t[0] << 8) | t[1])
    three = st.tuples(classes, st.integers(0x81, 0xFF), st.integers(0x00, 0x7F)).map(
        lambda t: (t[0] << 16) | (t[1] << 8) | t[2]
    )
    return st.one_of(one, two, three)


objects = st.recursive(
    st.builds(Tlv, _tags(constructed=False), st.binary(max_size=300), st.just(())),
    lambda kids: st.builds(
        lambda tag, children: Tlv(tag, b"".join(c.encode() for c in children), tuple(children)),
        _tags(constructed=True),
        st.lists(kids, min_size=1, max_size=4),
    ),
    max_leaves=12,
)


@given(st.lists(objects, max_size=5))
def test_encode_decode_round_trip(objs: list[Tlv]) -> None:
    data = b"".join(o.encode() for o in objs)
    assert tlv.decode(data) == objs


@given(st.binary(max_size=400))
@settings(max_examples=2000)
def test_arbitrary_bytes_raise_only_decode_error(data: bytes) -> None:
    error: DecodeError | None = None
    try:
        decoded = tlv.decode(data)
    except DecodeError as err:
        error = err
    if error is not None:
        assert 0 <= error.offset <= len(data)
        assert isinstance(error.decoded, list)
    else:
        # What decodes is the input less padding: re-encoding it and decoding again
        # gives the same objects.
        again = tlv.decode(b"".join(o.encode() for o in decoded))
        assert again == decoded


@given(st.lists(objects, max_size=5))
def test_decode_flat_equals_flatten_of_decode(objs: list[Tlv]) -> None:
    data = b"".join(o.encode() for o in objs)
    assert tlv.decode_flat(data) == tlv.flatten(tlv.decode(data))


@given(st.binary(max_size=200))
def test_decode_flat_fails_exactly_where_decode_fails(data: bytes) -> None:
    try:
        expected: dict[int, bytes] | str = tlv.flatten(tlv.decode(data))
    except DecodeError as err:
        expected = err.message
    try:
        got: dict[int, bytes] | str = tlv.decode_flat(data)
    except DecodeError as err:
        got = err.message
    assert got == expected
