#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine, then run the whole suite.
# This is the README's test command and what CI (.ci/run) calls. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: reference decoder (tshark), capture (tcpdump), the lab
# (iproute2, nftables, ipvsadm, qemu for the IPVS director VM, busybox-static for its initramfs,
# curl for its traffic), headless Chromium for the HTML report test, and OpenSSH (sshd in the
# lab's namespaces for remote capture and doctor).
need_pkgs=()
want() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$1"); }
for pkg in tshark tcpdump iproute2 nftables ipvsadm qemu-system-x86 busybox-static curl chromium procps util-linux mount openssh-server openssh-client; do
    want "$pkg"
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${need_pkgs[*]} (run as root, or: sudo apt-get install ${need_pkgs[*]})" >&2
        exit 2
    fi
    echo "installing Debian packages: ${need_pkgs[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e ".[test]"
exec python3 -m pytest "$@"
