#!/usr/bin/env bash
# A full rehearsal of an upgrade of the embedded demo overcloud (Controller x3,
# Compute x6, CephStorage x1, 17.1 -> 18.0) on a local fleet in a temp dir,
# through the real CLI: prepare, plan, external image prepare, controlplane,
# compute in batches of 2, online migrations, converge, status, and the
# invariant check after every stage. Nothing outside the temp dir is touched.
set -euo pipefail

work=$(mktemp -d "${TMPDIR:-/tmp}/composable-upgrade-demo.XXXXXX")
wd="$work/overcloud-deploy/overcloud"
fleet="$work/fleet"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
helper="python $here/demo_fleet.py"
upgrade="openstack overcloud upgrade"
start=$SECONDS

say() { printf '\n==> %s\n' "$*"; }

say "prepare: the demo overcloud's stack outputs -> a plan in $wd"
$upgrade prepare --outputs-file "$($helper outputs)" \
    --dependencies-file "$($helper dependencies)" \
    --working-dir "$wd" --fleet "$fleet"
$helper seed "$wd"

say "plan: the controlplane stage, by service"
$upgrade plan --working-dir "$wd" --stage controlplane --by service

say "run: external upgrade tasks tagged container_image_prepare (on the undercloud)"
$upgrade run --working-dir "$wd" --stage external --tags container_image_prepare -y

say "run: the controlplane stage (all control-plane hosts together)"
$upgrade run --working-dir "$wd" --stage controlplane -y
$helper check "$wd" controlplane

say "run: the compute stage, in batches of 2 hosts"
$upgrade run --working-dir "$wd" --stage compute --batch-size 2 -y
$helper check "$wd" compute

say "run: external upgrade tasks tagged online_upgrade"
$upgrade run --working-dir "$wd" --stage external --tags online_upgrade -y

say "converge: post-upgrade tasks, RPC unpin, unmanaged packages, reboots"
$upgrade converge --working-dir "$wd" -y
$helper check "$wd" converge

say "status"
$upgrade status --working-dir "$wd"
$upgrade history --working-dir "$wd"

say "demo finished in $((SECONDS - start)) s; files in $work"
