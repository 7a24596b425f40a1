#!/usr/bin/env bash
# Host packages agentcg needs (Debian 12, as root): QEMU for virtme-ng, busybox for its guest init.
# Kernel images are installed on demand by agentcg.harness.kernels. Fast when everything is already there.
set -euo pipefail
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || need+=(busybox-static)
command -v unshare >/dev/null || need+=(util-linux)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# BCC's Python bindings for the exec tracer (the PyPI package named bcc is something else); Debian's python3
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import bcc' 2>/dev/null || need+=(python3-bpfcc)
command -v setpriv >/dev/null || need+=(util-linux)
command -v mkswap >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "agentcg: need root to install: ${need[*]}" >&2; exit 1; fi
  echo "agentcg: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

# Real user-space peers for the evaluation (Meta's oomd, earlyoom): unpacked from Debian's packages into the
# virtualenv, not installed, since installing them would enable host-wide OOM daemons (agentcg.eval.peers).
peers=${AGENTCG_PEERS_DIR:-.venv/peers}
if ! [ -x "$peers/usr/bin/oomd" ] || ! [ -x "$peers/usr/bin/earlyoom" ]; then
  tmp=$(mktemp -d)
  chmod 755 "$tmp"  # apt's download user writes here
  (cd "$tmp" && { apt-get download -q oomd earlyoom libjsoncpp25 >/dev/null 2>&1 ||
                  { apt-get update -q >/dev/null && apt-get download -q oomd earlyoom libjsoncpp25 >/dev/null; }; })
  rm -rf "$peers" && mkdir -p "$peers"
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$peers"; done
  rm -rf "$tmp"
fi
