#!/usr/bin/env bash
# Writes the generated reference pages under docs/reference/ from the code they describe: the connection catalog,
# the config schema and the command line's help. Run it after changing any of them; a test
# (tests/ResidualLab.Tests/Docs/ReferencePagesTests.cs) fails while a page differs from what the code generates.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build src/ResidualLab.Cli -c Release --nologo -v quiet
reslab=src/ResidualLab.Cli/bin/Release/net10.0/linux-x64/reslab
out=docs/reference
mkdir -p "$out"
"$reslab" list connections --format markdown > "$out/schemes.md"
"$reslab" list config --format markdown > "$out/config.md"
"$reslab" list cli --format markdown > "$out/cli.md"
echo "wrote $out/schemes.md, $out/config.md, $out/cli.md"
