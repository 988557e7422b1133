#!/usr/bin/env bash
# Install the PostgreSQL server binaries (initdb, pg_ctl) that the sql source's tests need.
# The tests start and stop their own throwaway cluster; this script starts nothing. When the binaries are
# already there it returns at once; when they cannot be installed it says so and exits 0: those tests skip.
set -u

have_server() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        return 0
    fi
    local bin
    for bin in /usr/lib/postgresql/*/bin; do
        if [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ]; then
            return 0
        fi
    done
    return 1
}

if have_server; then
    echo "postgres.sh: PostgreSQL server binaries already installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "postgres.sh: apt-get not available; the PostgreSQL tests will be skipped"
    exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        echo "postgres.sh: not root and no passwordless sudo; the PostgreSQL tests will be skipped"
        exit 0
    fi
fi

# sudo resets the environment, hence env; ${a[@]+...} keeps an empty array safe under set -u on old bash
apt() {
    ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get "$@" >/dev/null
}

if apt update -qq && apt install -y -qq --no-install-recommends postgresql && have_server; then
    echo "postgres.sh: PostgreSQL server binaries installed"
else
    echo "postgres.sh: installing PostgreSQL with apt-get failed; the PostgreSQL tests will be skipped"
fi
exit 0
