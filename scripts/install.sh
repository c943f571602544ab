# Sourced by scripts/run and scripts/test: a virtualenv in .venv with the pinned requirements, reinstalled only when a
# requirements file changes (a stamp holds their hash), so a second start is quick.
install_python() {
  local requirements=$1 stamp=.venv/.installed-$1 wanted
  [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
  wanted=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    .venv/bin/pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$wanted" >"$stamp"
  fi
  mkdir -p var
}

# The engine's hot modules compiled to C by Cython (mappings/engine/accelerated.py), built only for sources that changed.
# Without a C compiler the studio runs the same modules as plain Python, slower.
install_accelerated() {
  .venv/bin/python scripts/build_accelerated.py ||
    echo "note: the engine's modules could not be compiled (see above); FHIR Studio runs them as plain Python" >&2
}

# The browser editor's assets: npm packages pinned by package-lock.json (reinstalled when the lock changes), bundled
# by esbuild into static/build/ on every call (it takes well under a second).
install_frontend() {
  local stamp=node_modules/.installed wanted
  wanted=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    npm ci --no-audit --no-fund --loglevel=error
    echo "$wanted" >"$stamp"
  fi
  npm run --silent build
}

# Independent FHIR clients the tests drive as a user would (smart-fetch for Bulk Data), in their own virtualenv: their
# pinned dependencies conflict with the studio's. Reinstalled only when clients/requirements.txt changes.
install_clients() {
  local stamp=.venv-clients/.installed wanted
  [ -x .venv-clients/bin/python ] || "${PYTHON:-python3}" -m venv .venv-clients
  wanted=$(sha256sum clients/requirements.txt | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    .venv-clients/bin/pip install --quiet --disable-pip-version-check -r clients/requirements.txt
    echo "$wanted" >"$stamp"
  fi
}
