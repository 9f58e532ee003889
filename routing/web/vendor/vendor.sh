#!/usr/bin/env bash
# Re-copies the pinned browser assets (package-lock.json) into ../static/vendor/, with their licences.
# Only needed to change a version: the copies are committed, so the service needs neither npm nor a network.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --ignore-scripts
out=../static/vendor
rm -rf "$out" && mkdir -p "$out"
copy() {  # package, files...
    local package=$1; shift
    local version; version=$(node -p "require('./node_modules/$package/package.json').version")
    local dest="$out/$(basename "$package")"
    mkdir -p "$dest"
    for file in "$@"; do cp "node_modules/$package/$file" "$dest/"; done
    if [ -f "node_modules/$package/LICENSE" ]; then
        cp "node_modules/$package/LICENSE" "$dest/LICENSE"
    else  # published without its licence file: the monorepo's (same licence, same holders)
        cp node_modules/graphiql/LICENSE "$dest/LICENSE"
    fi
    echo "$package $version" > "$dest/VERSION"
}
copy react umd/react.production.min.js
copy react-dom umd/react-dom.production.min.js
copy graphiql graphiql.min.js graphiql.min.css
copy @graphiql/plugin-explorer dist/index.umd.js dist/style.css
copy lightweight-charts dist/lightweight-charts.standalone.production.js
rm -rf node_modules
