"""Make the repository's modules, module_utils and filters importable in pytest.

Ansible finds them through ansible.cfg; pytest does not read that file, so the
same folders are added here, the module_utils one under the
``ansible.module_utils`` namespace that the modules import from.
"""
import os
import sys

import ansible.module_utils

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

for sub in ("library", "filter_plugins", "module_utils"):
    path = os.path.join(ROOT, sub)
    if path not in sys.path:
        sys.path.insert(0, path)

_mu = os.path.join(ROOT, "module_utils")
if _mu not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(_mu)
