#!/usr/bin/env bash
# Install Debian's Chromium (/usr/bin/chromium), the browser the UI tests (ptdata_tests/test_ui.py) drive headless
# with playwright: playwright's own browser download cannot work here, so it is pointed at this one.
# When it is already there it returns at once; when it cannot be installed it says so and exits 0: the browser test
# then skips, or fails where PTDATA_REQUIRE_BROWSER=1 (as in .ci/run).
set -u

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "chromium.sh: $CHROMIUM already installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium.sh: apt-get not available; the browser test will not run"
    exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        echo "chromium.sh: not root and no passwordless sudo; the browser test will not run"
        exit 0
    fi
fi

# sudo resets the environment, hence env; ${a[@]+...} keeps an empty array safe under set -u on old bash
apt() {
    ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get "$@" >/dev/null
}

# without recommends (udev, upower, mesa, a notification daemon: nothing a headless browser uses), but with a font,
# so that a bare machine still renders the UI's text
if apt update -qq && apt install -y -qq --no-install-recommends chromium fonts-liberation && [ -x "$CHROMIUM" ]; then
    echo "chromium.sh: $("$CHROMIUM" --version 2>/dev/null || echo chromium) installed"
else
    echo "chromium.sh: installing chromium with apt-get failed; the browser test will not run"
fi
exit 0
