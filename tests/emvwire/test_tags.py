"""emvwire.tags: every name stands for a dictionary entry, and every entry has a name."""

from __future__ import annotations

from emvwire.dictionary import DICTIONARY, KERNEL_DICTIONARIES
from emvwire.tags import Tag

NAMES = {name: value for name, value in vars(Tag).items() if name.isupper()}
#: The names of kernel-specific meanings (Book C-2 / C-3 Annex A), with their kernel.
KERNEL_NAMES = {
    "APPLICATION_CAPABILITIES_INFORMATION": 2,
    "PUNATC_TRACK2": 2,
    "UDOL": 2,
    "MAG_STRIPE_VERSION_CARD": 2,
    "THIRD_PARTY_DATA": 2,
    "MERCHANT_CUSTOM_DATA": 2,
    "MSD_OFFSET": 3,
    "VLP_RESET_THRESHOLD": 3,
    "ENHANCED_CONTACTLESS_READER_CAPABILITIES": 4,
}


def test_every_default_name_is_a_dictionary_entry_and_each_entry_has_one_name() -> None:
    default = {n: v for n, v in NAMES.items() if n not in KERNEL_NAMES}
    assert sorted(default.values()) == sorted(DICTIONARY)
    assert len(set(default.values())) == len(default)


def test_kernel_names_are_the_kernel_dictionaries_entries() -> None:
    for name, kernel in KERNEL_NAMES.items():
        assert NAMES[name] in KERNEL_DICTIONARIES[kernel], name
    seen = {(kernel, NAMES[name]) for name, kernel in KERNEL_NAMES.items()}
    every = {(k, tag) for k, table in KERNEL_DICTIONARIES.items() for tag in table}
    assert seen == every


def test_names_follow_the_dictionary() -> None:
    assert Tag.TTQ == 0x9F66
    assert DICTIONARY[Tag.TTQ].name.endswith("(TTQ)")
    assert Tag.ATC == 0x9F36
    assert "Transaction Counter" in DICTIONARY[Tag.ATC].name
    assert Tag.UDOL == 0x9F69
    assert KERNEL_DICTIONARIES[2][Tag.UDOL].name == "UDOL"
