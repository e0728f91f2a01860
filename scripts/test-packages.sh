#!/usr/bin/env bash
# Installs the Debian packages some tests need; the test command runs it first (.ci/run, README).
# The library never installs system packages: where a feature needs one (bench --compare-pytorch),
# it stops with one line naming the apt-get command.
#
#   chromium fonts-dejavu-core      the HTML report rendered headless, with text in its plots
#   python3-torch libopenblas0      the PyTorch twins (parity and bench tests)
#   python3-regex                   GPT-2's tokenizer in the PyTorch twin
#   slurmctld slurmd slurm-client munge   the single-node Slurm cluster of scripts/slurm-local.sh
#
# Installing needs root; with every package present it does nothing and needs no root.
set -euo pipefail

packages=(chromium fonts-dejavu-core python3-torch libopenblas0 python3-regex slurmctld slurmd slurm-client munge)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "test-packages: missing ${missing[*]}; install them as root: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -q
apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}"
