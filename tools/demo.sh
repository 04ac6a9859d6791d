#!/usr/bin/env bash
# A full rehearsal of an upgrade of the embedded demo overcloud (Controller x3,
# Compute x6, CephStorage x1, 17.1 -> 18.0) on a local fleet in a temp dir,
# through the real CLI: prepare (with the demo's drain hook kept in the plan),
# plan, external image prepare, controlplane, compute as a canary then
# batches (a pause after the canary, then --resume), online migrations,
# converge (each compute drained before its reboot), status, and the
# invariant check after every stage (instances included). Nothing outside the temp dir is touched,
# except that DEMO_TRANSPORT=ssh (make demo-ssh) creates the tripleo-admin user
# and its sudoers drop-in for the test sshd.
set -euo pipefail

work=$(mktemp -d "${TMPDIR:-/tmp}/composable-upgrade-demo.XXXXXX")
wd="$work/overcloud-deploy/overcloud"
fleet="$work/fleet"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
helper="python $here/demo_fleet.py"
upgrade="openstack overcloud upgrade"
start=$SECONDS

say() { printf '\n==> %s\n' "$*"; }

# DEMO_TRANSPORT=ssh (make demo-ssh): every host over real SSH, to a test sshd
# on loopback addresses that this script starts and stops.
fleet_args=(--fleet "$fleet")
key_args=()
if [ "${DEMO_TRANSPORT:-local}" = ssh ]; then
    say "starting sshd on 127.0.0.2-127.0.0.17 for tripleo-admin"
    (cd "$here/.." && exec python -m tests.sshfleet.serve "$work/sshd" 16) \
        > "$work/sshd.ready" &
    sshd_pid=$!
    trap 'kill "$sshd_pid" 2>/dev/null || true; wait "$sshd_pid" 2>/dev/null || true' EXIT
    for _ in $(seq 600); do
        [ -s "$work/sshd.ready" ] && break
        kill -0 "$sshd_pid" 2>/dev/null || { echo "sshd did not start" >&2; exit 1; }
        sleep 0.1
    done
    read -r port key < "$work/sshd.ready"
    fleet_args+=(--fleet-transport ssh --fleet-ssh-port "$port")
    key_args=(--overcloud-ssh-key "$key")
fi

say "prepare: the demo overcloud's stack outputs -> a plan in $wd"
$upgrade prepare --outputs-file "$($helper outputs)" \
    --dependencies-file "$($helper dependencies)" \
    --hooks-file "$($helper hooks)" \
    --working-dir "$wd" "${fleet_args[@]}"
$helper seed "$wd"

say "plan: the controlplane stage, by service"
$upgrade plan --working-dir "$wd" --stage controlplane --by service

say "run: external upgrade tasks tagged container_image_prepare (on the undercloud)"
$upgrade run --working-dir "$wd" --stage external --tags container_image_prepare ${key_args[@]+"${key_args[@]}"} -y

say "run: the controlplane stage (all control-plane hosts together)"
$upgrade run --working-dir "$wd" --stage controlplane ${key_args[@]+"${key_args[@]}"} -y
$helper check "$wd" controlplane

say "run: the compute stage: a canary, then 2 hosts, then 50% (each batch drained first); pause after the canary"
$upgrade run --working-dir "$wd" --stage compute --batch-size 1,2,50% --pause-after 1 ${key_args[@]+"${key_args[@]}"} -y

say "run --resume: the rest of the compute stage, the same batches"
$upgrade run --working-dir "$wd" --stage compute --resume ${key_args[@]+"${key_args[@]}"} -y
$helper check "$wd" compute

say "run: external upgrade tasks tagged online_upgrade"
$upgrade run --working-dir "$wd" --stage external --tags online_upgrade ${key_args[@]+"${key_args[@]}"} -y

say "converge: post-upgrade tasks, RPC unpin, unmanaged packages, reboots (one host at a time, drained first)"
$upgrade converge --working-dir "$wd" ${key_args[@]+"${key_args[@]}"} -y
$helper check "$wd" converge

say "status"
$upgrade status --working-dir "$wd"
$upgrade history --working-dir "$wd"

say "demo finished in $((SECONDS - start)) s; files in $work"
