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

. "$(dirname "$0")/apt.sh"
# without recommends (udev, upower, mesa, a notification daemon: nothing a headless browser uses), but with a font,
# so that a bare machine still renders the UI's text
if apt_install "the browser test will not run" chromium fonts-liberation && [ -x "$CHROMIUM" ]; then
    echo "chromium.sh: $("$CHROMIUM" --version 2>/dev/null || echo chromium) installed"
fi
exit 0
