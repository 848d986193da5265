#!/usr/bin/env bash
# Refresh the vendored Chart.js of `meshgen report` from the npm registry:
#   tools/vendor_chartjs.sh [VERSION]      (default: the version named in generator/report/assets/SOURCE)
# Writes generator/report/assets/chart.umd.min.js, chart.js.LICENSE.md and SOURCE. Needs npm.
set -euo pipefail
cd "$(dirname "$0")/.."
assets=generator/report/assets
version=${1:-$(sed -n 's/^chart.umd.min.js: Chart.js \([0-9.]*\),.*/\1/p' "$assets/SOURCE")}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "chart.js@$version" >/dev/null && tar xzf chart.js-*.tgz)
cp "$work/package/dist/chart.umd.min.js" "$assets/chart.umd.min.js"
cp "$work/package/LICENSE.md" "$assets/chart.js.LICENSE.md"
sum=$(sha256sum "$assets/chart.umd.min.js" | cut -d' ' -f1)
cat > "$assets/SOURCE" <<SOURCE
chart.umd.min.js: Chart.js $version, the UMD build (dist/chart.umd.min.js) of the npm package chart.js@$version
  https://www.chartjs.org  https://github.com/chartjs/Chart.js
  licence: MIT, copied in chart.js.LICENSE.md (the package's LICENSE.md)
  sha256: $sum
  refresh: tools/vendor_chartjs.sh [VERSION]
report.js, report.css: meshgen's own (Apache-2.0), drawing each page's JSON with Chart.js.
SOURCE
echo "vendored Chart.js $version into $assets (sha256 $sum)"
