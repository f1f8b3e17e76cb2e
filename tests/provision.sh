#!/usr/bin/env bash
# What the suite needs beyond the virtualenv, installed once when missing:
#  - Chromium for the admin page's browser tests (Playwright drives it; no browser
#    download), from Debian's packages;
#  - PHP with its soap extension and Node.js with npm, for the tests where other SOAP
#    stacks call the hub from its WSDL (tests/test_interop_clients.py), from Debian's
#    packages, and the npm package soap (pinned) in $HUB_NODE_SOAP_DIR (/tmp/nodesoap);
#  - a CJK font (fonts-wqy-microhei) for the caption of the numbering QR code.
# `make test` runs this; it needs root (or sudo) only when something is missing, and
# otherwise says which tests will be skipped and why.
set -u
NODE_SOAP_DIR="${HUB_NODE_SOAP_DIR:-/tmp/nodesoap}"
NODE_SOAP_VERSION=1.13.0
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v php >/dev/null 2>&1 || missing+=(php-cli)
{ command -v php >/dev/null 2>&1 && php -m 2>/dev/null | grep -qix soap; } || missing+=(php-soap)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# a CJK font for the numbering QR code's caption (mapping/certificate_qr.py)
fc-list :lang=zh 2>/dev/null | grep -q . || missing+=(fonts-wqy-microhei)

if [ ${#missing[@]} -gt 0 ]; then
  apt=(apt-get)
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then apt=(sudo apt-get); else
      echo "provision: not root: install ${missing[*]} (apt-get install ${missing[*]}); until then those tests are skipped" >&2
      apt=()
    fi
  fi
  if [ ${#apt[@]} -gt 0 ]; then
    echo "provision: installing ${missing[*]} from Debian's packages" >&2
    if ! { "${apt[@]}" update -qq && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq "${missing[@]}"; } >/tmp/cityhub-provision.log 2>&1; then
      echo "provision: could not install ${missing[*]} (see /tmp/cityhub-provision.log); those tests are skipped" >&2
    fi
  fi
fi

if command -v npm >/dev/null 2>&1 && \
   ! grep -qs "\"version\": \"$NODE_SOAP_VERSION\"" "$NODE_SOAP_DIR/node_modules/soap/package.json"; then
  echo "provision: npm install soap@$NODE_SOAP_VERSION in $NODE_SOAP_DIR" >&2
  mkdir -p "$NODE_SOAP_DIR"
  if ! (cd "$NODE_SOAP_DIR" && npm install --no-audit --no-fund --silent "soap@$NODE_SOAP_VERSION") \
       >>/tmp/cityhub-provision.log 2>&1; then
    echo "provision: npm install soap failed (see /tmp/cityhub-provision.log); the node-soap test is skipped" >&2
  fi
fi
exit 0
