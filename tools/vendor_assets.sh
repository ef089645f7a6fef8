#!/usr/bin/env bash
# Fetch MathJax, the Jupyter widget manager and require.js from the npm registry (pinned) into _vendor/ and _extra/,
# so the built book loads nothing from a CDN. Runs once; later builds reuse the folders.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f _vendor/.complete ]; then exit 0; fi
rm -rf _vendor _extra
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent mathjax@3.2.2 @jupyter-widgets/html-manager@1.0.15 requirejs@2.3.8 >/dev/null)
for t in "$tmp"/*.tgz; do mkdir -p "$tmp/x/$(basename "$t" .tgz)"; tar -xzf "$t" -C "$tmp/x/$(basename "$t" .tgz)"; done
mj="$tmp/x/mathjax-3.2.2/package/es5"; hm="$tmp/x/jupyter-widgets-html-manager-1.0.15/package/dist"
mkdir -p _vendor/mathjax/output/chtml/fonts _vendor/mathjax/input/tex _vendor/widgets
cp "$mj/tex-mml-chtml.js" _vendor/mathjax/
cp -r "$mj/output/chtml/fonts/woff-v2" _vendor/mathjax/output/chtml/fonts/
cp -r "$mj/input/tex/extensions" _vendor/mathjax/input/tex/
cp "$hm/embed-amd.js" _vendor/widgets/
cp "$tmp/x/requirejs-2.3.8/package/require.js" _vendor/widgets/
# embed-amd.js asks for its icon fonts relative to the page (pages live in the root and in nbs/)
for d in _extra _extra/nbs; do
  mkdir -p "$d/@jupyter-widgets/html-manager/dist"
  cp "$hm"/*.woff* "$hm"/*.ttf "$hm"/*.eot "$hm"/*.svg "$d/@jupyter-widgets/html-manager/dist/" 2>/dev/null || true
done
touch _vendor/.complete
echo "vendored web assets: $(du -sh _vendor | cut -f1) in _vendor/"
