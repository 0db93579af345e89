#!/usr/bin/env bash
# Refresh requirements/image.txt, the lock of the container images: every Python distribution that
# the Dockerfile and singularity.def install (setup.cfg's install_requires and its `validator` extra,
# and everything they depend on), pinned to one version with the hashes of its files.
#
#   tools/lock.sh                          # every pin to the newest version setup.cfg allows
#   tools/lock.sh --upgrade-package nilearn   # or only some (any pip-compile options)
#
# then rebuild the image and run the tests (tests/test_container.py). requirements/image-constraints.txt
# holds what the lock must keep below the newest versions, and why.
#
# It resolves with pip-compile (pip-tools) in a throwaway virtual environment, for the Python of the
# image's base (3.11; set PYTHON to another python3.11 if `python3.11` is not on PATH). pip's own
# configuration of this machine (index, proxy, certificates) is used to reach the package index but
# is not written into the lock.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3.11}
wanted=$(sed -n 's/^ARG BASE_IMAGE=python:\([0-9]*\.[0-9]*\)\..*/\1/p' Dockerfile)
have=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$have" != "$wanted" ]; then
    echo "tools/lock.sh: the image's Python is $wanted but $python is $have; set PYTHON" >&2
    exit 64
fi

venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet 'pip-tools==7.6.2'
[ $# -gt 0 ] || set -- --upgrade
CUSTOM_COMPILE_COMMAND=tools/lock.sh "$venv/bin/pip-compile" --quiet \
    --extra validator --strip-extras --allow-unsafe --generate-hashes \
    --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
    --constraint requirements/image-constraints.txt \
    --output-file requirements/image.txt "$@" setup.cfg
echo "requirements/image.txt: $(grep -c '^[a-z0-9]' requirements/image.txt) distributions pinned"
