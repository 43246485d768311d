from ivoz.domain.security import hash_password, needs_rehash, verify_password


def test_argon2id_hash_verifies_only_the_right_password() -> None:
    hashed = hash_password("s3cret")
    assert hashed.startswith("$argon2id$")
    assert hashed != hash_password("s3cret")  # salted
    assert verify_password(hashed, "s3cret")
    assert not verify_password(hashed, "S3cret")
    assert not needs_rehash(hashed)


def test_malformed_hash_never_matches() -> None:
    assert not verify_password("not a hash", "anything")
    assert not verify_password("", "")
    assert needs_rehash("not a hash")
