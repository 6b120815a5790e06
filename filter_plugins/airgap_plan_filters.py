# -*- coding: utf-8 -*-
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja2 filter for the airgap_plan role: the site plan (module_utils/airgap_plan.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

try:
    from ansible.module_utils.airgap_plan import plan
except ImportError:  # controller-side plugins do not always see the configured module_utils path
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils"))
    from airgap_plan import plan  # noqa: E402


def airgap_plan(cfg):
    """The site plan: ``{"errors": [...], ...derived lists}`` (see module_utils/airgap_plan.py)."""
    return plan(dict(cfg or {}))


class FilterModule(object):
    """Site plan filters."""

    def filters(self):
        return {"airgap_plan": airgap_plan}
