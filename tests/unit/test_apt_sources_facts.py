# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for library/apt_sources_facts.py.

Three kinds of evidence that the parser and the judge are right:

* pure functions on hand-written sources, keys and command output;
* apt itself as the oracle: a private apt root in a temporary folder
  (APT_CONFIG), where the real ``apt-get indextargets`` must agree with the
  parser, and the real ``apt-get update`` probe runs against a local
  ``file:`` repository (no network) and must leave the lists folder alone;
* gpg as the oracle for OpenPGP fingerprints, where gpg is installed.
"""

import base64
import hashlib
import json
import os
import shutil
import subprocess

import pytest

from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.airgap_evidence import validate_record

import apt_sources_facts as asf

MIRROR = "http://mirror.lab.internal/debian"
KEYRING = "/etc/apt/keyrings/airgap-mirror.gpg"

# A throwaway ed25519 key with a cv25519 subkey, made with gpg for these tests
# (a test double: it signs nothing). gpg printed these fingerprints.
TEST_KEY_ASC = """-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEawN79RYJKwYBBAHaRw8BAQdAz/tylhogi+iBTvkZXPylCVgux/jVspJCNTIi
cHo8f3C0NmFpcmdhcCB1bml0IHRlc3Qga2V5IChURVNUIERPVUJMRSkgPHRlc3RA
bGFiLmludGVybmFsPoiQBBMWCAA4FiEExWf0xtb/l2K5fq5k99F78qf8rIMFAmsD
e/UCGwMFCwkIBwIGFQoJCAsCBBYCAwECHgECF4AACgkQ99F78qf8rINd8QD/eakS
DxxtXqYaPYFGNzVRp72NTwGpiUKvrSJ2O8GlC6EBAJ2Dk0UaCOMPM/TZhrFRtSEA
6ZizsUYrf90NGkUip+YGuDgEawN79hIKKwYBBAGXVQEFAQEHQJH7aU7GMaiYufC8
axGukf3vHL1xV9ycdE3r8O7m53xBAwEIB4h4BBgWCAAgFiEExWf0xtb/l2K5fq5k
99F78qf8rIMFAmsDe/YCGwwACgkQ99F78qf8rIMTVwEAh0vDi7pLTFeal+QHGasO
6r4Ipa2cHFJTgLGke/nzzpgBAJf9b5KC3bCKxYqWc6ybhmFgMfv3ASx2Pkypxtwx
skAF
=SrLs
-----END PGP PUBLIC KEY BLOCK-----
"""
TEST_KEY_FPR = "C567F4C6D6FF9762B97EAE64F7D17BF2A7FCAC83"
TEST_SUBKEY_FPR = "00D661344DBC7AEF026B4201EA070B9CF337F185"
TEST_KEY_UID = "airgap unit test key (TEST DOUBLE) <test@lab.internal>"
TEST_KEY_BINARY_SHA256 = "cf28ea77b98146d53a60195b4f6397f9d0b29fc6260163ca01e2c7c0409616ec"


def key_binary():
    """The binary form of TEST_KEY_ASC (what `gpg --export` without --armor writes)."""
    return asf.dearmor(TEST_KEY_ASC)


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    with open(str(path), "wb") as handle:
        handle.write(data)
    os.chmod(str(path), mode)
    return str(path)


# --------------------------------------------------------------------------
# One-line format
# --------------------------------------------------------------------------

def test_one_line_entries_options_and_comments():
    text = (
        "# the installer's sources\n"
        "deb http://deb.debian.org/debian bookworm main contrib  # trailing comment\n"
        "deb-src http://deb.debian.org/debian bookworm main\n"
        "#deb http://disabled.example/debian bookworm main\n"
        "deb [ arch=amd64,arm64 signed-by=/usr/share/keyrings/v.gpg ] https://v.example/apt/ stable main\n"
        "deb [trusted=yes] file:/srv/flat ./\n"
        "\n"
    )
    entries, errors = asf.parse_one_line(text, "/etc/apt/sources.list")
    assert errors == []
    assert [(e["line"], e["types"], e["uris"], e["suites"], e["components"]) for e in entries] == [
        (2, ["deb"], ["http://deb.debian.org/debian"], ["bookworm"], ["main", "contrib"]),
        (3, ["deb-src"], ["http://deb.debian.org/debian"], ["bookworm"], ["main"]),
        (5, ["deb"], ["https://v.example/apt"], ["stable"], ["main"]),
        (6, ["deb"], ["file:/srv/flat"], ["./"], []),
    ]
    vendor = entries[2]
    assert vendor["signed_by"] == ["/usr/share/keyrings/v.gpg"]
    assert vendor["options"]["arch"] == ["amd64", "arm64"]
    assert entries[3]["trusted"] is True and entries[0]["trusted"] is False


def test_one_line_errors_name_file_and_line():
    text = "deb http://x.example/debian bookworm\nrpm http://x.example/ el9 os\ndeb [signed-by] http://x bookworm main\n"
    entries, errors = asf.parse_one_line(text, "/etc/apt/sources.list.d/bad.list")
    assert entries == [] or all(e["line"] == 3 for e in entries)
    assert "/etc/apt/sources.list.d/bad.list:1: suite 'bookworm' needs at least one component" in errors
    assert any(e.startswith("/etc/apt/sources.list.d/bad.list:2: not a valid source line") for e in errors)
    assert "/etc/apt/sources.list.d/bad.list:3: option 'signed-by' has no value" in errors


# --------------------------------------------------------------------------
# deb822 format
# --------------------------------------------------------------------------

DEB822 = """# Debian's archive
Types: deb deb-src
URIs: http://deb.debian.org/debian https://backup.example/debian/
Suites: bookworm bookworm-updates
Components: main non-free-firmware
# a comment inside the stanza
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

types: deb
uris: http://disabled.example/debian
suites: bookworm
components: main
enabled: no

Types: deb
URIs: file:/srv/flat
Suites: ./
Trusted: yes
"""


def test_deb822_stanzas_fields_and_disabled():
    entries, disabled, errors = asf.parse_deb822(DEB822, "/etc/apt/sources.list.d/debian.sources")
    assert errors == []
    first = entries[0]
    assert first["line"] == 2 and first["format"] == "deb822"
    assert first["types"] == ["deb", "deb-src"]
    assert first["uris"] == ["http://deb.debian.org/debian", "https://backup.example/debian"]
    assert first["suites"] == ["bookworm", "bookworm-updates"]
    assert first["components"] == ["main", "non-free-firmware"]
    assert first["signed_by"] == ["/usr/share/keyrings/debian-archive-keyring.gpg"]
    assert [d["uris"] for d in disabled] == [["http://disabled.example/debian"]]
    assert entries[1]["uris"] == ["file:/srv/flat"] and entries[1]["trusted"] is True
    assert entries[1]["components"] == []


def test_deb822_inline_key_is_identified_by_hash():
    inline = "\n".join(" " + (line or ".") for line in TEST_KEY_ASC.strip().splitlines())
    text = "Types: deb\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By:\n%s\n" % (MIRROR, inline)
    entries, _disabled, errors = asf.parse_deb822(text, "/x.sources")
    assert errors == []
    assert entries[0]["signed_by"][0].startswith("inline:")
    keys, warnings, _secret = asf.describe_key_data(asf.dearmor(entries[0]["inline_key"]))
    assert warnings == [] and keys[0]["fingerprint"] == TEST_KEY_FPR


@pytest.mark.parametrize("text, message", [
    ("Types: deb\nURIs: http://x.example/debian\nComponents: main\n", "stanza lacks Suites"),
    ("Types: deb\nURIs: http://x.example/debian\nSuites: bookworm\n", "Components is required"),
    (" continued\nTypes: deb\n", "continuation line outside a field"),
    ("Types deb\n", "not a 'Field: value' line"),
])
def test_deb822_errors(text, message):
    entries, _disabled, errors = asf.parse_deb822(text, "/etc/apt/sources.list.d/bad.sources")
    assert entries == []
    assert len(errors) == 1 and message in errors[0] and errors[0].startswith("/etc/apt/sources.list.d/bad.sources")


def test_read_sources_reads_what_apt_reads(tmp_path):
    parts = tmp_path / "sources.list.d"
    write(tmp_path / "sources.list", "deb http://a.example/debian bookworm main\n")
    write(parts / "b.sources", "Types: deb\nURIs: http://b.example/debian\nSuites: bookworm\nComponents: main\n")
    write(parts / "c.list", "deb http://c.example/debian bookworm main\n")
    write(parts / "c.list.save", "deb http://saved.example/debian bookworm main\n")
    write(parts / "bad name.list", "deb http://spaced.example/debian bookworm main\n")
    write(parts / "broken.sources", "Types: deb\n")
    got = asf.read_sources(str(tmp_path / "sources.list"), str(parts))
    assert asf.source_uris(got["entries"]) == ["http://a.example/debian", "http://b.example/debian", "http://c.example/debian"]
    assert sorted(os.path.basename(p) for p in got["files"]["ignored"]) == ["bad name.list", "c.list.save"]
    assert len(got["files"]["errors"]) == 1 and "broken.sources" in got["files"]["errors"][0]
    assert str(parts / "broken.sources") in got["files"]["read"]


def test_read_sources_without_any_file(tmp_path):
    got = asf.read_sources(str(tmp_path / "missing.list"), str(tmp_path / "missing.d"))
    assert got["entries"] == [] and got["files"] == {"read": [], "ignored": [], "errors": []}


# --------------------------------------------------------------------------
# Keyrings
# --------------------------------------------------------------------------

def test_armored_key_fingerprints_subkeys_and_uid(tmp_path):
    info = asf.describe_keyring(write(tmp_path / "k.asc", TEST_KEY_ASC))
    assert info["format"] == "armored" and info["warnings"] == []
    assert info["sha256"] == hashlib.sha256(TEST_KEY_ASC.encode()).hexdigest()
    assert info["keys"] == [{"fingerprint": TEST_KEY_FPR, "version": 4, "subkeys": [TEST_SUBKEY_FPR],
                             "uids": [TEST_KEY_UID]}]
    assert info["secret_material"] is False


def test_binary_key_is_the_same_key(tmp_path):
    info = asf.describe_keyring(write(tmp_path / "k.gpg", key_binary()))
    assert info["format"] == "binary"
    assert info["sha256"] == TEST_KEY_BINARY_SHA256
    assert [k["fingerprint"] for k in info["keys"]] == [TEST_KEY_FPR]


def test_keybox_garbage_and_missing_files(tmp_path):
    keybox = asf.describe_keyring(write(tmp_path / "pubring.kbx", b"\x00\x00\x00\x20\x01\x01\x00\x00KBXf" + b"\x00" * 20))
    assert keybox["format"] == "keybox" and "keybox" in keybox["warnings"][0]
    garbage = asf.describe_keyring(write(tmp_path / "g.gpg", b"\x01\x02\x03 not a key"))
    assert garbage["keys"] == [] and any("not a valid OpenPGP keyring" in w for w in garbage["warnings"])
    truncated = asf.describe_keyring(write(tmp_path / "t.gpg", key_binary()[:40]))
    assert any("truncated" in w for w in truncated["warnings"])
    assert asf.describe_keyring(str(tmp_path / "none.gpg"))["exists"] is False


def test_secret_key_packet_is_flagged():
    # An old-format header for tag 5 (secret key) with a one-byte length.
    secret_packet = bytes([0x80 | (5 << 2), 3, 4, 0, 0])
    _keys, _warnings, secret = asf.describe_key_data(key_binary() + secret_packet)
    assert secret is True


def test_new_format_long_lengths_parse():
    # A user id packet of 300 bytes with a two-octet new-format length.
    body = b"u" * 300
    first = ((len(body) - 192) >> 8) + 192
    second = (len(body) - 192) & 0xFF
    packets = list(asf.iter_packets(bytes([0xC0 | 13, first, second]) + body))
    assert packets == [(13, body)]
    five = list(asf.iter_packets(bytes([0xC0 | 13, 255]) + len(body).to_bytes(4, "big") + body))
    assert five == [(13, body)]


@pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed (the controller's make setup installs it)")
def test_fingerprints_agree_with_gpg_on_a_fresh_key(tmp_path):
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key",
                    "fresh test double <t@lab.internal>", "rsa2048", "sign", "never"],
                   check=True, env=env, capture_output=True)
    listing = subprocess.run(["gpg", "--with-colons", "--list-keys"], check=True, env=env,
                             capture_output=True, text=True).stdout
    want = [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]
    exported = subprocess.run(["gpg", "--export"], check=True, env=env, capture_output=True).stdout
    keys, warnings, _secret = asf.describe_key_data(exported)
    assert warnings == []
    assert [k["fingerprint"] for k in keys] == want[:1]


# --------------------------------------------------------------------------
# Command output
# --------------------------------------------------------------------------

def test_parse_indextargets_unique_repositories():
    text = ("http://mirror.lab.internal/debian/\tbookworm\tdeb\t/etc/apt/sources.list.d/airgap-mirror.sources:1\n"
            "http://mirror.lab.internal/debian/\tbookworm\tdeb\t/etc/apt/sources.list.d/airgap-mirror.sources:1\n"
            "file:/srv/sneak/\t./\tdeb\t/etc/apt/sources.list.d/sneak.list:1\n"
            "garbage line\n")
    assert asf.parse_indextargets(text) == [
        {"uri": MIRROR, "suite": "bookworm", "type": "deb", "entry": "/etc/apt/sources.list.d/airgap-mirror.sources:1"},
        {"uri": "file:/srv/sneak", "suite": "./", "type": "deb", "entry": "/etc/apt/sources.list.d/sneak.list:1"},
    ]


def test_parse_dpkg_query_and_showhold():
    text = "bash\t5.2.15-2+b13\tinstall ok installed\nhello\t2.10-3\thold ok installed\ngone\t1.0\tdeinstall ok config-files\n"
    got = asf.parse_dpkg_query(text)
    assert got["hello"] == {"version": "2.10-3", "selection": "hold", "status": "hold ok installed"}
    assert got["bash"]["selection"] == "install"
    assert got["gone"]["version"] is None
    assert asf.parse_showhold("hello\nnvidia-driver\n\nhello\n") == ["hello", "nvidia-driver"]


def test_parse_update_output():
    text = ("Get:1 file:/srv/sneak ./ InRelease\nIgn:1 file:/srv/sneak ./ InRelease\n"
            "Hit:2 http://mirror.lab.internal/debian bookworm InRelease\n"
            "Err:3 http://deb.debian.org/debian bookworm InRelease\n  Temporary failure resolving 'deb.debian.org'\n"
            "W: Some warning\n"
            "E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  Temporary failure\n")
    got = asf.parse_update_output(text)
    assert got["contacted"] == ["file:/srv/sneak", MIRROR, "http://deb.debian.org/debian"]
    assert got["failed_items"] == ["Err:3 http://deb.debian.org/debian bookworm InRelease"]
    assert len(got["errors"]) == 1 and got["errors"][0].startswith("E: Failed to fetch")
    assert got["warnings"] == ["W: Some warning"]


def test_probe_config_keeps_the_host_lists_and_hooks_out():
    text = asf.probe_config("/tmp/x/lists", 7)
    for line in ("#clear APT::Update::Post-Invoke-Success;", "#clear APT::Update::Post-Invoke;",
                 "#clear APT::Update::Pre-Invoke;", 'Dir::State::Lists "/tmp/x/lists/";',
                 'Dir::Cache::pkgcache "";', 'APT::Update::Error-Mode "any";', 'Acquire::http::Timeout "7";'):
        assert line in text.splitlines()


# --------------------------------------------------------------------------
# The REPO-MIRROR-ONLY judge
# --------------------------------------------------------------------------

def mirror_entry(**over):
    entry = {"file": "/etc/apt/sources.list.d/airgap-mirror.sources", "line": 3, "format": "deb822",
             "types": ["deb"], "uris": [MIRROR], "suites": ["bookworm"], "components": ["main"],
             "signed_by": [KEYRING], "trusted": False, "options": {}}
    entry.update(over)
    return entry


def good_observed(**over):
    observed = {
        "sources": [mirror_entry()],
        "files": {"read": ["/etc/apt/sources.list.d/airgap-mirror.sources"], "ignored": [], "errors": []},
        "apt_view": [{"uri": MIRROR, "suite": "bookworm", "type": "deb", "entry": "x:1"}],
        "apt_view_error": None,
        "holds": ["hello"],
        "packages": {"hello": {"version": "2.10-3", "selection": "hold", "status": "hold ok installed"}},
        "package_error": None,
        "keyrings": {KEYRING: {"path": KEYRING, "exists": True, "sha256": TEST_KEY_BINARY_SHA256, "format": "binary",
                               "keys": [{"fingerprint": TEST_KEY_FPR}], "secret_material": False,
                               "owner_uid": 0, "mode": "0644", "world_writable": False}},
        "trusted_keyrings": [],
        "update_probe": {"ran": True, "rc": 0, "ok": True, "contacted": [MIRROR], "errors": []},
    }
    observed.update(over)
    return observed


def expect(**over):
    data = {"uri": MIRROR, "suites": ["bookworm"], "components": ["main"], "signed_by": KEYRING,
            "key_sha256": TEST_KEY_BINARY_SHA256, "held_packages": [{"name": "hello", "version": "2.10-3"}],
            "managed_files": {}}
    data.update(over)
    return data


def statuses(record):
    return dict((c["check"], c["status"]) for c in record["evidence"]["checks"])


def test_record_passes_on_the_declared_state():
    record = asf.build_record(good_observed(), expect())
    validate_record(record)
    assert record["id"] == "REPO-MIRROR-ONLY" and record["role"] == "airgap_repos"
    assert record["status"] == "pass", record["evidence"]["result"]
    assert set(statuses(record).values()) == {"pass"}
    assert record["evidence"]["keyring"]["keys"][0]["fingerprint"] == TEST_KEY_FPR


@pytest.mark.parametrize("observed, check, words", [
    (good_observed(sources=[mirror_entry(), mirror_entry(file="/etc/apt/sources.list", line=1,
                                                         uris=["http://deb.debian.org/debian"])]),
     "sources", "/etc/apt/sources.list:1: http://deb.debian.org/debian is not the internal mirror"),
    (good_observed(sources=[mirror_entry(suites=["bookworm", "sid"])]), "sources", "suites ['sid'] not declared"),
    (good_observed(sources=[mirror_entry(components=["main", "non-free"])]), "sources", "components ['non-free']"),
    (good_observed(sources=[]), "sources", "no enabled apt source at all"),
    (good_observed(apt_view=[{"uri": "http://hidden.example/debian", "suite": "x", "type": "deb", "entry": "/y:4"}]),
     "sources", "apt uses http://hidden.example/debian x (/y:4)"),
    (good_observed(files={"read": [], "ignored": [], "errors": ["/z.sources: line 1: broken"]}), "sources", "unreadable source"),
    (good_observed(sources=[mirror_entry(signed_by=[])]), "signed_by", "Signed-By is missing"),
    (good_observed(sources=[mirror_entry(trusted=True, options={"trusted": ["yes"]})]), "signed_by", "trusted weakens"),
    (good_observed(sources=[mirror_entry(options={"allow-insecure": ["yes"]})]), "signed_by", "allow-insecure weakens"),
    (good_observed(keyrings={}), "signing_key", "does not exist"),
    (good_observed(update_probe={"ran": True, "rc": 100, "ok": False, "contacted": [MIRROR], "errors": ["E: bad sig"]}),
     "update_probe", "E: bad sig"),
    (good_observed(update_probe={"ran": True, "rc": 0, "ok": True, "contacted": [], "errors": []}),
     "update_probe", "nothing was fetched"),
    (good_observed(update_probe={"ran": True, "rc": 0, "ok": True, "contacted": [MIRROR, "http://x.example/d"], "errors": []}),
     "update_probe", "contacted http://x.example/d besides the mirror"),
    (good_observed(holds=[], packages={"hello": {"version": "2.10-3", "selection": "install"}}),
     "held_packages", "hello is not held"),
    (good_observed(packages={"hello": {"version": "2.11-1", "selection": "hold"}}), "held_packages", "hello is at 2.11-1, not 2.10-3"),
    (good_observed(packages={}), "held_packages", "hello is not installed"),
])
def test_record_fails_on_each_deviation(observed, check, words):
    record = asf.build_record(observed, expect())
    assert record["status"] == "fail"
    assert statuses(record)[check] == "fail"
    detail = [c for c in record["evidence"]["checks"] if c["check"] == check][0]["detail"]
    assert words in detail
    assert words in record["evidence"]["result"]


@pytest.mark.parametrize("change, words", [
    ({"sha256": "0" * 64}, "is not the pinned"),
    ({"format": "armored"}, "must be named *.asc"),
    ({"format": "keybox"}, "keybox format"),
    ({"keys": []}, "no public key"),
    ({"secret_material": True}, "secret key material"),
    ({"owner_uid": 1000}, "must be owned by root"),
    ({"world_writable": True, "mode": "0666"}, "not world-writable"),
])
def test_signing_key_deviations(change, words):
    observed = good_observed()
    observed["keyrings"][KEYRING].update(change)
    record = asf.build_record(observed, expect())
    assert statuses(record)["signing_key"] == "fail" and words in record["evidence"]["result"]


def test_key_without_declared_pin_fails():
    record = asf.build_record(good_observed(), expect(key_sha256=""))
    assert statuses(record)["signing_key"] == "fail" and "no expected sha256" in record["evidence"]["result"]


def test_apt_view_failure_is_an_error_not_a_pass():
    record = asf.build_record(good_observed(apt_view=None, apt_view_error="apt-get indextargets failed (rc 100): x"), expect())
    assert record["status"] == "error"
    assert statuses(record)["sources"] == "error"


def test_package_query_failure_is_an_error():
    record = asf.build_record(good_observed(package_error="dpkg-query failed (rc 2): x"), expect())
    assert record["status"] == "error"


def test_skipped_probe_does_not_decide_but_is_recorded():
    record = asf.build_record(good_observed(update_probe={"ran": False, "contacted": [], "errors": []}), expect())
    assert record["status"] == "pass"
    assert statuses(record)["update_probe"] == "skipped"


def test_no_held_packages_declared():
    record = asf.build_record(good_observed(holds=[], packages={}), expect(held_packages=[]))
    assert record["status"] == "pass"


def test_held_package_without_version_needs_only_the_hold():
    observed = good_observed(packages={"hello": {"version": "2.99", "selection": "hold"}})
    assert asf.build_record(observed, expect(held_packages=[{"name": "hello", "version": None}]))["status"] == "pass"


def test_managed_file_drift(tmp_path):
    same = write(tmp_path / "a.pref", "Package: *\n")
    other = write(tmp_path / "b.conf", "changed\n")
    files = {same: "Package: *\n", other: "original\n", str(tmp_path / "missing"): "x"}
    record = asf.build_record(good_observed(), expect(managed_files=files))
    detail = [c for c in record["evidence"]["checks"] if c["check"] == "managed_files"][0]["detail"]
    assert record["status"] == "fail"
    assert "b.conf differs" in detail and "missing is missing" in detail and "a.pref" not in detail


@pytest.mark.parametrize("bad, words", [
    ({"uri": "mirror"}, "expect.uri"),
    ({"signed_by": "relative.gpg"}, "expect.signed_by"),
    ({"suites": "bookworm"}, "expect.suites must be a list"),
    ({"held_packages": [{"version": "1"}]}, "expect.held_packages[0]"),
    ({"managed_files": ["x"]}, "expect.managed_files"),
])
def test_validate_expect(bad, words):
    assert words in asf.validate_expect(expect(**bad))
    assert asf.validate_expect(expect()) is None and asf.validate_expect(None) is None


# --------------------------------------------------------------------------
# The module on a private apt root: real apt-config, apt-get and apt-mark
# --------------------------------------------------------------------------

needs_apt = pytest.mark.skipif(shutil.which("apt-get") is None or os.geteuid() != 0,
                               reason="needs Debian's apt and root (the project's machines have both)")


@pytest.fixture
def apt_root(tmp_path, monkeypatch):
    """A private apt configuration (APT_CONFIG) under tmp_path; the host's apt is not read or written.

    It has a local flat repository (file:, no network) with one package.
    Returns a dict of its paths.
    """
    root = tmp_path / "apt"
    etc, state, cache, repo = root / "etc", root / "state", root / "cache", root / "repo"
    for folder in (etc / "sources.list.d", etc / "apt.conf.d", etc / "preferences.d", etc / "trusted.gpg.d",
                   state / "lists" / "partial", cache / "archives" / "partial", repo):
        folder.mkdir(parents=True)
    write(state / "status", "")
    write(repo / "Packages", "Package: testdouble\nVersion: 1.0\nArchitecture: all\nFilename: ./testdouble_1.0_all.deb\n"
                             "Size: 1\nSHA256: %s\nDescription: test double\n\n" % ("0" * 64))
    conf = write(root / "apt.conf", "\n".join([
        'Dir::Etc "%s/";' % etc, 'Dir::Etc::Parts "%s/apt.conf.d/";' % etc, 'Dir::Etc::main "/dev/null";',
        'Dir::State "%s/";' % state, 'Dir::State::status "%s/status";' % state, 'Dir::Cache "%s/";' % cache,
        'APT::Sandbox::User "root";', 'Acquire::Languages "none";', ""]))
    monkeypatch.setenv("APT_CONFIG", conf)
    for path in (root, etc, state, state / "lists", repo):
        os.chmod(str(path), 0o755)
    return {"root": root, "etc": etc, "lists": state / "lists", "repo": repo}


def run_module(args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            asf.main()
    return json.loads(capsys.readouterr().out)


@needs_apt
def test_parser_agrees_with_apt_indextargets(apt_root, capsys):
    write(apt_root["etc"] / "sources.list", "deb http://a.example/debian bookworm main contrib\n"
                                            "deb-src http://a.example/debian bookworm main\n")
    write(apt_root["etc"] / "sources.list.d" / "multi.sources",
          "Types: deb\nURIs: http://b.example/debian http://c.example/debian\nSuites: bookworm bookworm-updates\n"
          "Components: main\n\nTypes: deb\nURIs: http://off.example/debian\nSuites: x\nComponents: main\nEnabled: no\n")
    write(apt_root["etc"] / "sources.list.d" / "flat.list", "deb [trusted=yes] file:%s ./\n" % apt_root["repo"])
    result = run_module({}, capsys)
    assert result["dirs"]["sources_parts"] == str(apt_root["etc"] / "sources.list.d")
    apt_pairs = sorted(set((r["uri"], r["suite"]) for r in result["apt_view"] if r["type"] == "deb"))
    parsed_pairs = sorted(set((u, s) for e in result["sources"] if "deb" in e["types"]
                              for u in e["uris"] for s in e["suites"]))
    assert parsed_pairs == apt_pairs
    assert ("http://off.example/debian", "x") not in apt_pairs
    assert len(apt_pairs) == 6
    assert result["changed"] is False


@needs_apt
def test_update_probe_uses_a_private_lists_folder(apt_root, capsys):
    write(apt_root["etc"] / "sources.list", "deb [trusted=yes] file:%s ./\n" % apt_root["repo"])
    before = sorted(os.listdir(str(apt_root["lists"])))
    result = run_module({"update_probe": True, "_ansible_check_mode": True}, capsys)
    probe = result["update_probe"]
    assert probe["ran"] and probe["ok"], probe
    assert probe["contacted"] == ["file:%s" % apt_root["repo"]]
    assert sorted(os.listdir(str(apt_root["lists"]))) == before
    assert not [n for n in os.listdir("/tmp") if n.startswith("airgap-apt-probe-") and
                os.path.getmtime(os.path.join("/tmp", n)) > os.path.getmtime(str(apt_root["root"]))]


@needs_apt
def test_update_probe_fails_on_an_unsigned_source(apt_root, capsys):
    write(apt_root["etc"] / "sources.list", "deb file:%s ./\n" % apt_root["repo"])
    result = run_module({"update_probe": True}, capsys)
    assert result["update_probe"]["ok"] is False
    assert result["update_probe"]["errors"]


@needs_apt
def test_module_builds_a_failing_record_for_a_foreign_source(apt_root, capsys, tmp_path):
    keyring = write(tmp_path / "keyrings" / "airgap-mirror.gpg", key_binary())
    write(apt_root["etc"] / "sources.list.d" / "airgap-mirror.sources",
          "Types: deb\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: %s\n" % (MIRROR, keyring))
    write(apt_root["etc"] / "sources.list.d" / "vendor.list", "deb https://vendor.example/apt stable main\n")
    result = run_module({"expect": expect(signed_by=keyring, held_packages=[])}, capsys)
    record = result["record"]
    validate_record(record)
    assert result["status"] == record["status"] == "fail"
    assert "vendor.list:1: https://vendor.example/apt is not the internal mirror" in record["evidence"]["result"]
    assert statuses(record)["signing_key"] == "pass"
    assert record["evidence"]["keyring"]["keys"][0]["fingerprint"] == TEST_KEY_FPR


def test_module_rejects_bad_parameters(capsys):
    assert "update_timeout" in run_module({"update_timeout": 0}, capsys)["msg"]
    assert "expect.uri" in run_module({"expect": {"uri": "x", "signed_by": "/k"}}, capsys)["msg"]


def test_armor_round_trip_matches_the_embedded_binary():
    assert base64.b64encode(key_binary()).decode()[:20] == "mDMEawN79RYJKwYBBAHa"
