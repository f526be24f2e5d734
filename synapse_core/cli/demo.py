"""``demo``: write the deterministic demo dataset."""

from __future__ import annotations

from synapse_core.data.demo import PLANTED_TYPES, write_demo_dataset

NAME = "demo"
HELP = "write a deterministic EM-like demo dataset with planted synapse types"


def add_arguments(p) -> None:
    p.add_argument("--out", required=True, help="folder to write (raw/, seg/, mask/, excel/, truth.csv)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same bytes")
    p.add_argument("--bboxes", type=int, default=4, help="number of bounding boxes, 1-4 (default 4, 15 synapses each)")


def run(args) -> int:
    out = write_demo_dataset(args.out, seed=args.seed, n_bboxes=args.bboxes)
    types = ", ".join(t.name for t in PLANTED_TYPES)
    print(f"Demo dataset written to {out} (planted types: {types}; truth in {out / 'truth.csv'})")
    return 0
