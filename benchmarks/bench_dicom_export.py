"""Files per second of `linop-export dicom` (SC image + SEG per sample) on phantom synthetic sets.

    python benchmarks/bench_dicom_export.py                    # small and full-size phantom mammograms
    python benchmarks/bench_dicom_export.py --sizes full --samples 8 --repeats 3

For each phantom size a set is generated once (biharmonic engine), then exported ``--repeats`` times into
fresh folders. Files per second count the DICOM files written (two per sample) over the writing loop: reading
the sample from the set, building the image and the SEG, writing each to a temporary file, fsync and rename.
The load average is printed with each row, since the numbers depend on what else runs on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path


def _make_set(work: Path, size: str, samples: int) -> Path:
    from linop_core.cli.export import main as export_main
    from linop_core.phantom import make_mammo_dataset

    root = work / f"phantom-{size}"
    make_mammo_dataset(root, max(2, samples // 4), 0, size)
    out = work / f"set-{size}.h5"
    argv = ["generate", str(root), str(out), "--n", str(samples), "--engine", "biharmonic", "--resolution", "128",
            "--no-progress"]  # fmt: skip
    if export_main(argv) != 0:
        raise SystemExit(f"could not generate the {size} set")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="small,full", help="phantom sizes, comma-separated")
    parser.add_argument("--samples", type=int, default=12, help="samples per set")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", help="keep the sets and exports here (default: a temporary folder)")
    args = parser.parse_args()

    from linop_core.dicom_export import export_dicom

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for size in args.sizes.split(","):
            set_path = _make_set(work, size, args.samples)
            for repeat in range(args.repeats):
                result = export_dicom(set_path, work / f"dicom-{size}-{repeat}")
                image = result.image_files[0]
                row = {
                    "size": size,
                    "samples": result.n_samples,
                    "files": 2 * result.n_written,
                    "seconds": round(result.seconds, 3),
                    "files_per_second": round(result.files_per_second, 1),
                    "image_mib": round(image.stat().st_size / 2**20, 2),
                    "load_average": [round(v, 2) for v in os.getloadavg()],
                }
                print(json.dumps(row))


if __name__ == "__main__":
    main()
