#!/usr/bin/env bash
# Install lxcow on Debian 12 as root: the Debian packages it needs, a virtual environment in
# .venv (made from /usr/bin/python3 so that it sees python3-lxc and python3-btrfsutil), and a
# link /usr/local/bin/lxcow.  With --test, also the tools the test suite uses.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

packages=(lxc btrfs-progs python3-lxc python3-btrfsutil python3-venv busybox-static
          util-linux iproute2 zstd xz-utils)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install.sh: installing ${missing[*]}" >&2
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check \
    --config-settings editable_mode=compat -e ".${extras}"
# A launcher of our own: the one pip writes imports `re` first, a few milliseconds per command.
rm -f /usr/local/bin/lxcow
printf '#!%s\nimport sys\nfrom lxcow.cli import main\nsys.exit(main())\n' \
    "$PWD/.venv/bin/python" > /usr/local/bin/lxcow
chmod 755 /usr/local/bin/lxcow
echo "install.sh: lxcow is installed as /usr/local/bin/lxcow" >&2
# Byte-compile now, so that the command starts fast even where Python may not write caches.
.venv/bin/python -m compileall -q lxcow
