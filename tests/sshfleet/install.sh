#!/usr/bin/env bash
# Install what the SSH test fleet needs: an OpenSSH server and client, sudo,
# and a system python3 (the Python ansible runs on the "hosts").
#
# Usage: tests/sshfleet/install.sh
#
# Idempotent: when every program is already there it does nothing and needs
# no privileges. Otherwise, as root, it runs apt-get update and installs the
# packages of the missing ones; not as root it exits non-zero saying what is
# missing. The packages' own sshd service is not started (a policy-rc.d is in
# place for the install when there is none): the tests start their own sshd
# on loopback addresses only.
set -euo pipefail

declare -A package_of=(
    [/usr/sbin/sshd]=openssh-server
    [/usr/bin/ssh]=openssh-client
    [/usr/bin/ssh-keygen]=openssh-client
    [/usr/bin/sudo]=sudo
    [/usr/sbin/visudo]=sudo
    [/usr/bin/python3]=python3
)

missing=()
for program in "${!package_of[@]}"; do
    [[ -x "$program" ]] || missing+=("${package_of[$program]}")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    echo "sshfleet: openssh-server, openssh-client, sudo and python3 already installed"
    exit 0
fi
# One name each, in a stable order.
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [[ "$(id -u)" -ne 0 ]]; then
    echo "sshfleet: missing ${missing[*]}; run tests/sshfleet/install.sh as root (it uses apt-get)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "sshfleet: missing ${missing[*]} and no apt-get to install them" >&2
    exit 1
fi

# Keep the packages' postinst from starting a system sshd on every address.
policy=/usr/sbin/policy-rc.d
own_policy=""
if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    own_policy=1
fi
cleanup() { if [[ -n "$own_policy" ]]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

for program in "${!package_of[@]}"; do
    if [[ ! -x "$program" ]]; then
        echo "sshfleet: $program still missing after installing ${missing[*]}" >&2
        exit 1
    fi
done
echo "sshfleet: installed ${missing[*]}"
