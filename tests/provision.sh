#!/usr/bin/env bash
# What the suite needs beyond the virtualenv, installed once from Debian's packages when
# missing: Chromium for the admin page's browser tests (Playwright drives it; no browser
# download). `make test` runs this; it needs root (or sudo) only when something is missing,
# and otherwise says which tests will be skipped and why.
set -u
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

apt=(apt-get)
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then apt=(sudo apt-get); else
    echo "provision: not root: install ${missing[*]} (apt-get install ${missing[*]}); until then those tests are skipped" >&2
    exit 0
  fi
fi
echo "provision: installing ${missing[*]} from Debian's packages" >&2
if ! { "${apt[@]}" update -qq && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq "${missing[@]}"; } >/tmp/cityhub-provision.log 2>&1; then
  echo "provision: could not install ${missing[*]} (see /tmp/cityhub-provision.log); those tests are skipped" >&2
fi
exit 0
