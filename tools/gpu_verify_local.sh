#!/usr/bin/env bash
# Copyright: contributors to this project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Try the GPU verification on the machine this runs on (a real GPU host with
# ansible installed, e.g. from wheels into a virtualenv):
#
#   tools/gpu_verify_local.sh OUTDIR
#
# Runs `ansible localhost -c local -M library -m nvidia_gpu_facts`, then the
# gpu_evidence module with the driver pin set to the card's own driver version,
# and writes into OUTDIR:
#   facts.json        the nvidia_gpu_facts result
#   evidence.json     the gpu_evidence result (records and statuses)
#   package_state.json  what dpkg/rpm said about the NVIDIA driver packages
#   raw/              nvidia-smi -q -x, /proc/driver/nvidia/version, CDI specs
#                     as found, so a recorded fixture can be added to
#                     tests/unit/fixtures/nvidia later
#
# Knobs (environment): DRIVER_PIN (default "<driver_version>-*"),
# EXPECTED_GPU_COUNT (default unset: at least one), EXPECTED_ECC (enabled),
# EXPECTED_PERSISTENCE (any), EXPECTED_MIG (any), REQUIRE_KERNEL_LOG (true),
# ANSIBLE (the ansible binary, default: the one on PATH).
#
# Exit status: 0 when both modules ran (whatever the records say), else 1.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
OUT=$1
REPO=$(cd "$(dirname "$0")/.." && pwd)
ANSIBLE=${ANSIBLE:-$(command -v ansible || true)}
if [ -z "$ANSIBLE" ]; then
    echo "ansible not found on PATH (set ANSIBLE=/path/to/ansible)" >&2
    exit 1
fi
# Run the modules with the interpreter ansible itself uses: it has PyYAML,
# which the CDI spec parsing needs.
PY=$(head -1 "$ANSIBLE" | sed -n 's/^#! *//p' | awk '{print $1}')
case "$PY" in */env) PY=$(command -v python3) ;; esac
[ -x "$PY" ] || PY=$(command -v python3)

mkdir -p "$OUT/raw"
OUT=$(cd "$OUT" && pwd)
cd "$REPO"    # ansible.cfg there names module_utils/

export ANSIBLE_LOAD_CALLBACK_PLUGINS=1 ANSIBLE_STDOUT_CALLBACK=json ANSIBLE_NOCOLOR=1
adhoc() {
    # One ad-hoc module run on localhost; prints the module's result as JSON.
    "$ANSIBLE" localhost -i localhost, -c local -M library \
        -e "ansible_python_interpreter=$PY" "$@" \
        | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps(d["plays"][0]["tasks"][0]["hosts"]["localhost"], indent=2))'
}

# Raw inputs, kept for a recorded fixture; absence is fine.
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -q -x > "$OUT/raw/nvidia-smi-q-x.xml" 2> "$OUT/raw/nvidia-smi-q-x.stderr" || true
fi
cp /proc/driver/nvidia/version "$OUT/raw/proc-driver-nvidia-version.txt" 2>/dev/null || true
for spec in /etc/cdi/*.yaml /etc/cdi/*.json /var/run/cdi/*.yaml /var/run/cdi/*.json; do
    if [ -f "$spec" ]; then cp "$spec" "$OUT/raw/cdi-$(basename "$spec")"; fi
done

echo "== nvidia_gpu_facts" >&2
adhoc -m nvidia_gpu_facts --check > "$OUT/facts.json"

# The package state as the role gathers it: installed version and hold flag of
# each NVIDIA driver package (dpkg on Debian/Ubuntu, rpm + versionlock otherwise).
"$PY" - "$OUT/facts.json" > "$OUT/package_state.json" <<'PYEOF'
import json, re, shutil, subprocess, sys

def run(argv):
    try:
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True, check=False).stdout
    except OSError:
        return ""

pattern = re.compile(r"^(nvidia-driver|nvidia-utils|libnvidia-compute|nvidia-kernel|nvidia-dkms|"
                     r"nvidia-smi|libnvidia-ml|nvidia-open|kmod-nvidia)")
state = {}
if shutil.which("dpkg-query"):
    held = set(run(["apt-mark", "showhold"]).split())
    for line in run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n"]).splitlines():
        name, version, status = (line.split("\t") + ["", ""])[:3]
        if pattern.match(name) and status.startswith("ii"):
            state[name] = {"version": version, "held": name in held}
elif shutil.which("rpm"):
    locks = run(["dnf", "versionlock", "list"])
    for line in run(["rpm", "-qa", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\n"]).splitlines():
        name, version = line.split("\t")
        if pattern.match(name):
            state[name] = {"version": version, "held": name in locks}
print(json.dumps(state, indent=2, sort_keys=True))
PYEOF

echo "== gpu_evidence" >&2
ARGS=$("$PY" - "$OUT/facts.json" "$OUT/package_state.json" <<'PYEOF'
import json, os, sys
facts = json.load(open(sys.argv[1]))["ansible_facts"]["nvidia_gpu"]
state = json.load(open(sys.argv[2]))
driver = facts.get("driver_version") or (facts.get("kernel_module") or {}).get("version")
pin = os.environ.get("DRIVER_PIN") or ("%s-*" % driver if driver else None)
args = {
    "gpu_facts": facts,
    "driver_version_pin": pin,
    "driver_packages": sorted(state),
    "package_state": state,
    "expected_ecc": os.environ.get("EXPECTED_ECC", "enabled"),
    "expected_persistence": os.environ.get("EXPECTED_PERSISTENCE", "any"),
    "expected_mig": os.environ.get("EXPECTED_MIG", "any"),
    "require_kernel_log": os.environ.get("REQUIRE_KERNEL_LOG", "true").lower() in ("1", "true", "yes"),
}
if os.environ.get("EXPECTED_GPU_COUNT"):
    args["expected_gpu_count"] = int(os.environ["EXPECTED_GPU_COUNT"])
print(json.dumps(args))
PYEOF
)
adhoc -m gpu_evidence --check -a "$ARGS" > "$OUT/evidence.json"

"$PY" - "$OUT/facts.json" "$OUT/evidence.json" <<'PYEOF'
import json, sys
facts = json.load(open(sys.argv[1]))
evidence = json.load(open(sys.argv[2]))
gpu = facts.get("ansible_facts", {}).get("nvidia_gpu", {})
print("present=%s reason=%s driver=%s kernel_module=%s" % (
    gpu.get("present"), gpu.get("reason"), gpu.get("driver_version"), gpu.get("kernel_module")))
if evidence.get("failed"):
    print("gpu_evidence failed: %s" % evidence.get("msg"))
    sys.exit(1)
for control, status in sorted(evidence.get("statuses", {}).items()):
    print("%-18s %s" % (control, status))
PYEOF
echo "written: $OUT" >&2
