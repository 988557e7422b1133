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

. "$(dirname "$0")/apt.sh"
if apt_install "the PostgreSQL tests will be skipped" postgresql && have_server; then
    echo "postgres.sh: PostgreSQL server binaries installed"
fi
exit 0
