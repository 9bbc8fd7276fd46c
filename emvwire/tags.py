"""Named constants of the EMV tags, for logic that tests or reads a tag.

Every name stands for an entry of the data dictionary (:mod:`emvwire.dictionary`,
EMV Book 3 Annex A and Books B, C-2, C-3 Annex A), which stays the one table of
names, formats and sources; ``tests/emvwire/test_tags.py`` checks the two agree.
Logic says ``Tag.TTQ``, never ``0x9F66``: raw numbers belong in tables and vectors
only. A few tags mean different things in kernel 2 and kernel 3 (Book C-2 and C-3
Annex A); each meaning has its name, and those of one kernel only are grouped at the
end. :data:`FIELD_55_TAGS` (the objects of field 55, which :mod:`emvwire.contract`
carries) lives here too, so that a terminal builds field 55 without loading the
contract's types.
"""

from __future__ import annotations

from typing import Final

__all__ = ["FIELD_55_TAGS", "Tag"]


class Tag:
    """EMV tags by name (the values are the tags as integers: ``Tag.ATC == 0x9F36``)."""

    IIN: Final = 0x42
    """Issuer Identification Number (IIN)."""
    AID: Final = 0x4F
    """Application Identifier (AID) - card."""
    APPLICATION_LABEL: Final = 0x50
    """Application Label."""
    TRACK1_DATA: Final = 0x56
    """Track 1 Data."""
    TRACK2_EQUIVALENT: Final = 0x57
    """Track 2 Equivalent Data."""
    PAN: Final = 0x5A
    """Application Primary Account Number (PAN)."""
    APPLICATION_TEMPLATE: Final = 0x61
    """Application Template."""
    FCI_TEMPLATE: Final = 0x6F
    """File Control Information (FCI) Template."""
    RECORD_TEMPLATE: Final = 0x70
    """READ RECORD Response Message Template."""
    ISSUER_SCRIPT_TEMPLATE_1: Final = 0x71
    """Issuer Script Template 1."""
    ISSUER_SCRIPT_TEMPLATE_2: Final = 0x72
    """Issuer Script Template 2."""
    DIRECTORY_DISCRETIONARY_TEMPLATE: Final = 0x73
    """Directory Discretionary Template."""
    RESPONSE_FORMAT_2: Final = 0x77
    """Response Message Template Format 2."""
    RESPONSE_FORMAT_1: Final = 0x80
    """Response Message Template Format 1."""
    AMOUNT_AUTHORISED_BINARY: Final = 0x81
    """Amount, Authorised (Binary)."""
    AIP: Final = 0x82
    """Application Interchange Profile."""
    COMMAND_TEMPLATE: Final = 0x83
    """Command Template."""
    DF_NAME: Final = 0x84
    """Dedicated File (DF) Name."""
    ISSUER_SCRIPT_COMMAND: Final = 0x86
    """Issuer Script Command."""
    APPLICATION_PRIORITY: Final = 0x87
    """Application Priority Indicator."""
    SFI: Final = 0x88
    """Short File Identifier (SFI)."""
    AUTHORISATION_CODE: Final = 0x89
    """Authorisation Code."""
    AUTHORISATION_RESPONSE_CODE: Final = 0x8A
    """Authorisation Response Code."""
    CDOL1: Final = 0x8C
    """Card Risk Management Data Object List 1 (CDOL1)."""
    CDOL2: Final = 0x8D
    """Card Risk Management Data Object List 2 (CDOL2)."""
    CVM_LIST: Final = 0x8E
    """Cardholder Verification Method (CVM) List."""
    CA_PUBLIC_KEY_INDEX: Final = 0x8F
    """Certification Authority Public Key Index."""
    ISSUER_PUBLIC_KEY_CERTIFICATE: Final = 0x90
    """Issuer Public Key Certificate."""
    ISSUER_AUTHENTICATION_DATA: Final = 0x91
    """Issuer Authentication Data."""
    ISSUER_PUBLIC_KEY_REMAINDER: Final = 0x92
    """Issuer Public Key Remainder."""
    SIGNED_STATIC_APPLICATION_DATA: Final = 0x93
    """Signed Static Application Data."""
    AFL: Final = 0x94
    """Application File Locator (AFL)."""
    TVR: Final = 0x95
    """Terminal Verification Results."""
    TDOL: Final = 0x97
    """Transaction Certificate Data Object List (TDOL)."""
    TC_HASH_VALUE: Final = 0x98
    """Transaction Certificate (TC) Hash Value."""
    TRANSACTION_PIN_DATA: Final = 0x99
    """Transaction PIN Data."""
    TRANSACTION_DATE: Final = 0x9A
    """Transaction Date."""
    TSI: Final = 0x9B
    """Transaction Status Information."""
    TRANSACTION_TYPE: Final = 0x9C
    """Transaction Type."""
    DDF_NAME: Final = 0x9D
    """Directory Definition File (DDF) Name."""
    FCI_PROPRIETARY_TEMPLATE: Final = 0xA5
    """File Control Information (FCI) Proprietary Template."""
    CARDHOLDER_NAME: Final = 0x5F20
    """Cardholder Name."""
    EXPIRATION_DATE: Final = 0x5F24
    """Application Expiration Date."""
    EFFECTIVE_DATE: Final = 0x5F25
    """Application Effective Date."""
    ISSUER_COUNTRY_CODE: Final = 0x5F28
    """Issuer Country Code."""
    TRANSACTION_CURRENCY_CODE: Final = 0x5F2A
    """Transaction Currency Code."""
    LANGUAGE_PREFERENCE: Final = 0x5F2D
    """Language Preference."""
    SERVICE_CODE: Final = 0x5F30
    """Service Code."""
    PAN_SEQUENCE_NUMBER: Final = 0x5F34
    """Application PAN Sequence Number."""
    TRANSACTION_CURRENCY_EXPONENT: Final = 0x5F36
    """Transaction Currency Exponent."""
    ISSUER_URL: Final = 0x5F50
    """Issuer URL."""
    IBAN: Final = 0x5F53
    """International Bank Account Number (IBAN)."""
    BIC: Final = 0x5F54
    """Bank Identifier Code (BIC)."""
    ISSUER_COUNTRY_CODE_ALPHA2: Final = 0x5F55
    """Issuer Country Code (alpha2 format)."""
    ISSUER_COUNTRY_CODE_ALPHA3: Final = 0x5F56
    """Issuer Country Code (alpha3 format)."""
    ACCOUNT_TYPE: Final = 0x5F57
    """Account Type."""
    ACQUIRER_IDENTIFIER: Final = 0x9F01
    """Acquirer Identifier."""
    AMOUNT_AUTHORISED: Final = 0x9F02
    """Amount, Authorised (Numeric)."""
    AMOUNT_OTHER: Final = 0x9F03
    """Amount, Other (Numeric)."""
    AMOUNT_OTHER_BINARY: Final = 0x9F04
    """Amount, Other (Binary)."""
    APPLICATION_DISCRETIONARY_DATA: Final = 0x9F05
    """Application Discretionary Data."""
    TERMINAL_AID: Final = 0x9F06
    """Application Identifier (AID) - terminal."""
    APPLICATION_USAGE_CONTROL: Final = 0x9F07
    """Application Usage Control."""
    CARD_APPLICATION_VERSION: Final = 0x9F08
    """Application Version Number (card)."""
    TERMINAL_APPLICATION_VERSION: Final = 0x9F09
    """Application Version Number (terminal)."""
    ASRPD: Final = 0x9F0A
    """Application Selection Registered Proprietary Data."""
    CARDHOLDER_NAME_EXTENDED: Final = 0x9F0B
    """Cardholder Name Extended."""
    IAC_DEFAULT: Final = 0x9F0D
    """Issuer Action Code - Default."""
    IAC_DENIAL: Final = 0x9F0E
    """Issuer Action Code - Denial."""
    IAC_ONLINE: Final = 0x9F0F
    """Issuer Action Code - Online."""
    IAD: Final = 0x9F10
    """Issuer Application Data."""
    ISSUER_CODE_TABLE_INDEX: Final = 0x9F11
    """Issuer Code Table Index."""
    APPLICATION_PREFERRED_NAME: Final = 0x9F12
    """Application Preferred Name."""
    LAST_ONLINE_ATC: Final = 0x9F13
    """Last Online ATC Register."""
    LOWER_CONSECUTIVE_OFFLINE_LIMIT: Final = 0x9F14
    """Lower Consecutive Offline Limit."""
    MCC: Final = 0x9F15
    """Merchant Category Code."""
    MERCHANT_IDENTIFIER: Final = 0x9F16
    """Merchant Identifier."""
    PIN_TRY_COUNTER: Final = 0x9F17
    """PIN Try Counter."""
    ISSUER_SCRIPT_IDENTIFIER: Final = 0x9F18
    """Issuer Script Identifier."""
    TOKEN_REQUESTOR_ID: Final = 0x9F19
    """Token Requestor ID."""
    TERMINAL_COUNTRY_CODE: Final = 0x9F1A
    """Terminal Country Code."""
    TERMINAL_FLOOR_LIMIT: Final = 0x9F1B
    """Terminal Floor Limit."""
    TERMINAL_IDENTIFICATION: Final = 0x9F1C
    """Terminal Identification."""
    TERMINAL_RISK_MANAGEMENT_DATA: Final = 0x9F1D
    """Terminal Risk Management Data."""
    IFD_SERIAL_NUMBER: Final = 0x9F1E
    """Interface Device (IFD) Serial Number."""
    TRACK1_DISCRETIONARY_DATA: Final = 0x9F1F
    """Track 1 Discretionary Data."""
    TRACK2_DISCRETIONARY_DATA: Final = 0x9F20
    """Track 2 Discretionary Data."""
    TRANSACTION_TIME: Final = 0x9F21
    """Transaction Time."""
    TERMINAL_CA_PUBLIC_KEY_INDEX: Final = 0x9F22
    """Certification Authority Public Key Index (terminal)."""
    UPPER_CONSECUTIVE_OFFLINE_LIMIT: Final = 0x9F23
    """Upper Consecutive Offline Limit."""
    PAR: Final = 0x9F24
    """Payment Account Reference (PAR)."""
    LAST4_OF_PAN: Final = 0x9F25
    """Last 4 Digits of PAN."""
    APPLICATION_CRYPTOGRAM: Final = 0x9F26
    """Application Cryptogram."""
    CID: Final = 0x9F27
    """Cryptogram Information Data."""
    EXTENDED_SELECTION: Final = 0x9F29
    """Extended Selection."""
    KERNEL_IDENTIFIER: Final = 0x9F2A
    """Kernel Identifier."""
    ICC_PIN_PUBLIC_KEY_CERTIFICATE: Final = 0x9F2D
    """ICC PIN Encipherment Public Key Certificate."""
    ICC_PIN_PUBLIC_KEY_EXPONENT: Final = 0x9F2E
    """ICC PIN Encipherment Public Key Exponent."""
    ICC_PIN_PUBLIC_KEY_REMAINDER: Final = 0x9F2F
    """ICC PIN Encipherment Public Key Remainder."""
    ISSUER_PUBLIC_KEY_EXPONENT: Final = 0x9F32
    """Issuer Public Key Exponent."""
    TERMINAL_CAPABILITIES: Final = 0x9F33
    """Terminal Capabilities."""
    CVM_RESULTS: Final = 0x9F34
    """Cardholder Verification Method (CVM) Results."""
    TERMINAL_TYPE: Final = 0x9F35
    """Terminal Type."""
    ATC: Final = 0x9F36
    """Application Transaction Counter (ATC)."""
    UNPREDICTABLE_NUMBER: Final = 0x9F37
    """Unpredictable Number."""
    PDOL: Final = 0x9F38
    """Processing Options Data Object List (PDOL)."""
    POS_ENTRY_MODE: Final = 0x9F39
    """Point-of-Service (POS) Entry Mode."""
    AMOUNT_REFERENCE_CURRENCY: Final = 0x9F3A
    """Amount, Reference Currency."""
    APPLICATION_REFERENCE_CURRENCY: Final = 0x9F3B
    """Application Reference Currency."""
    TRANSACTION_REFERENCE_CURRENCY_CODE: Final = 0x9F3C
    """Transaction Reference Currency Code."""
    TRANSACTION_REFERENCE_CURRENCY_EXPONENT: Final = 0x9F3D
    """Transaction Reference Currency Exponent."""
    ADDITIONAL_TERMINAL_CAPABILITIES: Final = 0x9F40
    """Additional Terminal Capabilities."""
    TRANSACTION_SEQUENCE_COUNTER: Final = 0x9F41
    """Transaction Sequence Counter."""
    APPLICATION_CURRENCY_CODE: Final = 0x9F42
    """Application Currency Code."""
    APPLICATION_REFERENCE_CURRENCY_EXPONENT: Final = 0x9F43
    """Application Reference Currency Exponent."""
    APPLICATION_CURRENCY_EXPONENT: Final = 0x9F44
    """Application Currency Exponent."""
    DATA_AUTHENTICATION_CODE: Final = 0x9F45
    """Data Authentication Code."""
    ICC_PUBLIC_KEY_CERTIFICATE: Final = 0x9F46
    """ICC Public Key Certificate."""
    ICC_PUBLIC_KEY_EXPONENT: Final = 0x9F47
    """ICC Public Key Exponent."""
    ICC_PUBLIC_KEY_REMAINDER: Final = 0x9F48
    """ICC Public Key Remainder."""
    DDOL: Final = 0x9F49
    """Dynamic Data Authentication Data Object List (DDOL)."""
    SDA_TAG_LIST: Final = 0x9F4A
    """Static Data Authentication Tag List."""
    SDAD: Final = 0x9F4B
    """Signed Dynamic Application Data."""
    ICC_DYNAMIC_NUMBER: Final = 0x9F4C
    """ICC Dynamic Number."""
    LOG_ENTRY: Final = 0x9F4D
    """Log Entry."""
    MERCHANT_NAME_AND_LOCATION: Final = 0x9F4E
    """Merchant Name and Location."""
    LOG_FORMAT: Final = 0x9F4F
    """Log Format."""
    OFFLINE_ACCUMULATOR_BALANCE: Final = 0x9F50
    """Offline Accumulator Balance."""
    DRDOL: Final = 0x9F51
    """DRDOL."""
    TRANSACTION_CATEGORY_CODE: Final = 0x9F53
    """Transaction Category Code."""
    DS_ODS_CARD: Final = 0x9F54
    """DS ODS Card."""
    APPLICATION_PROGRAM_IDENTIFIER: Final = 0x9F5A
    """Application Program Identifier."""
    ISSUER_SCRIPT_RESULTS: Final = 0x9F5B
    """Issuer Script Results."""
    DS_REQUESTED_OPERATOR_ID: Final = 0x9F5C
    """DS Requested Operator ID."""
    AVAILABLE_OFFLINE_SPENDING_AMOUNT: Final = 0x9F5D
    """Available Offline Spending Amount."""
    DS_ID: Final = 0x9F5E
    """Data Storage Identifier."""
    DS_SLOT_AVAILABILITY: Final = 0x9F5F
    """DS Slot Availability."""
    CVC3_TRACK1: Final = 0x9F60
    """CVC3 (Track1)."""
    CVC3_TRACK2: Final = 0x9F61
    """CVC3 (Track2)."""
    PCVC3_TRACK1: Final = 0x9F62
    """Track 1 Bit Map for CVC3 (PCVC3(Track1))."""
    PUNATC_TRACK1: Final = 0x9F63
    """Track 1 Bit Map for UN and ATC (PUNATC(Track1))."""
    NATC_TRACK1: Final = 0x9F64
    """Track 1 Number of ATC Digits (NATC(Track1))."""
    PCVC3_TRACK2: Final = 0x9F65
    """Track 2 Bit Map for CVC3 (PCVC3(Track2))."""
    TTQ: Final = 0x9F66
    """Terminal Transaction Qualifiers (TTQ)."""
    NATC_TRACK2: Final = 0x9F67
    """Track 2 Number of ATC Digits (NATC(Track2))."""
    CARD_ADDITIONAL_PROCESSES: Final = 0x9F68
    """Card Additional Processes."""
    CARD_AUTHENTICATION_RELATED_DATA: Final = 0x9F69
    """Card Authentication Related Data."""
    UNPREDICTABLE_NUMBER_NUMERIC: Final = 0x9F6A
    """Unpredictable Number (Numeric)."""
    TRACK2_DATA: Final = 0x9F6B
    """Track 2 Data."""
    CTQ: Final = 0x9F6C
    """Card Transaction Qualifiers (CTQ)."""
    MAG_STRIPE_VERSION_READER: Final = 0x9F6D
    """Mag-stripe Application Version Number (Reader)."""
    FORM_FACTOR_INDICATOR: Final = 0x9F6E
    """Form Factor Indicator (FFI)."""
    DS_SLOT_MANAGEMENT_CONTROL: Final = 0x9F6F
    """DS Slot Management Control."""
    PROTECTED_DATA_ENVELOPE_1: Final = 0x9F70
    """Protected Data Envelope 1."""
    PROTECTED_DATA_ENVELOPE_2: Final = 0x9F71
    """Protected Data Envelope 2."""
    PROTECTED_DATA_ENVELOPE_3: Final = 0x9F72
    """Protected Data Envelope 3."""
    PROTECTED_DATA_ENVELOPE_4: Final = 0x9F73
    """Protected Data Envelope 4."""
    PROTECTED_DATA_ENVELOPE_5: Final = 0x9F74
    """Protected Data Envelope 5."""
    UNPROTECTED_DATA_ENVELOPE_1: Final = 0x9F75
    """Unprotected Data Envelope 1."""
    UNPROTECTED_DATA_ENVELOPE_2: Final = 0x9F76
    """Unprotected Data Envelope 2."""
    UNPROTECTED_DATA_ENVELOPE_3: Final = 0x9F77
    """Unprotected Data Envelope 3."""
    UNPROTECTED_DATA_ENVELOPE_4: Final = 0x9F78
    """Unprotected Data Envelope 4."""
    UNPROTECTED_DATA_ENVELOPE_5: Final = 0x9F79
    """Unprotected Data Envelope 5."""
    VLP_TERMINAL_SUPPORT_INDICATOR: Final = 0x9F7A
    """VLP Terminal Support Indicator."""
    CUSTOMER_EXCLUSIVE_DATA: Final = 0x9F7C
    """Customer Exclusive Data (CED)."""
    DS_SUMMARY_1: Final = 0x9F7D
    """DS Summary 1."""
    MOBILE_SUPPORT_INDICATOR: Final = 0x9F7E
    """Mobile Support Indicator."""
    DS_UNPREDICTABLE_NUMBER: Final = 0x9F7F
    """DS Unpredictable Number."""
    FCI_ISSUER_DISCRETIONARY_DATA: Final = 0xBF0C
    """FCI Issuer Discretionary Data."""
    POS_CARDHOLDER_INTERACTION_INFORMATION: Final = 0xDF4B
    """POS Cardholder Interaction Information."""
    DS_INPUT_CARD: Final = 0xDF60
    """DS Input (Card)."""
    DS_DIGEST_H: Final = 0xDF61
    """DS Digest H."""
    DS_ODS_INFO: Final = 0xDF62
    """DS ODS Info."""
    DS_ODS_TERM: Final = 0xDF63
    """DS ODS Term."""
    DS_SUMMARY_2: Final = 0xDF8101
    """DS Summary 2."""
    DS_SUMMARY_3: Final = 0xDF8102
    """DS Summary 3."""
    BALANCE_READ_BEFORE_GEN_AC: Final = 0xDF8104
    """Balance Read Before Gen AC."""
    BALANCE_READ_AFTER_GEN_AC: Final = 0xDF8105
    """Balance Read After Gen AC."""
    DATA_NEEDED: Final = 0xDF8106
    """Data Needed."""
    CDOL1_RELATED_DATA: Final = 0xDF8107
    """CDOL1 Related Data."""
    DS_AC_TYPE: Final = 0xDF8108
    """DS AC Type."""
    DS_INPUT_TERM: Final = 0xDF8109
    """DS Input (Term)."""
    DS_ODS_INFO_FOR_READER: Final = 0xDF810A
    """DS ODS Info For Reader."""
    DS_SUMMARY_STATUS: Final = 0xDF810B
    """DS Summary Status."""
    KERNEL_ID: Final = 0xDF810C
    """Kernel ID."""
    DSVN_TERM: Final = 0xDF810D
    """DSVN Term."""
    POST_GEN_AC_PUT_DATA_STATUS: Final = 0xDF810E
    """Post-Gen AC Put Data Status."""
    PRE_GEN_AC_PUT_DATA_STATUS: Final = 0xDF810F
    """Pre-Gen AC Put Data Status."""
    PROCEED_TO_FIRST_WRITE_FLAG: Final = 0xDF8110
    """Proceed To First Write Flag."""
    PDOL_RELATED_DATA: Final = 0xDF8111
    """PDOL Related Data."""
    TAGS_TO_READ: Final = 0xDF8112
    """Tags To Read."""
    DRDOL_RELATED_DATA: Final = 0xDF8113
    """DRDOL Related Data."""
    REFERENCE_CONTROL_PARAMETER: Final = 0xDF8114
    """Reference Control Parameter."""
    ERROR_INDICATION: Final = 0xDF8115
    """Error Indication."""
    UI_REQUEST_DATA: Final = 0xDF8116
    """User Interface Request Data."""
    CARD_DATA_INPUT_CAPABILITY: Final = 0xDF8117
    """Card Data Input Capability."""
    CVM_CAPABILITY_CVM_REQUIRED: Final = 0xDF8118
    """CVM Capability - CVM Required."""
    CVM_CAPABILITY_NO_CVM_REQUIRED: Final = 0xDF8119
    """CVM Capability - No CVM Required."""
    DEFAULT_UDOL: Final = 0xDF811A
    """Default UDOL."""
    KERNEL_CONFIGURATION: Final = 0xDF811B
    """Kernel Configuration."""
    MAX_LIFETIME_OF_TORN_RECORD: Final = 0xDF811C
    """Max Lifetime of Torn Transaction Log Record."""
    MAX_NUMBER_OF_TORN_RECORDS: Final = 0xDF811D
    """Max Number of Torn Transaction Log Records."""
    MAG_STRIPE_CVM_CAPABILITY_CVM_REQUIRED: Final = 0xDF811E
    """Mag-stripe CVM Capability - CVM Required."""
    SECURITY_CAPABILITY: Final = 0xDF811F
    """Security Capability."""
    TAC_DEFAULT: Final = 0xDF8120
    """Terminal Action Code - Default."""
    TAC_DENIAL: Final = 0xDF8121
    """Terminal Action Code - Denial."""
    TAC_ONLINE: Final = 0xDF8122
    """Terminal Action Code - Online."""
    READER_CONTACTLESS_FLOOR_LIMIT: Final = 0xDF8123
    """Reader Contactless Floor Limit."""
    READER_CONTACTLESS_TRANSACTION_LIMIT_NO_ON_DEVICE_CVM: Final = 0xDF8124
    """Reader Contactless Transaction Limit (No On-device CVM)."""
    READER_CONTACTLESS_TRANSACTION_LIMIT_ON_DEVICE_CVM: Final = 0xDF8125
    """Reader Contactless Transaction Limit (On-device CVM)."""
    READER_CVM_REQUIRED_LIMIT: Final = 0xDF8126
    """Reader CVM Required Limit."""
    TIME_OUT_VALUE: Final = 0xDF8127
    """Time Out Value."""
    IDS_STATUS: Final = 0xDF8128
    """IDS Status."""
    OUTCOME_PARAMETER_SET: Final = 0xDF8129
    """Outcome Parameter Set."""
    DD_CARD_TRACK1: Final = 0xDF812A
    """DD Card (Track1)."""
    DD_CARD_TRACK2: Final = 0xDF812B
    """DD Card (Track2)."""
    MAG_STRIPE_CVM_CAPABILITY_NO_CVM_REQUIRED: Final = 0xDF812C
    """Mag-stripe CVM Capability - No CVM Required."""
    MESSAGE_HOLD_TIME: Final = 0xDF812D
    """Message Hold Time."""
    HOLD_TIME_VALUE: Final = 0xDF8130
    """Hold Time Value."""
    PHONE_MESSAGE_TABLE: Final = 0xDF8131
    """Phone Message Table."""
    MIN_RELAY_RESISTANCE_GRACE_PERIOD: Final = 0xDF8132
    """Minimum Relay Resistance Grace Period."""
    MAX_RELAY_RESISTANCE_GRACE_PERIOD: Final = 0xDF8133
    """Maximum Relay Resistance Grace Period."""
    TERMINAL_EXPECTED_TRANSMISSION_TIME_C_APDU: Final = 0xDF8134
    """Terminal Expected Transmission Time For Relay Resistance C-APDU."""
    TERMINAL_EXPECTED_TRANSMISSION_TIME_R_APDU: Final = 0xDF8135
    """Terminal Expected Transmission Time For Relay Resistance R-APDU."""
    RELAY_RESISTANCE_ACCURACY_THRESHOLD: Final = 0xDF8136
    """Relay Resistance Accuracy Threshold."""
    RELAY_RESISTANCE_TRANSMISSION_TIME_MISMATCH_THRESHOLD: Final = 0xDF8137
    """Relay Resistance Transmission Time Mismatch Threshold."""
    TERMINAL_RELAY_RESISTANCE_ENTROPY: Final = 0xDF8301
    """Terminal Relay Resistance Entropy."""
    DEVICE_RELAY_RESISTANCE_ENTROPY: Final = 0xDF8302
    """Device Relay Resistance Entropy."""
    MIN_TIME_FOR_PROCESSING_RELAY_RESISTANCE_APDU: Final = 0xDF8303
    """Min Time For Processing Relay Resistance APDU."""
    MAX_TIME_FOR_PROCESSING_RELAY_RESISTANCE_APDU: Final = 0xDF8304
    """Max Time For Processing Relay Resistance APDU."""
    DEVICE_ESTIMATED_TRANSMISSION_TIME_R_APDU: Final = 0xDF8305
    """Device Estimated Transmission Time For Relay Resistance R-APDU."""
    MEASURED_RELAY_RESISTANCE_PROCESSING_TIME: Final = 0xDF8306
    """Measured Relay Resistance Processing Time."""
    RRP_COUNTER: Final = 0xDF8307
    """RRP Counter."""
    TORN_RECORD: Final = 0xFF8101
    """Torn Record."""
    TAGS_TO_WRITE_BEFORE_GEN_AC: Final = 0xFF8102
    """Tags To Write Before Gen AC."""
    TAGS_TO_WRITE_AFTER_GEN_AC: Final = 0xFF8103
    """Tags To Write After Gen AC."""
    DATA_TO_SEND: Final = 0xFF8104
    """Data To Send."""
    DATA_RECORD: Final = 0xFF8105
    """Data Record."""
    DISCRETIONARY_DATA: Final = 0xFF8106
    """Discretionary Data."""
    # -- kernel 2 meanings (Book C-2 Annex A) where kernel 3's differ --
    APPLICATION_CAPABILITIES_INFORMATION: Final = 0x9F5D
    """Application Capabilities Information (kernel 2)."""
    PUNATC_TRACK2: Final = 0x9F66
    """Track 2 Bit Map for UN and ATC (PUNATC(Track2)) (kernel 2)."""
    UDOL: Final = 0x9F69
    """UDOL (kernel 2)."""
    MAG_STRIPE_VERSION_CARD: Final = 0x9F6C
    """Mag-stripe Application Version Number (Card) (kernel 2)."""
    THIRD_PARTY_DATA: Final = 0x9F6E
    """Third Party Data (kernel 2)."""
    MERCHANT_CUSTOM_DATA: Final = 0x9F7C
    """Merchant Custom Data (kernel 2)."""
    # -- kernel 4 meanings (Book C-4) where kernel 3's differ --
    ENHANCED_CONTACTLESS_READER_CAPABILITIES: Final = 0x9F6E
    """Enhanced Contactless Reader Capabilities (kernel 4)."""
    # -- kernel 3 meanings (Book C-3 Annex A) where kernel 2's differ --
    MSD_OFFSET: Final = 0x9F67
    """MSD Offset (kernel 3)."""
    VLP_RESET_THRESHOLD: Final = 0x9F6D
    """VLP Reset Threshold (kernel 3)."""


#: The data objects of field 55 (ICC system related data) in the order a terminal
#: sends them: the cryptogram and its inputs (Book 2 §8.1.1), the card's and the
#: terminal's context, and for Visa the TTQ, CTQ and form factor. Absent objects are
#: left out. Kernel 2 leaves out 9F66 and 9F6C, which mean other things there (Book
#: C-2 Annex A).
FIELD_55_TAGS: Final[tuple[int, ...]] = (
    Tag.APPLICATION_CRYPTOGRAM,
    Tag.CID,
    Tag.IAD,
    Tag.UNPREDICTABLE_NUMBER,
    Tag.ATC,
    Tag.TVR,
    Tag.TRANSACTION_DATE,
    Tag.TRANSACTION_TYPE,
    Tag.AMOUNT_AUTHORISED,
    Tag.AMOUNT_OTHER,
    Tag.TRANSACTION_CURRENCY_CODE,
    Tag.AIP,
    Tag.TERMINAL_COUNTRY_CODE,
    Tag.CVM_RESULTS,
    Tag.TERMINAL_CAPABILITIES,
    Tag.TERMINAL_TYPE,
    Tag.IFD_SERIAL_NUMBER,
    Tag.DF_NAME,
    Tag.TERMINAL_APPLICATION_VERSION,
    Tag.FORM_FACTOR_INDICATOR,
    Tag.PAN_SEQUENCE_NUMBER,
    Tag.TTQ,
    Tag.CTQ,
    Tag.CUSTOMER_EXCLUSIVE_DATA,
)
