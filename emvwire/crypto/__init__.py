"""EMV symmetric cryptography: TDES/AES helpers, MACs, key derivation, cryptograms.

Modules:

* :mod:`emvwire.crypto.des`: TDES ECB/CBC, DES parity, TDES key check values.
* :mod:`emvwire.crypto.aes`: AES ECB, AES-CMAC, AES key check values.
* :mod:`emvwire.crypto.mac`: ISO/IEC 9797-1 padding methods 1 and 2, MAC
  algorithm 3 (retail MAC), constant-time MAC verification.
* :mod:`emvwire.crypto.kdf`: ICC master key derivation (EMV 4.3 Book 2 §A1.4
  Options A and B, and AES) and session key derivation (§A1.3.1, Mastercard SKD).
* :mod:`emvwire.crypto.sm`: SM4 (ECB, CMAC, key derivations) and SM3, for UnionPay's
  SM suite.
* :mod:`emvwire.crypto.cryptogram`: the CVN table, ARQC/TC/AAC generation and
  verification, ARPC methods 1 and 2.

Keyed cipher contexts and derived session keys are cached in bounded, per-thread
LRU caches for speed; :func:`clear_caches` empties them.
"""

from emvwire.crypto._ctx import clear_caches
from emvwire.crypto.aes import aes_cmac, aes_ecb_decrypt, aes_ecb_encrypt, kcv_aes
from emvwire.crypto.cryptogram import (
    CVN_TABLE,
    ArpcKey,
    CryptogramData,
    Cvn,
    CvnSpec,
    MacAlgorithm,
    MasterKeyDerivation,
    SessionKeyDerivation,
    arpc_method_1,
    arpc_method_2,
    build_cryptogram_input,
    cvn_spec,
    derive_ac_session_key,
    generate_arpc,
    generate_arqc,
    verify_arpc,
    verify_arqc,
)
from emvwire.crypto.des import (
    adjust_odd_parity,
    has_odd_parity,
    kcv,
    normalise_tdes_key,
    tdes_cbc_decrypt,
    tdes_cbc_encrypt,
    tdes_ecb_decrypt,
    tdes_ecb_encrypt,
)
from emvwire.crypto.kdf import (
    derive_common_sk,
    derive_common_sk_aes,
    derive_icc_mk_a,
    derive_icc_mk_aes,
    derive_icc_mk_b,
    derive_mastercard_sk,
    option_a_y,
    option_b_y,
)
from emvwire.crypto.mac import (
    mac_iso9797_alg3,
    pad_iso9797_1,
    pad_iso9797_2,
    verify_mac,
)

__all__ = [
    "CVN_TABLE",
    "ArpcKey",
    "CryptogramData",
    "Cvn",
    "CvnSpec",
    "MacAlgorithm",
    "MasterKeyDerivation",
    "SessionKeyDerivation",
    "adjust_odd_parity",
    "aes_cmac",
    "aes_ecb_decrypt",
    "aes_ecb_encrypt",
    "arpc_method_1",
    "arpc_method_2",
    "build_cryptogram_input",
    "clear_caches",
    "cvn_spec",
    "derive_ac_session_key",
    "derive_common_sk",
    "derive_common_sk_aes",
    "derive_icc_mk_a",
    "derive_icc_mk_aes",
    "derive_icc_mk_b",
    "derive_mastercard_sk",
    "generate_arpc",
    "generate_arqc",
    "has_odd_parity",
    "kcv",
    "kcv_aes",
    "mac_iso9797_alg3",
    "normalise_tdes_key",
    "option_a_y",
    "option_b_y",
    "pad_iso9797_1",
    "pad_iso9797_2",
    "tdes_cbc_decrypt",
    "tdes_cbc_encrypt",
    "tdes_ecb_decrypt",
    "tdes_ecb_encrypt",
    "verify_arpc",
    "verify_arqc",
    "verify_mac",
]
