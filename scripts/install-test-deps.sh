#!/usr/bin/env bash
# Install what the tests run for real beside the Python venv: Prometheus and
# Alertmanager and PostgreSQL (Debian packages), and a separate venv holding
# Milvus 2.3.5 (the only Milvus that serves /metrics and installs from PyPI).
#
# Idempotent: each step is skipped when its result is already there, so CI can
# run it on every run.  Needs root (or sudo) for apt-get only when a package is
# missing.  Services are not started: tests start their own on 127.0.0.1.
#
#   bash scripts/install-test-deps.sh            # everything
#   SKIP_APT=1 bash scripts/install-test-deps.sh # only the Milvus venv
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MILVUS_VERSION="2.3.5"
MILVUS_VENV="$ROOT/.test-servers/milvus-venv"
MILVUS_BIN_CACHE="$ROOT/.test-servers/milvus-bin"
started=$(date +%s)

log() { printf '[install-test-deps] %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root for: $*"
        return 1
    fi
}

# ---------------------------------------------------------------- apt packages
apt_missing=()
command -v prometheus >/dev/null 2>&1 || apt_missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || apt_missing+=(prometheus-alertmanager)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || apt_missing+=(postgresql)
# kubectl renders deploy/'s kustomizations in tests (tests/deploy); no cluster is contacted.
command -v kubectl >/dev/null 2>&1 || apt_missing+=(kubectl)

if [ "${SKIP_APT:-}" = "1" ]; then
    log "SKIP_APT=1: not installing ${apt_missing[*]:-anything}"
elif [ "${#apt_missing[@]}" -gt 0 ]; then
    log "installing ${apt_missing[*]}"
    # The packages' postinst scripts would start system-wide services (and
    # postgresql would create a cluster listening on 5432); tests need none of
    # that.  policy-rc.d answering 101 is Debian's way to say "do not start";
    # the drop-in stops postgresql-common from creating the main cluster.
    policy_added=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
        policy_added=1
    fi
    cleanup_policy() { if [ "$policy_added" = 1 ]; then as_root rm -f /usr/sbin/policy-rc.d; fi; }
    trap cleanup_policy EXIT
    as_root mkdir -p /etc/postgresql-common/createcluster.d
    as_root sh -c 'echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/milvus-chatops-tests.conf'
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
    cleanup_policy
    trap - EXIT
else
    log "prometheus, prometheus-alertmanager, postgresql and kubectl already installed"
fi

# ---------------------------------------------------------------- Milvus 2.3.5 venv
if [ -x "$MILVUS_VENV/bin/python" ] \
    && "$MILVUS_VENV/bin/python" -c "import milvus, sys; sys.exit(milvus.__version__ != '$MILVUS_VERSION')" 2>/dev/null; then
    log "milvus $MILVUS_VERSION venv already in $MILVUS_VENV"
else
    log "creating $MILVUS_VENV with milvus==$MILVUS_VERSION"
    rm -rf "$MILVUS_VENV"
    mkdir -p "$(dirname "$MILVUS_VENV")"
    # The project venv's interpreter when there is one (same Python as the
    # tests), else python3.  `milvus` has no dependencies, so plain pip is fast.
    PY="${PYTHON:-}"
    if [ -z "$PY" ]; then
        if [ -x "$ROOT/.venv/bin/python" ]; then
            PY="$(readlink -f "$ROOT/.venv/bin/python")"
        else
            PY="python3"
        fi
    fi
    if command -v uv >/dev/null 2>&1; then
        uv venv -q --python "$PY" "$MILVUS_VENV"
        VIRTUAL_ENV="$MILVUS_VENV" uv pip install -q "milvus==$MILVUS_VERSION"
    else
        "$PY" -m venv "$MILVUS_VENV"
        "$MILVUS_VENV/bin/pip" install -q --disable-pip-version-check "milvus==$MILVUS_VERSION"
    fi
fi

# Unpack Milvus' 250 MB of binaries once here rather than in the first test.
"$MILVUS_VENV/bin/python" "$ROOT/scripts/milvus-server.py" --prepare-only --bin-cache "$MILVUS_BIN_CACHE"

log "done in $(( $(date +%s) - started )) s"
