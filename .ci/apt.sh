# Sourced by the .ci install scripts: `apt_install WHAT PACKAGE...` installs Debian packages as root, or through
# passwordless sudo. It returns 0 on success; otherwise it says why (WHAT names what goes without them) and returns 1,
# so the caller can carry on: the tests that need the packages skip, or fail where the caller asks for that.

apt_install() {
    local what=$1
    shift
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "${0##*/}: apt-get not available; $what"
        return 1
    fi
    local as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            as_root=(sudo -n)
        else
            echo "${0##*/}: not root and no passwordless sudo; $what"
            return 1
        fi
    fi
    # sudo resets the environment, hence env; ${a[@]+...} keeps an empty array safe under set -u on old bash
    local apt=(${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get)
    if "${apt[@]}" update -qq >/dev/null && "${apt[@]}" install -y -qq --no-install-recommends "$@" >/dev/null; then
        return 0
    fi
    echo "${0##*/}: installing $* with apt-get failed; $what"
    return 1
}
