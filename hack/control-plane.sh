#!/usr/bin/env bash
# Provide the binaries of a test Kubernetes control plane (the envtest set: kube-apiserver and
# etcd, plus kube-controller-manager, and optionally kube-scheduler and kwok) of one pinned
# Kubernetes release.
#
#   hack/control-plane.sh [COMPONENT...]
#
# COMPONENT is any of kube-apiserver, etcd, kube-controller-manager, kube-scheduler, kwok, or
# "all" (default: kube-apiserver etcd kube-controller-manager). kwok only runs pods that are
# bound to its fake nodes, so a cluster with kwok needs kube-scheduler too; with kwok comes
# kwok-stages.yaml (its stock stage configs, to pass as kwok --config). The last line on stdout
# is one directory that holds every requested file under its usual name; progress goes to stderr.
#
# Where each binary comes from, first match wins:
#   1. TEST_ASSET_KUBE_APISERVER, TEST_ASSET_ETCD, TEST_ASSET_KUBE_CONTROLLER_MANAGER,
#      TEST_ASSET_KUBE_SCHEDULER, TEST_ASSET_KWOK: the path of that one binary;
#   2. KUBEBUILDER_ASSETS: a directory with kube-apiserver and etcd (setup-envtest's layout;
#      the other binaries are taken from it when present);
#   3. otherwise it is built once with the Go module proxy into
#      ${AUTOMATOR_KUBE_CACHE:-$HOME/.cache/automator/kube}/<kubernetes version>/ and reused.
# When the binaries come from more than one place, the printed directory is a directory of
# symlinks under the cache.
#
# The build uses the scratch-module technique: a go.mod that requires k8s.io/kubernetes and
# replaces every staging module (the list read from that release's own go.mod) by its
# published v0.x version; etcd and kwok are built in scratch modules of their own, so each
# gets the dependency versions it was released with.
#
# Exit codes: 0 ok; 2 no binaries and no Go toolchain to build them (callers may skip with a
# loud reason); 1 anything else (a build failed, an override points at nothing).
#
# Environment: AUTOMATOR_KUBE_VERSION, AUTOMATOR_ETCD_VERSION, AUTOMATOR_KWOK_VERSION override
# the pins (at your own risk); AUTOMATOR_KUBE_BUILD_JOBS (default 2) is go build -p;
# AUTOMATOR_KUBE_NICE (default 10) is the build's niceness.
set -euo pipefail

# --- pins -----------------------------------------------------------------------------------
# Newest Kubernetes release whose go.mod (go 1.26.0) builds with the Go 1.26 toolchain here.
KUBE_VERSION="${AUTOMATOR_KUBE_VERSION:-v1.37.2}"
# The etcd of that release: its build/dependencies.yaml, kubeadm's DefaultEtcdVersion and the
# go.etcd.io/etcd/*/v3 requirements of its go.mod all say 3.7.0.
ETCD_VERSION="${AUTOMATOR_ETCD_VERSION:-v3.7.0}"
# kwok release built against the Kubernetes 1.36 libraries (it drives any recent apiserver).
KWOK_VERSION="${AUTOMATOR_KWOK_VERSION:-v0.8.0}"

CACHE_ROOT="${AUTOMATOR_KUBE_CACHE:-${HOME:-/root}/.cache/automator/kube}"
JOBS="${AUTOMATOR_KUBE_BUILD_JOBS:-2}"
NICE="${AUTOMATOR_KUBE_NICE:-10}"

log() { echo "control-plane: $*" >&2; }
die() {
  local code="$1"
  shift
  log "error: $*"
  exit "$code"
}

# --- arguments ------------------------------------------------------------------------------
ALL=(kube-apiserver etcd kube-controller-manager kube-scheduler kwok)
want=()
for arg in "$@"; do
  case "$arg" in
    all) want=("${ALL[@]}") ;;
    kube-apiserver | etcd | kube-controller-manager | kube-scheduler | kwok) want+=("$arg") ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
      exit 0
      ;;
    *) die 1 "unknown component '$arg' (expected: ${ALL[*]} or all)" ;;
  esac
done
[ ${#want[@]} -gt 0 ] || want=(kube-apiserver etcd kube-controller-manager)

asset_env() {
  case "$1" in
    kube-apiserver) echo TEST_ASSET_KUBE_APISERVER ;;
    etcd) echo TEST_ASSET_ETCD ;;
    kube-controller-manager) echo TEST_ASSET_KUBE_CONTROLLER_MANAGER ;;
    kube-scheduler) echo TEST_ASSET_KUBE_SCHEDULER ;;
    kwok) echo TEST_ASSET_KWOK ;;
  esac
}

# --- 1 and 2: binaries the user already has -------------------------------------------------
declare -A path=()
missing=()
for c in "${want[@]}"; do
  var="$(asset_env "$c")"
  if [ -n "${!var:-}" ]; then
    if [ ! -f "${!var}" ] || [ ! -x "${!var}" ]; then die 1 "$var=${!var} is not an executable file"; fi
    path[$c]="$(readlink -f "${!var}")"
  elif [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/$c" ]; then
    path[$c]="$(readlink -f "$KUBEBUILDER_ASSETS/$c")"
  elif [ -n "${KUBEBUILDER_ASSETS:-}" ] && { [ "$c" = kube-apiserver ] || [ "$c" = etcd ]; }; then
    die 1 "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no executable $c (set $var, or unset KUBEBUILDER_ASSETS to build)"
  else
    missing+=("$c")
  fi
done

# --- 3: build the rest into the per-version cache -------------------------------------------
DIR="$CACHE_ROOT/$KUBE_VERSION"

# The version each cached binary must have been built from (kept in .<name>.version).
expected_version() {
  case "$1" in
    kube-apiserver | kube-controller-manager | kube-scheduler) echo "$KUBE_VERSION" ;;
    etcd) echo "$ETCD_VERSION" ;;
    kwok) echo "$KWOK_VERSION" ;;
  esac
}
cached() { [ -x "$DIR/$1" ] && [ "$(cat "$DIR/.$1.version" 2>/dev/null)" = "$(expected_version "$1")" ]; }

modinfo() { # FIELD MODULE@VERSION -> that field of `go mod download -json` (downloads the module)
  local out
  out="$(cd "$DIR" && GOFLAGS=-mod=readonly go mod download -json "$2")" || die 1 "go mod download $2 failed: $out"
  sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p" <<<"$out"
}
gomod_of() { modinfo GoMod "$1"; } # MODULE@VERSION -> path of its go.mod in the module cache

# go and godebug lines of a dependency's go.mod, so the scratch module builds with the same
# language version and runtime defaults as the upstream release.
header_of() { grep -E '^(go|godebug) ' "$1" || true; }

check_go() { # GO_MOD: fail clearly when the release needs a newer Go than the one installed
  local need have
  need="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$1" | head -n1)"
  have="$(go env GOVERSION | sed 's/^go//; s/[^0-9.].*//')"
  if [ -n "$need" ] && [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)" != "$need" ]; then
    [ "$(go env GOTOOLCHAIN)" != local ] ||
      die 1 "$1 needs Go >= $need, this is Go $have (pin an older release, or export GOTOOLCHAIN=go$need)"
    log "$1 needs Go >= $need, this is Go $have: the go command will fetch a newer toolchain"
  fi
}

gobuild() { # SRC_DIR OUT_NAME PACKAGE [LDFLAGS...]
  local src="$1" name="$2" pkg="$3" ldflags="-s -w ${4:-}" start
  start=$(date +%s)
  log "building $name ($pkg) ..."
  (cd "$src" && CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=mod -p=$JOBS" nice -n "$NICE" \
    go build -trimpath -buildvcs=false -ldflags="$ldflags" -o "$DIR/.tmp-$name.$$" "$pkg") >&2 ||
    { rm -f "$DIR/.tmp-$name.$$"; die 1 "go build of $name failed (see above)"; }
  mv -f "$DIR/.tmp-$name.$$" "$DIR/$name"
  expected_version "$name" >"$DIR/.$name.version"
  log "built $name in $(($(date +%s) - start))s ($(du -h "$DIR/$name" | cut -f1))"
}

build_kube() { # kube-apiserver, kube-controller-manager, kube-scheduler from one scratch module
  local src="$DIR/src/kubernetes" gomod staging_version staging m
  mkdir -p "$src"
  gomod="$(gomod_of "k8s.io/kubernetes@$KUBE_VERSION")"
  [ -f "$gomod" ] || die 1 "no go.mod for k8s.io/kubernetes@$KUBE_VERSION"
  check_go "$gomod"
  # staging modules are published as v0.<minor>.<patch>[-pre] alongside v1.<minor>.<patch>[-pre]
  staging_version="v0.${KUBE_VERSION#v1.}"
  staging="$(grep -oE '^[[:space:]]*(replace[[:space:]]+)?k8s\.io/[A-Za-z0-9._-]+ => \./staging/src/k8s\.io/' "$gomod" |
    sed -E 's/^[[:space:]]*(replace[[:space:]]+)?//; s/ => .*//' | sort -u)"
  [ -n "$staging" ] || die 1 "found no staging replace directives in $gomod"
  if [ ! -f "$src/go.mod" ] || ! grep -q "k8s.io/kubernetes $KUBE_VERSION\$" "$src/go.mod"; then
    {
      echo "// Generated by hack/control-plane.sh: builds the k8s.io/kubernetes/cmd/* binaries."
      echo "module automator.local/kube-build"
      echo
      header_of "$gomod"
      echo
      echo "require k8s.io/kubernetes $KUBE_VERSION"
      echo
      echo "replace ("
      for m in $staging; do printf '\t%s => %s %s\n' "$m" "$m" "$staging_version"; done
      echo ")"
    } >"$src/go.mod"
    rm -f "$src/go.sum"
    log "scratch module for k8s.io/kubernetes $KUBE_VERSION with $(wc -w <<<"$staging") staging modules at $staging_version"
  fi
  local minor="${KUBE_VERSION#v1.}"
  minor="${minor%%.*}"
  local x="-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
  x="$x -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  x="$x -X k8s.io/component-base/version.gitTreeState=clean"
  x="$x -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
  x="$x -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  for m in "$@"; do gobuild "$src" "$m" "k8s.io/kubernetes/cmd/$m" "$x"; done
}

build_single() { # NAME MODULE VERSION PACKAGE: a main package built in a scratch module of its own
  local name="$1" mod="$2" version="$3" pkg="$4" src="$DIR/src/$1" gomod
  mkdir -p "$src"
  gomod="$(gomod_of "$mod@$version")"
  [ -f "$gomod" ] || die 1 "no go.mod for $mod@$version"
  check_go "$gomod"
  if [ ! -f "$src/go.mod" ] || ! grep -q "^require $mod $version\$" "$src/go.mod"; then
    {
      echo "// Generated by hack/control-plane.sh: builds $name."
      echo "module automator.local/$name-build"
      echo
      header_of "$gomod"
      echo
      echo "require $mod $version"
    } >"$src/go.mod"
    rm -f "$src/go.sum"
  fi
  gobuild "$src" "$name" "$pkg"
}

# kwok simulates nothing without stage configs (v0.8 exits with "no stages found"); take the
# stock ones of its release from the module: nodes become Ready and keep a lease, pods become
# Running and Ready at once (and Succeeded when they are a Job's), deletions finish.
KWOK_STAGES=(node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
  pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml)
write_kwok_stages() {
  local moddir f out="$DIR/kwok-stages.yaml"
  moddir="$(modinfo Dir "sigs.k8s.io/kwok@$KWOK_VERSION")"
  {
    echo "# Stock kwok $KWOK_VERSION stages (kustomize/stage/...), written by hack/control-plane.sh."
    echo "# Use: kwok --config=THIS --manage-all-nodes=true --node-lease-duration-seconds=40 ..."
    for f in "${KWOK_STAGES[@]}"; do
      [ -f "$moddir/kustomize/stage/$f" ] || die 1 "kwok $KWOK_VERSION has no kustomize/stage/$f"
      echo "---"
      cat "$moddir/kustomize/stage/$f"
    done
  } >"$out.tmp.$$"
  mv -f "$out.tmp.$$" "$out"
  echo "$KWOK_VERSION" >"$DIR/.kwok-stages.yaml.version"
}

if [ ${#missing[@]} -gt 0 ]; then
  todo=()
  for c in "${missing[@]}"; do cached "$c" || todo+=("$c"); done
  if [ ${#todo[@]} -gt 0 ]; then
    command -v go >/dev/null 2>&1 ||
      die 2 "no Go toolchain to build ${todo[*]}, and no binaries given (set KUBEBUILDER_ASSETS or TEST_ASSET_*)"
    mkdir -p "$DIR"
    exec 9>"$DIR/.lock"
    if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
      log "another build holds $DIR/.lock; waiting"
      flock 9
    fi
    # re-check under the lock: a concurrent caller may have built them meanwhile
    kube=()
    for c in "${todo[@]}"; do
      cached "$c" && continue
      case "$c" in
        kube-apiserver | kube-controller-manager | kube-scheduler) kube+=("$c") ;;
      esac
    done
    log "go $(go env GOVERSION), cache $DIR"
    [ ${#kube[@]} -eq 0 ] || build_kube "${kube[@]}"
    for c in "${todo[@]}"; do
      cached "$c" && continue
      case "$c" in
        etcd) build_single etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 ;;
        kwok) build_single kwok sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok ;;
      esac
    done
    exec 9>&-
  fi
  for c in "${missing[@]}"; do path[$c]="$DIR/$c"; done
fi

files=("${want[@]}")
if [ -n "${path[kwok]:-}" ]; then
  files+=(kwok-stages.yaml)
  if [ "$(dirname "${path[kwok]}")" != "$DIR" ] && [ -f "$(dirname "${path[kwok]}")/kwok-stages.yaml" ]; then
    path[kwok-stages.yaml]="$(dirname "${path[kwok]}")/kwok-stages.yaml"
  else
    if [ "$(cat "$DIR/.kwok-stages.yaml.version" 2>/dev/null)" != "$KWOK_VERSION" ] || [ ! -f "$DIR/kwok-stages.yaml" ]; then
      command -v go >/dev/null 2>&1 || die 2 "no kwok-stages.yaml beside ${path[kwok]}, and no Go toolchain to fetch kwok's stock stages"
      mkdir -p "$DIR"
      write_kwok_stages
    fi
    path[kwok-stages.yaml]="$DIR/kwok-stages.yaml"
  fi
fi

# --- one directory with every requested binary ----------------------------------------------
dirs=()
for c in "${files[@]}"; do
  [ "$(basename "${path[$c]}")" = "$c" ] && dirs+=("$(dirname "${path[$c]}")") || dirs+=("-")
done
if [ "$(printf '%s\n' "${dirs[@]}" | sort -u | wc -l)" -eq 1 ] && [ "${dirs[0]}" != "-" ]; then
  echo "${dirs[0]}"
  exit 0
fi
key="$(for c in "${files[@]}"; do echo "$c=${path[$c]}"; done | sha256sum | cut -c1-16)"
links="$CACHE_ROOT/links/$key"
mkdir -p "$links"
for c in "${files[@]}"; do ln -sfn "${path[$c]}" "$links/$c"; done
log "binaries come from several places (mind version skew); linked them in $links"
echo "$links"
