#!/usr/bin/env bash
# Build the lab's vLLM STAND-IN image (localhost/airgap-vllm-standin) from the
# lab base image and lab/vllm-standin/. It is not vLLM: vLLM needs a GPU and
# its image cannot be fetched here, so the vllm_server role is exercised
# against this small OpenAI-compatible server (see docs/roles/vllm_server.md).
# No registry is used: the base image is local (scripts/build_base_image.sh).
# Rebuilt only when its recipe (this script, lab/vllm-standin/, the base
# image's recipe) changes; the recipe hash is the label airgap.recipe.
# Layer timestamps are fixed, so the same recipe gives the same image.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
image=${AIRGAP_VLLM_STANDIN_IMAGE:-localhost/airgap-vllm-standin:lab}
base=${AIRGAP_LAB_IMAGE:-localhost/airgap-lab-base:bookworm}
src="$here/lab/vllm-standin"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/lab/containers.conf}

base_recipe=$(podman image inspect --format '{{ index .Labels "airgap.recipe" }}' "$base" 2>/dev/null || true)
[ -n "$base_recipe" ] || { echo "base image $base is missing: run scripts/build_base_image.sh first" >&2; exit 1; }
recipe=$( (cat "$0" "$src/Containerfile" "$src/server.py"; echo "$base_recipe") | sha256sum | cut -c1-16)
current=$(podman image inspect --format '{{ index .Labels "airgap.recipe" }}' "$image" 2>/dev/null || true)
if [ "$current" = "$recipe" ]; then
    echo "vLLM stand-in image $image is up to date (recipe $recipe)"
    exit 0
fi

echo "building the vLLM STAND-IN image $image from $base (recipe $recipe)"
podman build --quiet --pull=never --timestamp 0 \
    --label "airgap.recipe=$recipe" \
    -f "$src/Containerfile" -t "$image" "$src" >/dev/null
echo "built $image (recipe $recipe)"
