# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for filter_plugins/airgap_repos_filters.py: validation and the files the role writes.

The rendered apt source is read back with the module's own parser and, where
apt is installed, by apt itself (``apt-get indextargets`` on a private apt
root), so "the role writes what verify expects" is checked by the reader
that matters.
"""

import hashlib
import os
import shutil
import subprocess

import pytest
from ansible.errors import AnsibleFilterError

import airgap_repos_filters as arf
import apt_sources_facts as asf
from ansible.module_utils.airgap_evidence import validate_record

DEBIAN_PATHS = {
    "keyring_dir": "/etc/apt/keyrings", "key_name": "airgap-mirror",
    "source_file": "/etc/apt/sources.list.d/airgap-mirror.sources", "sources_list": "/etc/apt/sources.list",
    "preferences_file": "/etc/apt/preferences.d/00-airgap-mirror.pref",
    "apt_conf_file": "/etc/apt/apt.conf.d/99airgap-mirror", "lists_dir": "/var/lib/apt/lists",
}
REDHAT_PATHS = {"keyring_dir": "/etc/pki/rpm-gpg", "key_name": "airgap-mirror",
                "repo_dir": "/etc/yum.repos.d", "repo_file": "/etc/yum.repos.d/airgap-mirror.repo"}
PIN = "a" * 64
ARMORED = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ\n=abcd\n-----END PGP PUBLIC KEY BLOCK-----\n"


def lab_inputs(**over):
    """The lab's values (molecule/airgap_repos/group_vars) with the role defaults."""
    inputs = {
        "airgap_repos_apt_path": "debian", "airgap_repos_suite": "bookworm", "airgap_repos_components": ["main"],
        "airgap_repos_key_url": "keys/airgap-lab-archive.gpg", "airgap_repos_key_sha256": PIN,
        "airgap_repos_key_content": "", "airgap_repos_held_packages": [{"name": "hello", "version": "2.10-3"}],
        "airgap_repos_remove_other_sources": True, "airgap_repos_install_recommends": False,
        "airgap_repos_dnf_repos": [{"name": "baseos", "path": "rhel/9/BaseOS/x86_64/os"}],
    }
    inputs.update(over)
    return inputs


def settings(mirror="http://mirror.lab.internal", family="Debian", **over):
    paths = DEBIAN_PATHS if family == "Debian" else REDHAT_PATHS
    return arf.airgap_repos_settings(mirror, lab_inputs(**over), paths, family)


def error_of(mirror="http://mirror.lab.internal", family="Debian", **over):
    with pytest.raises(AnsibleFilterError) as info:
        settings(mirror, family, **over)
    return str(info.value)


# --------------------------------------------------------------------------
# Valid input
# --------------------------------------------------------------------------

def test_lab_settings():
    got = settings()
    assert got["apt_uri"] == "http://mirror.lab.internal/debian"
    assert got["mirror_host"] == "mirror.lab.internal"
    assert got["key"] == {"source": "url", "url": "http://mirror.lab.internal/keys/airgap-lab-archive.gpg",
                          "content": None, "sha256": PIN, "armored": False,
                          "file": "/etc/apt/keyrings/airgap-mirror.gpg"}
    assert got["held"] == [{"name": "hello", "package": "hello", "arch": None, "version": "2.10-3", "spec": "hello=2.10-3"}]
    assert got["list_prefix"] == "mirror.lab.internal_debian_dists_bookworm_"


def test_mirror_url_normalised_and_key_url_absolute():
    got = settings("HTTPS://Mirror.Example.ORG:8443/hospital/", airgap_repos_key_url="https://mirror.example.org:8443/hospital/k/a.asc",
                   airgap_repos_key_sha256=PIN.upper())
    assert got["mirror_url"] == "https://mirror.example.org:8443/hospital"
    assert got["apt_uri"] == "https://mirror.example.org:8443/hospital/debian"
    assert got["key"]["url"] == "https://mirror.example.org:8443/hospital/k/a.asc"
    assert got["key"]["armored"] is True and got["key"]["file"].endswith(".asc")
    assert got["key"]["sha256"] == PIN
    assert got["list_prefix"] == "mirror.example.org:8443_hospital_debian_dists_bookworm_"


def test_inline_key_is_its_own_pin():
    got = settings(airgap_repos_key_url="", airgap_repos_key_sha256="", airgap_repos_key_content=ARMORED)
    assert got["key"]["source"] == "content"
    assert got["key"]["sha256"] == hashlib.sha256(ARMORED.encode()).hexdigest()
    assert got["key"]["file"] == "/etc/apt/keyrings/airgap-mirror.asc"
    assert arf.airgap_repos_files(got)["/etc/apt/keyrings/airgap-mirror.asc"] == ARMORED


def test_held_packages_forms():
    got = settings(airgap_repos_held_packages=["nvidia-smi", {"name": "libc6:amd64", "version": "2.36-9+deb12u4"},
                                               {"name": "pkg", "version": 2.1}, {"name": "epoch", "version": "1:2.0~rc1"}])
    assert [h["spec"] for h in got["held"]] == ["nvidia-smi", "libc6:amd64=2.36-9+deb12u4", "pkg=2.1", "epoch=1:2.0~rc1"]
    assert got["held"][1]["package"] == "libc6" and got["held"][1]["arch"] == "amd64"


def test_booleans_as_ansible_reads_them():
    got = settings(airgap_repos_remove_other_sources="no", airgap_repos_install_recommends="yes")
    assert got["remove_other_sources"] is False and got["install_recommends"] is True
    assert "/etc/apt/sources.list" not in arf.airgap_repos_files(got)


def test_flat_repository():
    got = settings(airgap_repos_suite="./", airgap_repos_components=[])
    assert "Components" not in arf.airgap_repos_files(got)[DEBIAN_PATHS["source_file"]]
    assert got["list_prefix"] == "mirror.lab.internal_debian_._"


def test_redhat_settings_and_spec():
    got = settings(family="RedHat", airgap_repos_key_url="keys/rpm.asc",
                   airgap_repos_held_packages=[{"name": "hello", "version": "2.10-3.el9"}])
    assert got["dnf_repos"] == [{"id": "airgap-baseos", "name": "baseos",
                                 "baseurl": "http://mirror.lab.internal/rhel/9/BaseOS/x86_64/os"}]
    assert got["held"][0]["spec"] == "hello-2.10-3.el9"
    assert got["key"]["file"] == "/etc/pki/rpm-gpg/airgap-mirror.asc"


# --------------------------------------------------------------------------
# Invalid input: every message names the variable
# --------------------------------------------------------------------------

@pytest.mark.parametrize("mirror", ["ftp://x", "x", "", None, 42, "http://", "file:///srv/mirror",
                                    "http://mirror lab", " http://m"])
def test_bad_mirror_url(mirror):
    assert "airgap_mirror_url must be an http:// or https:// URL with a host name" in error_of(mirror)


@pytest.mark.parametrize("mirror, words", [
    ("http://user:secret@mirror.lab.internal", "carries credentials"),
    ("http://mirror.lab.internal/?x=1", "must not have a query or fragment"),
    ("http://mirror.lab.internal/a/../b", "unusual path segment '..'"),
    ("http://mirror.lab.internal:99999", "is not a valid URL"),
])
def test_mirror_url_details(mirror, words):
    message = error_of(mirror)
    assert "airgap_mirror_url" in message and words in message


@pytest.mark.parametrize("key_url, words", [
    ("http://keys.example.org/archive.gpg", "airgap_repos_key_url 'http://keys.example.org/archive.gpg' is not on the internal mirror"),
    ("http://mirror.lab.internal.evil.example/k.gpg", "is not on the internal mirror"),
    ("http://mirror.lab.internal:8080/k.gpg", "is not on the internal mirror"),
    ("ftp://mirror.lab.internal/k.gpg", "must be http:// or https:// on the internal mirror"),
    ("http://mirror.lab.internal/../k.gpg", "is not on the internal mirror"),
    ("../k.gpg", "airgap_repos_key_url '../k.gpg' has an invalid path segment '..'"),
])
def test_key_url_must_be_on_the_mirror(key_url, words):
    assert words in error_of(airgap_repos_key_url=key_url)


def test_key_url_outside_the_mirror_path():
    message = error_of("http://mirror.lab.internal/hospital", airgap_repos_key_url="http://mirror.lab.internal/other/k.gpg")
    assert "must lie under airgap_mirror_url http://mirror.lab.internal/hospital" in message


@pytest.mark.parametrize("over, words", [
    ({"airgap_repos_key_sha256": ""}, "airgap_repos_key_sha256 is required with airgap_repos_key_url"),
    ({"airgap_repos_key_sha256": "abc"}, "airgap_repos_key_sha256 must be 64 hexadecimal characters"),
    ({"airgap_repos_key_url": "", "airgap_repos_key_sha256": ""}, "the mirror's signing key is missing"),
    ({"airgap_repos_key_content": ARMORED}, "set only one of airgap_repos_key_url and airgap_repos_key_content"),
    ({"airgap_repos_key_url": "", "airgap_repos_key_content": "not a key"}, "airgap_repos_key_content must be an ASCII-armoured public key"),
    ({"airgap_repos_key_url": "", "airgap_repos_key_content": ARMORED}, "does not match the sha256 of airgap_repos_key_content"),
])
def test_key_errors(over, words):
    assert words in error_of(**over)


@pytest.mark.parametrize("held, words", [
    (["Hello_World"], "airgap_repos_held_packages[0]: 'Hello_World' is not a valid package name"),
    (["a"], "airgap_repos_held_packages[0]: 'a' is not a valid package name"),
    (["hello; rm -rf /"], "airgap_repos_held_packages[0]"),
    ([{"name": "hello", "version": "2.10 3"}], "airgap_repos_held_packages[0] 'hello': version '2.10 3' is not a valid package version"),
    ([{"name": "hello", "version": "http://x/y"}], "version 'http://x/y' is not a valid package version"),
    ([{"name": "hello", "ver": "1"}], "airgap_repos_held_packages[0] has unknown keys ver"),
    ([{"version": "1"}], "airgap_repos_held_packages[0] has no package name"),
    ([42], "airgap_repos_held_packages[0] must be a package name or {name, version}"),
    (["hello", {"name": "hello"}], "airgap_repos_held_packages[1]: 'hello' is listed twice (also at index 0)"),
    ("hello", "airgap_repos_held_packages must be a list"),
])
def test_held_package_errors(held, words):
    assert words in error_of(airgap_repos_held_packages=held)


@pytest.mark.parametrize("over, words", [
    ({"airgap_repos_components": ["main", "http://deb.debian.org/debian"]},
     "airgap_repos_components[1] 'http://deb.debian.org/debian' is a URL; the only URL this role accepts is airgap_mirror_url"),
    ({"airgap_repos_components": []}, "airgap_repos_components must be a non-empty list"),
    ({"airgap_repos_components": ["main", "main"]}, "airgap_repos_components[1] 'main' is listed twice"),
    ({"airgap_repos_components": ["ma in"]}, "airgap_repos_components[0] 'ma in' is not a valid component name"),
    ({"airgap_repos_suite": "https://deb.debian.org/debian"}, "airgap_repos_suite 'https://deb.debian.org/debian' is a URL"),
    ({"airgap_repos_suite": ""}, "airgap_repos_suite '' is not a valid suite name"),
    ({"airgap_repos_suite": "./", "airgap_repos_components": ["main"]}, "airgap_repos_components must be empty for a flat repository"),
    ({"airgap_repos_apt_path": "http://deb.debian.org/debian"}, "airgap_repos_apt_path must be a path below airgap_mirror_url, not a URL"),
    ({"airgap_repos_apt_path": "//evil.example/debian"}, "airgap_repos_apt_path must be a path below airgap_mirror_url, not a URL"),
    ({"airgap_repos_apt_path": "a/../../b"}, "airgap_repos_apt_path 'a/../../b' has an invalid path segment '..'"),
    ({"airgap_repos_remove_other_sources": "maybe"}, "airgap_repos_remove_other_sources must be true or false"),
])
def test_source_errors(over, words):
    assert words in error_of(**over)


def test_every_problem_is_reported_at_once():
    message = error_of(airgap_repos_key_url="http://evil.example/k", airgap_repos_components=["http://x/y"],
                       airgap_repos_held_packages=["Bad_Name"])
    assert message.startswith("airgap_repos: invalid input, nothing was changed: ")
    for var in ("airgap_repos_key_url", "airgap_repos_components[0]", "airgap_repos_held_packages[0]"):
        assert var in message


@pytest.mark.parametrize("over, words", [
    ({"airgap_repos_dnf_repos": [{"name": "baseos", "path": "http://cdn.redhat.com/x"}]}, "airgap_repos_dnf_repos[0].path"),
    ({"airgap_repos_dnf_repos": [{"name": "bad name", "path": "x"}]}, "airgap_repos_dnf_repos[0]: name 'bad name'"),
    ({"airgap_repos_dnf_repos": []}, "airgap_repos_dnf_repos must be a non-empty list"),
    ({"airgap_repos_key_url": "keys/rpm.gpg"}, "on the RedHat family the key must be ASCII-armoured"),
    ({"airgap_repos_held_packages": ["hello world"]}, "airgap_repos_held_packages[0]"),
])
def test_redhat_errors(over, words):
    over.setdefault("airgap_repos_key_url", "keys/rpm.asc")
    assert words in error_of(family="RedHat", **over)


def test_unsupported_family():
    assert "ansible_facts.os_family 'Suse' is not supported" in error_of(family="Suse")


# --------------------------------------------------------------------------
# The files the role writes
# --------------------------------------------------------------------------

def test_source_file_parses_to_exactly_the_expected_source():
    got = settings()
    text = arf.airgap_repos_files(got)[DEBIAN_PATHS["source_file"]]
    entries, disabled, errors = asf.parse_deb822(text, DEBIAN_PATHS["source_file"])
    assert errors == [] and disabled == []
    assert len(entries) == 1
    entry = entries[0]
    want = arf.airgap_repos_expect(got)
    assert entry["uris"] == [want["uri"]] and entry["suites"] == want["suites"]
    assert entry["components"] == want["components"] and entry["signed_by"] == [want["signed_by"]]
    assert entry["trusted"] is False and entry["types"] == ["deb"]


def test_sources_list_has_no_entry():
    text = arf.airgap_repos_files(settings())["/etc/apt/sources.list"]
    entries, errors = asf.parse_one_line(text, "/etc/apt/sources.list")
    assert entries == [] and errors == []
    assert "/etc/apt/sources.list.d/airgap-mirror.sources" in text


def test_pin_puts_the_mirror_first_and_everything_else_at_minus_one():
    text = arf.airgap_repos_files(settings())[DEBIAN_PATHS["preferences_file"]]
    records = [r for r in text.split("\n\n")]
    body = [[line for line in r.splitlines() if not line.startswith("#")] for r in records]
    assert body == [["Package: *", 'Pin: origin "mirror.lab.internal"', "Pin-Priority: 990"],
                    ["Package: *", "Pin: origin *", "Pin-Priority: -1"]]


def test_apt_conf_follows_install_recommends():
    off = arf.airgap_repos_files(settings())[DEBIAN_PATHS["apt_conf_file"]]
    on = arf.airgap_repos_files(settings(airgap_repos_install_recommends=True))[DEBIAN_PATHS["apt_conf_file"]]
    assert 'APT::Install-Recommends "false";' in off and 'APT::Install-Recommends "true";' in on
    assert 'Acquire::AllowInsecureRepositories "false";' in off


def test_expect_carries_every_managed_file_and_the_pin():
    want = arf.airgap_repos_expect(settings())
    assert sorted(want["managed_files"]) == sorted([DEBIAN_PATHS["source_file"], DEBIAN_PATHS["preferences_file"],
                                                    DEBIAN_PATHS["apt_conf_file"], "/etc/apt/sources.list"])
    assert want["key_sha256"] == PIN
    assert want["held_packages"] == [{"name": "hello", "version": "2.10-3"}]
    assert asf.validate_expect(want) is None


def test_unverified_record_fails_closed():
    record = arf.airgap_repos_unverified_record("RedHat")
    validate_record(record)
    assert record["status"] == "error" and record["id"] == "REPO-MIRROR-ONLY"
    assert "RedHat" in record["evidence"]["result"]


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs Debian's apt (the project's machines have it)")
def test_apt_reads_the_rendered_source_and_names_its_lists_like_the_filter(tmp_path):
    """apt itself: the rendered source is one deb source of the mirror, and its list files start with list_prefix."""
    got = settings("http://mirror.example.org:8080/a_b~c")
    etc = tmp_path / "etc"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "apt.conf.d").mkdir()
    (etc / "sources.list.d" / "airgap-mirror.sources").write_text(arf.airgap_repos_files(got)[DEBIAN_PATHS["source_file"]])
    conf = tmp_path / "apt.conf"
    conf.write_text('Dir::Etc "%s/";\nDir::Etc::Parts "%s/apt.conf.d/";\nDir::State "%s/state/";\n'
                    'Dir::State::status "/dev/null";\nDir::Cache "%s/cache/";\n' % (etc, etc, tmp_path, tmp_path))
    out = subprocess.run(["apt-get", "indextargets", "--no-release-info", "--format", "$(REPO_URI)\t$(FILENAME)"],
                         env=dict(os.environ, APT_CONFIG=str(conf), LC_ALL="C"), capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines() if line]
    assert rows and set(r[0].rstrip("/") for r in rows) == {got["apt_uri"]}
    assert all(os.path.basename(r[1]).startswith(got["list_prefix"]) for r in rows)
