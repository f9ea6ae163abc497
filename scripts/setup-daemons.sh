#!/usr/bin/env bash
# Installs the Debian packages the daemon integration tests need (Docker 20.10,
# containerd 1.6, podman, CNI plugins, the distribution registry, iptables;
# openssl and apache2-utils' htpasswd make the registry tests' CA and users),
# only those that are missing, WITHOUT leaving any of their system services
# running or enabled: the tests start private daemons themselves
# (test/integration/daemons/*.ts), and a system dockerd/containerd would fight
# them over bridges, iptables chains and /run/containerd.
#
# A dockerd/containerd/registry that was already running before this script
# is left alone (it is not ours to stop).
source "$(dirname "$0")/lib.sh"

want=(docker.io containerd podman containernetworking-plugins docker-registry iptables openssl apache2-utils)
# Services the packages above ship (systemd units and/or /etc/init.d scripts).
units=(docker.service docker.socket containerd.service docker-registry.service podman.service podman.socket podman-restart.service podman-auto-update.service podman-auto-update.timer podman-clean-transient.service)
sysv=(docker containerd docker-registry)
daemons=(/usr/sbin/dockerd /usr/bin/dockerd /usr/bin/containerd /usr/bin/docker-registry)

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
((${#missing[@]})) || exit 0

# docker.io conflicts with Docker's own packages: installing it would remove them.
for p in docker-ce docker-ce-cli containerd.io moby-engine; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    echo "setup-daemons: $p is installed; refusing to replace it with Debian's docker.io/containerd (needed: ${missing[*]})" >&2
    exit 1
  fi
done

have_systemd=0
[[ -d /run/systemd/system ]] && have_systemd=1

# pids of the daemons above, by executable (not by name: never match ours by accident)
# Skips the tests' own private daemons (their argv names /tmp/tugboat-d-*): a
# test run may be starting some while this script runs.
daemon_pids() {
  local pid exe d
  for pid in /proc/[0-9]*; do
    exe="$(readlink "$pid/exe" 2>/dev/null)" || continue
    for d in "${daemons[@]}"; do
      if [[ "$exe" == "$d" ]] && ! tr '\0' ' ' <"$pid/cmdline" 2>/dev/null | grep -q '/tmp/tugboat-d-'; then
        echo "${pid#/proc/}:$exe"
      fi
    done
  done
  return 0
}
before_pids="$(daemon_pids | sort)"
was_running() { grep -q ":$1\$" <<<"$before_pids"; }
active_before=()
if ((have_systemd)); then
  for u in "${units[@]}"; do
    systemctl is-active --quiet "$u" 2>/dev/null && active_before+=("$u")
  done
fi

# A policy-rc.d that answers 101 makes invoke-rc.d and deb-systemd-invoke skip
# every "start" in the postinst scripts, so nothing runs even briefly. If the
# machine already has one (Docker-built images do), keep it as it is.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=1
fi
cleanup_policy() { ((own_policy)) && rm -f "$policy"; return 0; }
trap cleanup_policy EXIT

log "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: keeps needrestart (it restarts services) and apparmor out.
apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${missing[@]}" >/dev/null
cleanup_policy

# Whatever a postinst managed to start or enable anyway (deb-systemd-helper
# enables units even when policy-rc.d forbids starting them): stop, disable, mask.
was_active() { local a; for a in "${active_before[@]}"; do [[ "$a" == "$1" ]] && return 0; done; return 1; }
if ((have_systemd)); then
  for u in "${units[@]}"; do
    was_active "$u" && continue
    systemctl cat "$u" >/dev/null 2>&1 || continue
    state="$(systemctl is-enabled "$u" 2>/dev/null || true)"
    if [[ "$state" != enabled* ]] && ! systemctl is-active --quiet "$u" 2>/dev/null; then continue; fi
    systemctl stop "$u" >/dev/null 2>&1 || true
    systemctl disable "$u" >/dev/null 2>&1 || true
    systemctl mask "$u" >/dev/null 2>&1 || true
  done
else
  declare -A sysv_exe=([docker]=/usr/sbin/dockerd [containerd]=/usr/bin/containerd [docker-registry]=/usr/bin/docker-registry)
  for s in "${sysv[@]}"; do
    was_running "${sysv_exe[$s]}" && continue
    [[ -x /etc/init.d/$s ]] && update-rc.d -f "$s" disable >/dev/null 2>&1 || true
  done
fi
# Without systemd (containers, firecracker VMs) nothing tracks the daemons:
# kill those that were not running before, by pid.
new_pids="$(comm -13 <(echo "$before_pids") <(daemon_pids | sort) | cut -d: -f1)"
for pid in $new_pids; do
  log "stopping daemon started by a postinst: pid $pid ($(readlink /proc/"$pid"/exe 2>/dev/null))"
  kill -TERM "$pid" 2>/dev/null || true
done
for pid in $new_pids; do
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
done
exit 0
