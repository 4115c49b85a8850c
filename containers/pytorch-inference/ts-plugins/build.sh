#!/usr/bin/env bash
# Compile the TorchServe frontend plugins (src/, META-INF/services/) into OUT_DIR/monai-ts-plugins.jar, against
# the model-server.jar of the TorchServe that `python` imports (the servingsdk is inside that jar). The image
# build runs this (containers/pytorch-inference/Dockerfile), and so does `make serve` (local_serve.py); the
# folder is what `plugins_path` names in TorchServe's config.properties.
# Usage: build.sh OUT_DIR [PYTHON]
set -euo pipefail

out_dir="${1:?usage: build.sh OUT_DIR [PYTHON]}"
python="${2:-python}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

for tool in javac jar; do
  if ! command -v "${tool}" > /dev/null; then
    echo "build.sh: ${tool} not found: the TorchServe plugins need a JDK (17 is what TorchServe 0.12 runs on)" >&2
    exit 1
  fi
done
sdk_jar="$("${python}" -c 'import os, ts; print(os.path.join(os.path.dirname(ts.__file__), "frontend", "model-server.jar"))')"
if [ ! -f "${sdk_jar}" ]; then
  echo "build.sh: ${sdk_jar} not found: ${python} must import the TorchServe the plugins run in" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
mkdir -p "${work}/classes/META-INF"
# --release 17: the class files the JDK 17 runtime of TorchServe 0.12 loads, whatever javac builds them.
find "${here}/src" -name '*.java' -print0 | xargs -0 javac --release 17 -Xlint:all,-processing -Werror -proc:none -cp "${sdk_jar}" -d "${work}/classes"
cp -R "${here}/META-INF/services" "${work}/classes/META-INF/"
mkdir -p "${out_dir}"
jar --create --file "${work}/monai-ts-plugins.jar" -C "${work}/classes" .
mv "${work}/monai-ts-plugins.jar" "${out_dir}/monai-ts-plugins.jar"
