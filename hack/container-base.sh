#!/usr/bin/env bash
# Build a local stand-in for the Dockerfile's default base (python:3.11-slim) without pulling
# anything from a container registry: a Debian bookworm root file system (debootstrap,
# minbase, plus python3, python3-venv and ca-certificates), packed as a tarball for
# `docker import`. Debian bookworm's python3 is 3.11, which is what the official image has.
#
#   hack/container-base.sh        prints the tarball's path as the last line on stdout
#
# The CA certificates this machine adds to its trust store (/usr/local/share/ca-certificates,
# e.g. a TLS-inspecting proxy's) are added to the image's too, so pip and apt inside
# `docker build` reach their registries from here as the host does.
#
# The tarball is cached under ${AUTOMATOR_CONTAINER_CACHE:-$HOME/.cache/automator/container}
# by a content key: the hash of this script, of the mirror and of those certificates, so a
# change to any builds a new one (the old one is removed). A cold build takes about a minute
# (debootstrap downloads ~45 MB of packages); a warm call is instant.
#
# The mirror is the Debian mirror apt already uses (the first deb.debian.org-style URI for
# bookworm in /etc/apt/sources.list*), else http://deb.debian.org/debian; set
# AUTOMATOR_DEBIAN_MIRROR to override it.
#
# Exit codes: 0 ok; 2 debootstrap is missing or this is not root (callers may skip with a
# loud reason); 1 anything else (the build failed).
set -euo pipefail

SUITE=bookworm
INCLUDE=python3,python3-venv,ca-certificates
CACHE_ROOT="${AUTOMATOR_CONTAINER_CACHE:-${HOME:-/root}/.cache/automator/container}"

log() { echo "container-base: $*" >&2; }

case "${1:-}" in
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 0
    ;;
  "") ;;
  *)
    log "error: unexpected argument '$1' (see --help)"
    exit 1
    ;;
esac

apt_mirror() {
  local files=() f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  [ ${#files[@]} -gt 0 ] || return 0
  # deb822 stanzas ("URIs: ... / Suites: bookworm ...") and one-line "deb URI bookworm main".
  awk -v suite="$SUITE" '
    /^[[:space:]]*#/ { next }
    /^deb[[:space:]]/ { for (i = 2; i <= NF; i++) if ($i !~ /^\[/) { if ($(i + 1) == suite) { print $i; exit } break } }
    /^URIs:/ { uri = $2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite && uri != "" && uri !~ /security/) { print uri; exit } }
    /^[[:space:]]*$/ { uri = "" }
  ' "${files[@]}"
}

MIRROR="${AUTOMATOR_DEBIAN_MIRROR:-$(apt_mirror)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
LOCAL_CA=/usr/local/share/ca-certificates
local_cas() { find "$LOCAL_CA" -type f -name '*.crt' 2>/dev/null | LC_ALL=C sort; }
KEY="$( (cat "$0" && echo "$MIRROR" && local_cas | xargs -r cat) | sha256sum | cut -c1-16)"
TARBALL="$CACHE_ROOT/debian-$SUITE-$KEY.tar"

if [ -f "$TARBALL" ]; then
  echo "$TARBALL"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  log "debootstrap is not installed (bash hack/setup.sh installs it)"
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  log "debootstrap needs root (it chroots into the new file system)"
  exit 2
fi

mkdir -p "$CACHE_ROOT"
work="$(mktemp -d "$CACHE_ROOT/.build-XXXXXX")"
trap 'rm -rf "$work"' EXIT
log "debootstrap $SUITE (minbase + $INCLUDE) from $MIRROR into $TARBALL"
if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$work/root" "$MIRROR" \
  >"$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  log "error: debootstrap failed (full log above, last 30 lines)"
  exit 1
fi
if [ -n "$(local_cas)" ]; then
  mkdir -p "$work/root$LOCAL_CA"
  local_cas | xargs -r cp -t "$work/root$LOCAL_CA"
  chroot "$work/root" update-ca-certificates >/dev/null 2>&1
fi
# Slim it like the official image: no downloaded .debs, no apt lists.
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
tar --numeric-owner -C "$work/root" -cf "$work/base.tar" .
rm -f "$CACHE_ROOT/debian-$SUITE-"*.tar # older keys
mv "$work/base.tar" "$TARBALL"
echo "$TARBALL"
