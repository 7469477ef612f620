"""The Monero test-vector runner over ../shared/vectors, and its own parts (SPEC §4.5)."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petranode.crypto.group import G, P, Scalar, cn_fast_hash, hash_to_point, os_rng
from petranode.crypto.vectors import (
    KeccakTestRng,
    Outcome,
    RngMode,
    check_lines,
    derive_key_image_generator,
    detect_rng_mode,
    keccak_f1600,
    main_vectors,
    point_to_wei_x_y,
    run_vectors,
)


def vectors_dir() -> Path:
    env = os.environ.get("PETRANODE_VECTORS")
    return Path(env) if env else Path(__file__).parents[3].parent / "shared" / "vectors"


def vector_file(name: str) -> Path:
    path = vectors_dir() / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return path


FULL_COUNTS = {
    "check_scalar": 337, "random_scalar": 245, "hash_to_scalar": 256, "generate_keys": 256,
    "check_key": 372, "secret_key_to_public_key": 272, "generate_key_derivation": 272,
    "derive_public_key": 272, "derive_secret_key": 256, "generate_signature": 256,
    "check_signature": 512, "hash_to_point": 371, "hash_to_ec": 256, "generate_key_image": 256,
    "generate_ring_signature": 256, "check_ring_signature": 1024, "check_ge_p3_identity": 6,
    "derive_view_tag": 70,
}


def test_full_v018_file_passes_every_record_including_rng_kinds() -> None:
    report = run_vectors(vector_file("monero-crypto-tests.txt"))
    assert report.rng_mode is RngMode.REPRODUCE
    assert report.failed == 0, report.messages
    assert {k: c.passed + c.skipped for k, c in report.kinds.items()} == FULL_COUNTS
    # Only the ref10-internal kind is skipped; the RNG kinds are reproduced byte for byte.
    assert {k for k, c in report.kinds.items() if c.skipped} == {"check_ge_p3_identity"}
    assert report.passed == 5539 and report.skipped == 6


def test_2026_sample_has_no_mismatch() -> None:
    """Every record of the 2026 sample checks out; its cut-off lines are reported as malformed.

    The shared sample carries 12 lines cut mid-record at the edges of the windows it was taken
    from. The runner must count them apart from failures, and only lines that really are cut
    may be counted so: each deterministic one is a strict prefix of a record of the v0.18 file.
    """
    path = vector_file("monero-crypto-tests-sample.txt")
    report = run_vectors(path)
    assert report.rng_mode is RngMode.VERIFY
    assert report.failed == 0, report.messages
    malformed = [m for m in report.messages if "malformed line" in m]
    assert report.malformed == len(malformed) == 12
    lines = path.read_text().splitlines()
    full = vector_file("monero-crypto-tests.txt").read_text()
    rng_kinds = {"random_scalar", "generate_keys", "generate_signature", "generate_ring_signature"}
    for message in malformed:
        number = int(re.match(r"line (\d+):", message).group(1))  # type: ignore[union-attr]
        line = lines[number - 1]
        kind = line.split()[0]
        if kind not in rng_kinds:
            assert ("\n" + line) in full and ("\n" + line + "\n") not in full, line
    assert report.kinds["biased_hash_to_ec"].passed == 108
    assert report.kinds["generate_ring_signature"].passed >= 30
    assert report.kinds["check_ring_signature"].failed == 0
    assert report.kinds["random_scalar"].skipped == 94
    out = io.StringIO()
    assert main_vectors(str(path), out) == 0
    assert re.fullmatch(r"\d+ passed, 0 failed, 94 skipped, 12 malformed lines",
                        out.getvalue().splitlines()[-1])


def test_cli_output_format_and_exit_code() -> None:
    lines = [
        "check_scalar 0000000000000000000000000000000000000000000000000000000000000000 true",
        "check_scalar ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff true",
        "hash_to_scalar x c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470",
        "check_ge_p3_identity 00 false true",
    ]
    report = check_lines(lines, RngMode.REPRODUCE)
    text = report.lines()
    assert text[-1] == "1 passed, 2 failed, 0 skipped, 1 malformed lines"
    assert re.match(r"^\d+ passed, \d+ failed", text[-1])
    assert "check_scalar: 1 passed, 1 failed, 0 skipped" in text
    assert any("line 2: check_scalar: mismatch" in t for t in text)
    assert any("line 4: check_ge_p3_identity: malformed" in t for t in text)


def test_main_vectors_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("check_key 0100000000000000000000000000000000000000000000000000000000000000 true\n")
    out = io.StringIO()
    assert main_vectors(str(good), out) == 0
    assert out.getvalue().splitlines()[-1] == "1 passed, 0 failed, 0 skipped"
    bad = tmp_path / "bad.txt"
    bad.write_text("check_key 0100000000000000000000000000000000000000000000000000000000000000 false\n")
    assert main_vectors(str(bad), io.StringIO()) == 1
    assert main_vectors(str(tmp_path / "missing.txt"), io.StringIO()) == 2


def test_malformed_lines_are_counted_and_unknown_kinds_fail() -> None:
    lines = ["frobnicate 00", "check_key zz true", "check_ring_signature 00 00 9999", "",
             "derive_view_tag " + "00" * 32 + " -1 00", "check_key",
             "derive_view_tag " + "00" * 32 + " " + "9" * 5000 + " 00"]
    report = check_lines(lines, RngMode.REPRODUCE)
    assert report.failed == 1 and report.malformed == 5 and report.passed == 0
    assert len(report.messages) == 6


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=5), st.sampled_from(list(RngMode)))
def test_arbitrary_lines_never_crash_the_runner(lines: list[str], mode: RngMode) -> None:
    report = check_lines(lines, mode)
    assert report.passed + report.failed + report.skipped <= len(lines)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(FULL_COUNTS) + ["biased_hash_to_ec", "point_to_wei_x_y",
                                                "derive_key_image_generator"]),
       st.lists(st.one_of(st.binary(max_size=40).map(bytes.hex),
                          st.sampled_from(["true", "false", "x", "1", "0", "3"])), max_size=8))
def test_every_kind_survives_garbage_fields(kind: str, fields: list[str]) -> None:
    report = check_lines([" ".join([kind, *fields])], RngMode.VERIFY)
    assert report.passed + report.failed + report.skipped + report.malformed == 1


def test_rng_mode_detection() -> None:
    assert detect_rng_mode(["hash_to_ec aa bb"]) is RngMode.REPRODUCE
    assert detect_rng_mode(["check_key aa true", "biased_hash_to_ec aa bb"]) is RngMode.VERIFY


# -- Keccak-f[1600] and the test RNG -------------------------------------------------------

def _keccak256_one_block(message: bytes) -> bytes:
    # Original Keccak padding (0x01 … 0x80) into one 136-byte block, then one permutation.
    assert len(message) < 136
    block = bytearray(message + b"\x01" + bytes(135 - len(message)))
    block[135] ^= 0x80
    return keccak_f1600(bytes(block) + bytes(64))[:32]


@pytest.mark.parametrize("message", [b"", b"abc", bytes(range(135))])
def test_keccak_f1600_agrees_with_keccak256(message: bytes) -> None:
    assert _keccak256_one_block(message) == cn_fast_hash(message)


def test_keccak_test_rng_streams_rate_sized_chunks() -> None:
    rng = KeccakTestRng()
    first = rng(32)
    again = KeccakTestRng()
    assert again(136)[:32] == first
    long = KeccakTestRng()(200)  # two permutations: 136 bytes, then 64
    s1 = keccak_f1600(b"\x2a" * 200)
    assert long == s1[:136] + keccak_f1600(s1)[:64]


# -- the two kinds only the 2026 revision has ------------------------------------------------

A = 486662


def test_wei25519_constant_is_a_square_root_of_minus_a_plus_2() -> None:
    c = 0x70D9120B9F5FF9442D84F723FC03B0813A5E2C2EB482E57D3391FB5500BA81E7
    assert c * c % P == (-(A + 2)) % P


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_point_to_wei_x_y_lands_on_wei25519(seed: bytes) -> None:
    point = Scalar.reduce(seed).mul_base() if any(seed) else G
    wx, wy = point_to_wei_x_y(point)
    a = (3 - A * A) * pow(3, -1, P) % P
    b = (2 * A**3 - 9 * A) * pow(27, -1, P) % P
    assert wy * wy % P == (wx**3 + a * wx + b) % P


def test_key_image_generator_biased_is_hash_to_ec_and_unbiased_differs() -> None:
    pub = os_rng(32)
    assert derive_key_image_generator(pub, True) == hash_to_point(pub)
    unbiased = derive_key_image_generator(pub, False)
    assert unbiased != hash_to_point(pub)
    assert unbiased.in_subgroup
    # Fixed input, fixed output: the derivation is a pure function of the bytes.
    assert derive_key_image_generator(bytes(32), False) == derive_key_image_generator(
        bytes(32), False)


def test_outcome_values_are_the_report_words() -> None:
    assert [o.value for o in Outcome] == ["passed", "failed", "skipped"]
