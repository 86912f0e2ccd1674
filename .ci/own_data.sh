#!/usr/bin/env bash
# CI: the README's commands for one's own measurements (its third ```sh block), run exactly as written, in a
# scratch folder that holds what they expect: references/ (six 16-bit grayscale images from scikit-image),
# cells/ (their measurements through a widefield PSF with read noise) and lowres/ (the same, down-sampled by 2).
# The measurements' degradation.yaml is removed, as a microscope would not write one: the noise level is estimated.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
block() {  # the body of the README's n-th ```sh block
  awk -v want="$1" '/^```sh$/ {n++; inside = (n == want); next} /^```$/ {inside = 0; next} inside {print}' README.md
}
commands=$(block 3)
[ -n "$commands" ] || { echo "README lacks its own-data commands" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$root/.venv/bin/activate"
cd "$work"
python - <<'PY'
from pathlib import Path

import numpy as np
import skimage.data
import tifffile

references = Path("references")
references.mkdir()
for name in ("cell", "coins", "page", "moon", "text", "camera"):
    image = getattr(skimage.data, name)()[:160, :160].astype(np.uint16) * 100 + 500  # counts over an offset
    tifffile.imwrite(references / f"{name}.tif", image)
PY
sei psf diffraction truth.npy --wavelength 520 --pixel-size 65 --na 1.4 >/dev/null
sei degrade references/ cells/ --kernel truth.npy --noise-level 2 --quiet
sei degrade references/ lowres/ --task sr --sr-factor 2 --kernel truth.npy --noise-level 2 --quiet
rm cells/degradation.yaml lowres/degradation.yaml
echo "+ $commands"
bash -euo pipefail -c "$commands"
