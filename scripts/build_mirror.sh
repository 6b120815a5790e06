#!/usr/bin/env bash
# Build the content the lab's mirror serves, under build/mirror/www:
#   debian/   a signed apt repository of real .deb files from Debian's archive
#   keys/     the lab archive key (public part) that airgap_repos installs
#   models/   a generated demo model with its SHA256SUMS manifest
#   images/   OCI archives of the container images the lab needs (+ SHA256SUMS)
# Rebuilt only when its recipe (this script, the package list, the model
# generator) changes. The lab signing key is made once and kept in build/.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build="$here/build"
www="$build/mirror/www"
pkgfile="$here/lab/mirror/packages.txt"
stamp="$build/mirror/.recipe"
image=${AIRGAP_LAB_IMAGE:-localhost/airgap-lab-base:bookworm}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/lab/containers.conf}
# The image archive is part of the content: a new base image means a new mirror.
# No image gives an empty label (not a script abort), and the next line fails with a clear message.
image_recipe=$(podman image inspect --format '{{ index .Labels "airgap.recipe" }}' "$image" 2>/dev/null || true)
[ -n "$image_recipe" ] || { echo "base image $image is missing: run scripts/build_base_image.sh first" >&2; exit 1; }
# So is the vLLM stand-in's archive (its recipe label, empty when it is missing).
standin_recipe=$(podman image inspect --format '{{ index .Labels "airgap.recipe" }}' "${AIRGAP_VLLM_STANDIN_IMAGE:-localhost/airgap-vllm-standin:lab}" 2>/dev/null || true)
recipe=$( (cat "$0" "$pkgfile" "$here/scripts/make_demo_model.py"; echo "$image_recipe"; echo "$standin_recipe") | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$recipe" ] && [ -f "$www/debian/dists/bookworm/InRelease" ]; then
    echo "mirror content is up to date (recipe $recipe)"
    exit 0
fi

mkdir -p "$build/apt/lists/partial" "$build/apt/cache/archives/partial" "$build/gnupg"
chmod 700 "$build/gnupg"
rm -rf "$www.new"
mkdir -p "$www.new/debian/pool/main" "$www.new/debian/dists/bookworm/main/binary-amd64" "$www.new/keys" "$www.new/models" "$www.new/images"

# Debian's archive with every component: the NVIDIA userland lives in
# non-free. bookworm-backports carries a second, older build of it, so the lab
# can pin one real version and be offered a newer one (packages.txt names
# exact versions; nothing else is taken from backports). A private sources
# list and state dir leave the machine's apt alone.
archive=${AIRGAP_DEBIAN_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
archive=${archive:-http://deb.debian.org/debian}
printf 'deb %s bookworm main contrib non-free non-free-firmware\ndeb %s bookworm-backports main contrib non-free\n' \
    "$archive" "$archive" > "$build/apt/sources.list"
# An empty dpkg status: the packages installed on this build machine (some
# from security updates this sources list does not name) must not become
# the candidate versions the mirror tries to fetch.
: > "$build/apt/empty-status"
aptopts=(-o "Dir::Etc::SourceList=$build/apt/sources.list" -o "Dir::Etc::SourceParts=-" -o "Dir::State::status=$build/apt/empty-status"
         -o "Dir::State::Lists=$build/apt/lists" -o "Dir::Cache=$build/apt/cache" -o "APT::Get::List-Cleanup=0" -o "APT::Sandbox::User=root")
apt-get "${aptopts[@]}" update -qq
mapfile -t pkgs < <(grep -v '^\s*#' "$pkgfile" | awk 'NF{print $1}')
(cd "$www.new/debian/pool/main" && apt-get "${aptopts[@]}" download -qq "${pkgs[@]}")
# apt-get download keeps an epoch in the file name, URL-encoded (libpci3_1%3a3.9.0-4_amd64.deb),
# which a web server decodes to ':' and then cannot find; Debian's pool names omit the epoch.
for deb in "$www.new"/debian/pool/main/*%3a*.deb; do
    [ -e "$deb" ] || continue
    base=${deb##*/}
    mv "$deb" "${deb%/*}/${base%%_*}_${base#*%3a}"
done

# The lab's archive signing key, made once. A real mirror's key lives in an
# HSM or on the mirror host; the lab's is throwaway and says so in its uid.
export GNUPGHOME="$build/gnupg"
if ! gpg --batch --list-secret-keys airgap-lab-mirror >/dev/null 2>&1; then
    gpg --batch --pinentry-mode loopback --passphrase '' \
        --quick-gen-key "airgap-lab-mirror (LAB ONLY, throwaway) <mirror@lab.internal>" ed25519 sign never
fi
gpg --batch --export airgap-lab-mirror > "$www.new/keys/airgap-lab-archive.gpg"

cd "$www.new/debian"
apt-ftparchive packages pool > dists/bookworm/main/binary-amd64/Packages
gzip -9nk dists/bookworm/main/binary-amd64/Packages
apt-ftparchive \
    -o APT::FTPArchive::Release::Origin=airgap-lab -o APT::FTPArchive::Release::Label=airgap-lab \
    -o APT::FTPArchive::Release::Suite=bookworm -o APT::FTPArchive::Release::Codename=bookworm \
    -o APT::FTPArchive::Release::Architectures=amd64 -o APT::FTPArchive::Release::Components=main \
    release dists/bookworm > dists/bookworm/Release
gpg --batch --yes --pinentry-mode loopback --passphrase '' -u airgap-lab-mirror --clearsign -o dists/bookworm/InRelease dists/bookworm/Release
gpg --batch --yes --pinentry-mode loopback --passphrase '' -u airgap-lab-mirror -abs -o dists/bookworm/Release.gpg dists/bookworm/Release
cd "$here"

python3 "$here/scripts/make_demo_model.py" "$www.new/models/demo-model"

# Container images the lab's GPU nodes may run, as OCI archives with a
# checksum list: nodes load them with `podman load`, never from a registry.
podman save --quiet --format oci-archive -o "$www.new/images/airgap-lab-base_bookworm.oci.tar" "$image"
# The vLLM STAND-IN (scripts/build_vllm_standin_image.sh), which vllm_server
# runs in the lab in place of vllm/vllm-openai. <name>.digest holds the
# manifest digest inside the archive: the digest the role pins the image by
# (name@sha256:...), read by the lab's group_vars.
standin=${AIRGAP_VLLM_STANDIN_IMAGE:-localhost/airgap-vllm-standin:lab}
podman image exists "$standin" \
    || { echo "vLLM stand-in image $standin is missing: run scripts/build_vllm_standin_image.sh first" >&2; exit 1; }
podman save --quiet --format oci-archive -o "$www.new/images/airgap-vllm-standin_lab.oci.tar" "$standin"
tar -xOf "$www.new/images/airgap-vllm-standin_lab.oci.tar" index.json \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["manifests"][0]["digest"])' \
    > "$www.new/images/airgap-vllm-standin.digest"
(cd "$www.new/images" && sha256sum ./*.oci.tar | sed 's| \./| |' > SHA256SUMS)

rm -rf "$www"
mv "$www.new" "$www"
echo "$recipe" > "$stamp"
echo "mirror content built in $www (recipe $recipe): ${#pkgs[@]} packages, demo model"
