#!/usr/bin/env python3
"""Fail unless the installed collections match the pins in requirements.yml.

The collections come bundled with the pinned `ansible` package; this catches a
drifted virtualenv before a playbook runs with other module versions.
"""
import json
import subprocess
import sys

import yaml


def main(path="requirements.yml"):
    with open(path, encoding="utf-8") as fh:
        wanted = {c["name"]: str(c["version"]) for c in yaml.safe_load(fh)["collections"]}
    out = subprocess.run(["ansible-galaxy", "collection", "list", "--format", "json"],
                         capture_output=True, text=True, check=True).stdout
    found = {}
    for path_data in json.loads(out).values():
        for name, info in path_data.items():
            found.setdefault(name, info.get("version"))
    bad = ["%s: want %s, found %s" % (n, v, found.get(n, "nothing")) for n, v in wanted.items() if found.get(n) != v]
    if bad:
        print("collections do not match requirements.yml:\n  " + "\n  ".join(bad), file=sys.stderr)
        return 1
    print("collections match requirements.yml: " + ", ".join("%s %s" % kv for kv in sorted(wanted.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
