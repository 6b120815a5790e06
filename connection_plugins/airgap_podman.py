# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's connection: containers.podman.podman with Ansible pipelining.

Production reaches hosts over SSH with pipelining on (ansible.cfg): each
task is one remote process fed through stdin. The collection's podman
plugin cannot pipeline, because it runs ``podman exec`` without ``-i`` and
so never hands stdin to the container; every task then costs a temporary
directory, a copy and a clean-up, each a separate ``podman`` process.
On a 10-node lab that podman start-up time, not the work of the roles,
is what the controller spends its CPU on.

This subclass changes exactly one thing: when Ansible sends data on stdin
(pipelining), ``podman exec`` gets ``-i``. Commands, user, container and
file transfer are the collection's own code.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = """
    name: airgap_podman
    short_description: containers.podman.podman with pipelining (the lab's connection)
    description:
        - The containers.podman.podman connection plugin, with Ansible pipelining supported by giving
          C(podman exec) the C(-i) flag when a module is sent on stdin. Everything else is inherited.
        - Used by the lab inventory only; production hosts use SSH.
    author: airgap-llm contributors
    options:
      remote_addr:
        description:
          - The ID of the container you want to access.
        default: inventory_hostname
        vars:
          - name: ansible_host
          - name: inventory_hostname
          - name: ansible_podman_host
      remote_user:
        description:
          - User (name or UID) that runs commands inside the container.
        ini:
          - section: defaults
            key: remote_user
        env:
          - name: ANSIBLE_REMOTE_USER
        vars:
          - name: ansible_user
      podman_extra_args:
        description:
          - Extra arguments to pass to the podman command line.
        default: ''
        ini:
          - section: defaults
            key: podman_extra_args
        vars:
          - name: ansible_podman_extra_args
        env:
          - name: ANSIBLE_PODMAN_EXTRA_ARGS
      podman_executable:
        description:
          - Executable for podman command.
        default: podman
        vars:
          - name: ansible_podman_executable
        env:
          - name: ANSIBLE_PODMAN_EXECUTABLE
      pipelining:
        description:
          - Send modules on stdin instead of copying them into the container first.
        type: boolean
        default: true
        env:
          - name: ANSIBLE_PIPELINING
        ini:
          - section: connection
            key: pipelining
        vars:
          - name: ansible_pipelining
"""

import shlex

from ansible.module_utils.common.text.converters import to_native
from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection


class Connection(PodmanConnection):
    """containers.podman.podman, able to pipeline."""

    transport = "airgap_podman"
    has_pipelining = True

    def exec_command(self, cmd, in_data=None, sudoable=False):
        """Run ``cmd`` in the container; with stdin attached when there is data to send."""
        if in_data is None:
            return super(Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        if not self._connected:
            self._connect()
        args = ["exec", "-i"]
        if self.user:
            args.extend(("--user", self.user))
        return self._podman(args, shlex.split(to_native(cmd, errors="surrogate_or_strict")), in_data)
