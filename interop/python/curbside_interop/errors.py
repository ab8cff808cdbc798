"""Error identifiers and numbers of spec/errors.md."""

#: number -> identifier, exactly the table of spec/errors.md.
CODES = {
    101: "truncated",
    102: "trailing_bytes",
    103: "length_out_of_bounds",
    104: "unsupported_version",
    105: "unknown_enum",
    106: "invalid_text",
    107: "invalid_handle",
    108: "invalid_public_key",
    109: "invalid_value",
    201: "bad_prekey_signature",
    202: "prekey_expired",
    203: "identity_mismatch",
    301: "unsupported_suite",
    302: "unknown_prekey",
    303: "decryption_failed",
    304: "malformed_content",
    305: "bad_signature",
    306: "wrong_recipient",
    307: "sender_key_mismatch",
    308: "recipient_mismatch",
    309: "invalid_prekey",
    401: "invalid_key_length",
    402: "invalid_key",
    403: "weak_public_key",
    404: "authentication_failure",
    405: "limit_exceeded",
    406: "unsupported",
    501: "malformed_frame",
    502: "unknown_frame_type",
    503: "frame_too_large",
    504: "not_logged_in",
    505: "login_failed",
    506: "rate_limited",
    507: "unexpected_frame",
    508: "enrollment_invalid",
    509: "handle_taken",
    510: "unknown_handle",
    511: "prekey_rejected",
    512: "timeout",
    513: "quota_exceeded",
    514: "offset_mismatch",
    515: "beyond_declared_size",
    516: "upload_incomplete",
    517: "attachment_hash_mismatch",
    518: "unknown_attachment",
    519: "storage_full",
    520: "storage_failed",
    521: "relay_busy",
    522: "store_unavailable",
    601: "age_malformed_header",
    602: "age_unsupported_version",
    603: "age_no_matching_identity",
    604: "age_bad_header_mac",
    605: "age_truncated",
    606: "age_chunk_after_last",
    607: "age_empty_final_chunk",
    608: "age_chunk_decryption_failed",
    609: "age_malformed_key",
}

NUMBERS = {ident: num for num, ident in CODES.items()}


class CurbsideError(Exception):
    """An error of the specification: carries its identifier and number (errors.md).

    `where` is an optional field path or offset, for people; it never holds secret bytes.
    """

    def __init__(self, identifier, where=None):
        if identifier not in NUMBERS:
            raise ValueError(f"unknown error identifier {identifier!r}")
        self.identifier = identifier
        self.code = NUMBERS[identifier]
        self.where = where
        super().__init__(identifier if where is None else f"{identifier} ({where})")


def fail(identifier, where=None):
    raise CurbsideError(identifier, where)
