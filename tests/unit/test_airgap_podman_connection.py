# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab connection plugin: stdin reaches the container only when Ansible pipelines."""

from __future__ import absolute_import, division, print_function

import importlib.util
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "..", "..", "connection_plugins", "airgap_podman.py")


@pytest.fixture(name="plugin")
def _plugin():
    spec = importlib.util.spec_from_file_location("airgap_podman", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _connection(plugin, user=None):
    """A Connection whose podman runs are recorded instead of executed (a test double for podman)."""
    conn = plugin.Connection.__new__(plugin.Connection)
    conn._connected = True
    conn._container_id = "node-1"
    conn.user = user
    calls = []

    def fake_podman(cmd, cmd_args=None, in_data=None, use_container_id=True):
        calls.append((list(cmd), list(cmd_args or []), in_data))
        return 0, b"out", b""

    conn._podman = fake_podman
    return conn, calls


def test_plugin_pipelines(plugin):
    assert plugin.Connection.has_pipelining is True
    assert plugin.Connection.transport == "airgap_podman"


def test_module_on_stdin_gets_exec_i(plugin):
    conn, calls = _connection(plugin, user="root")
    assert conn.exec_command("/bin/sh -c 'python3 && sleep 0'", in_data=b"MODULE") == (0, b"out", b"")
    assert calls == [(["exec", "-i", "--user", "root"], ["/bin/sh", "-c", "python3 && sleep 0"], b"MODULE")]


def test_no_stdin_keeps_the_collection_behaviour(plugin, monkeypatch):
    conn, calls = _connection(plugin)
    seen = []
    monkeypatch.setattr(plugin.PodmanConnection, "exec_command",
                        lambda self, cmd, in_data=None, sudoable=False: seen.append((cmd, in_data)) or (0, b"", b""))
    conn.exec_command("echo hi")
    assert seen == [("echo hi", None)] and calls == []


def test_documentation_names_the_plugin(plugin):
    assert "name: airgap_podman" in plugin.DOCUMENTATION
    assert "pipelining" in plugin.DOCUMENTATION
