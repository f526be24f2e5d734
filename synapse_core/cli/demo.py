"""``demo``: write the deterministic demo dataset.

Example::

    python -m synapse_core demo --out demo_data --seed 3 --n-synapses 300

writes 20 bboxes of 15 synapses (4 planted types, random orientations and presynaptic sides; truth
in ``demo_data/truth.csv``).
"""

from __future__ import annotations

NAME = "demo"
HELP = "write a deterministic EM-like demo dataset with planted synapse types"


def add_arguments(p) -> None:
    from synapse_core.data.demo import (  # only when `demo` is asked for
        MAX_SYNAPSES_PER_BBOX,
        SYNAPSES_PER_BBOX,
    )

    p.add_argument("--out", required=True, help="folder to write (raw/, seg/, mask/, excel/, truth.csv)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same bytes")
    p.add_argument("--n-synapses", "--n_synapses", dest="n_synapses", type=int, default=None,
                   help=f"number of synapses (default 60, or {SYNAPSES_PER_BBOX} per bbox with --bboxes); "
                        f"{SYNAPSES_PER_BBOX} per bbox unless --bboxes is given, at most {MAX_SYNAPSES_PER_BBOX} "
                        "per bbox")
    p.add_argument("--bboxes", type=int, default=None,
                   help=f"number of bounding boxes (default 4, or enough for --n-synapses at {SYNAPSES_PER_BBOX} each)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes rendering bboxes in parallel (default: 1 up to 4 bboxes, else all cores); "
                        "the output does not depend on it")


def run(args) -> int:
    import time

    from synapse_core.data.demo import PLANTED_TYPES, write_demo_dataset

    t = time.perf_counter()
    out = write_demo_dataset(args.out, seed=args.seed, n_bboxes=args.bboxes, n_synapses=args.n_synapses,
                             workers=args.workers)
    types = ", ".join(t.name for t in PLANTED_TYPES)
    print(f"Demo dataset written to {out} in {time.perf_counter() - t:.0f} s (planted types: {types}; "
          f"truth in {out / 'truth.csv'})")
    return 0
