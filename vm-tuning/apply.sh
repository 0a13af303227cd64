#!/usr/bin/env bash
# vm-tuning/apply.sh: show what ringmcp's host tuning would change; change it only with
# --apply. Without --apply this is a dry run: it reads /proc/sys and /etc, prints the
# differences, and writes nothing anywhere (no temporary files either).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bash vm-tuning/apply.sh [--apply] [--root DIR]

Shows what vm-tuning/sysctl.d/60-ringmcp.conf and vm-tuning/limits.d/60-ringmcp.conf would
change on this host:
  - every kernel setting: its running value, and the value it would get;
  - a diff of /etc/sysctl.d/60-ringmcp.conf and /etc/security/limits.d/60-ringmcp.conf.
Nothing changes unless --apply is given. Values are only ever raised: where the host already
has more, its value is kept, in the running kernel and in the installed file (so the next
boot does not lower it either).

  --apply     install both files and write the new values to /proc/sys (needs root)
  --root DIR  read and write DIR/etc and DIR/proc/sys instead of /etc and /proc/sys
              (image builds, tests); needs no root
  -h, --help  this text
EOF
}

apply=0
root=""
while [ $# -gt 0 ]; do
  case "$1" in
    --apply) apply=1 ;;
    --root)
      [ $# -ge 2 ] || { usage >&2; exit 2; }
      root="${2%/}"
      shift
      ;;
    -h | --help) usage; exit 0 ;;
    *) echo "apply.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sysctl_src="$here/sysctl.d/60-ringmcp.conf"
limits_src="$here/limits.d/60-ringmcp.conf"
sysctl_dst="$root/etc/sysctl.d/60-ringmcp.conf"
limits_dst="$root/etc/security/limits.d/60-ringmcp.conf"
proc_sys="$root/proc/sys"
meminfo="$root/proc/meminfo"

if [ "$apply" = 1 ] && [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
  echo "apply.sh: --apply changes /etc and /proc/sys; run it as root (sudo)" >&2
  exit 1
fi

# The running value of a dotted sysctl key, whitespace collapsed; fails when it is absent.
live() {
  local f="$proc_sys/${1//.//}" v
  [ -r "$f" ] || return 1
  read -ra v <"$f" || [ "${#v[@]}" -gt 0 ] || return 1
  echo "${v[*]}"
}

# The value to set for $1: ours ($2), raised to the running value ($3) wherever that is more.
# A port range counts as more when it is wider.
merge() {
  local key="$1" i
  local -a o l r=()
  read -ra o <<<"$2"
  read -ra l <<<"$3"
  if [ "${#o[@]}" != "${#l[@]}" ]; then
    echo "${o[*]}"
    return
  fi
  for i in "${!o[@]}"; do
    if [ "$key" = net.ipv4.ip_local_port_range ] && [ "$i" = 0 ]; then
      r+=($((o[i] < l[i] ? o[i] : l[i])))
    else
      r+=($((o[i] > l[i] ? o[i] : l[i])))
    fi
  done
  echo "${r[*]}"
}

# Bytes of RAM, or 0 when unknown.
ram_bytes() {
  local k v _
  [ -r "$meminfo" ] || { echo 0; return; }
  while read -r k v _; do
    if [ "$k" = "MemTotal:" ]; then
      echo $((v * 1024))
      return
    fi
  done <"$meminfo"
  echo 0
}

page_bytes="$(getconf PAGESIZE 2>/dev/null || echo 4096)"
ram="$(ram_bytes)"

# Plan: for every key of the sysctl file, its running value and the value to set.
declare -a keys=()
declare -A optional=() ours=() cur=() want=() note=()
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in '' | '#'* | ';'*) continue ;; esac
  opt=""
  if [ "${line:0:1}" = "-" ]; then
    opt="-"
    line="${line:1}"
  fi
  read -r key <<<"${line%%=*}"
  read -ra val <<<"${line#*=}"
  keys+=("$key")
  optional[$key]="$opt"
  ours[$key]="${val[*]}"
  if running="$(live "$key")"; then
    cur[$key]="$running"
    merged="$(merge "$key" "${val[*]}" "$running")"
    if [ "$key" = net.ipv4.tcp_mem ] && [ "$ram" -gt 0 ]; then
      read -ra m <<<"$merged"
      if [ $((m[2] * page_bytes)) -gt $((ram / 4)) ] && [ "$merged" != "$running" ]; then
        merged="$running"
        note[$key]="kept: max ${m[2]} pages would exceed a quarter of RAM"
      fi
    fi
    want[$key]="$merged"
  else
    want[$key]="${val[*]}"
    note[$key]="absent on this kernel (module not loaded or kernel too old)"
  fi
done <"$sysctl_src"

# The sysctl file to install: ours, with every value raised to the running one where needed.
render_sysctl() {
  local line opt key
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
      '' | '#'* | ';'*) printf '%s\n' "$line"; continue ;;
    esac
    opt=""
    if [ "${line:0:1}" = "-" ]; then
      opt="-"
      line="${line:1}"
    fi
    read -r key <<<"${line%%=*}"
    printf '%s%s = %s\n' "$opt" "$key" "${want[$key]}"
  done <"$sysctl_src"
}

show_diff() {
  local dst="$1"
  shift
  local old="$dst"
  [ -f "$old" ] || old=/dev/null
  if diff -u --label "$dst (installed)" --label "$dst (new)" "$old" <("$@") ; then
    echo "  (already installed, identical)"
  fi
}

if [ "$apply" = 1 ]; then
  echo "ringmcp host tuning: APPLYING${root:+ under $root}"
else
  echo "ringmcp host tuning: dry run, nothing will be changed (apply with: sudo bash vm-tuning/apply.sh --apply)"
fi
echo
echo "== kernel settings: running value -> new value ($proc_sys)"
changes=0
for key in "${keys[@]}"; do
  if [ -z "${cur[$key]+set}" ]; then
    printf '  %-32s %s\n' "$key" "${note[$key]}"
  elif [ "${want[$key]}" = "${cur[$key]}" ]; then
    if [ -n "${note[$key]+set}" ]; then
      printf '  %-32s %s (%s)\n' "$key" "${cur[$key]}" "${note[$key]}"
    elif [ "${cur[$key]}" = "${ours[$key]}" ]; then
      printf '  %-32s %s (already set)\n' "$key" "${cur[$key]}"
    else
      printf '  %-32s %s (kept: the host has more than %s)\n' "$key" "${cur[$key]}" "${ours[$key]}"
    fi
  else
    printf '  %-32s %s -> %s\n' "$key" "${cur[$key]}" "${want[$key]}"
    changes=$((changes + 1))
  fi
done
echo
echo "== $sysctl_dst (applied at every boot)"
show_diff "$sysctl_dst" render_sysctl
echo
echo "== $limits_dst (for PAM logins of the ringmcp user; systemd units set their own limits)"
show_diff "$limits_dst" cat "$limits_src"
echo
echo "systemd units are not installed by this script: see docs/operations.md (Install)."

if [ "$apply" != 1 ]; then
  echo
  echo "dry run: nothing changed ($changes kernel setting(s) would change)."
  exit 0
fi

install_file() {
  local dst="$1" tmp
  shift
  mkdir -p "$(dirname "$dst")"
  tmp="$dst.ringmcp-new.$$"
  "$@" >"$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$dst"
  echo "installed $dst"
}

echo
install_file "$sysctl_dst" render_sysctl
install_file "$limits_dst" cat "$limits_src"
failed=0
for key in "${keys[@]}"; do
  [ -n "${cur[$key]+set}" ] || continue
  [ "${want[$key]}" != "${cur[$key]}" ] || continue
  if printf '%s\n' "${want[$key]}" >"$proc_sys/${key//.//}" 2>/dev/null; then
    echo "set $key = $(live "$key" || echo '?')"
  elif [ -n "${optional[$key]}" ]; then
    echo "could not set $key (optional, ignored)"
  else
    echo "apply.sh: could not set $key = ${want[$key]}" >&2
    failed=1
  fi
done
if [ "$failed" = 1 ]; then
  exit 1
fi
echo "applied. Check: ringmcp check-host --connections N"
