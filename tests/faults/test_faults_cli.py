"""Command-line faults: refused input exits 2 with one ``error:`` line naming the flag or file, before any
work; Ctrl-C ends with one line (exit 130); a killed ``cluster`` never mixes a new run's files with the old."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from faultlib import REPO, cli, write_small_dataset

from synapse_core.cli.parser import check_writable, main
from synapse_core.data.outputs import final_paths, output_set, previous_set


@pytest.fixture
def data(tmp_path):
    return write_small_dataset(tmp_path / "DATA")


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("flag, value, match", [
    ("--size", "100000", "--size=100000 must be less than or equal to 512"),
    ("--size", "1", "--size=1 must be greater than or equal to 2"),
    ("--alpha", "nan", "--alpha"),
    ("--presynapse-radius", "99999", "--presynapse-radius=99999 must be less than or equal to 512"),
    ("--segmentation-type", "42", "--segmentation-type"),
])
def test_an_absurd_crop_parameter_is_refused_naming_the_flag(tmp_path, data, capsys, flag, value, match):
    code, _, err = _run(capsys, "crop", "--data", str(data), "--cache-dir", str(tmp_path / "c"),
                        "--synapse", "bbox1/syn_1", flag, value, "--out", str(tmp_path / "x.npy"))
    assert code == 2 and err.startswith("error: ") and match in err and "Traceback" not in err
    assert not (tmp_path / "x.npy").exists()


@pytest.mark.parametrize("command, out", [
    ("crop", "/proc/crop.npy"), ("gif", "/proc/gifs"), ("extract", "/proc/features.csv"),
])
def test_an_unwritable_output_is_refused_before_any_work(tmp_path, data, capsys, command, out):
    extra = ["--synapse", "bbox1/syn_1"] if command == "crop" else []
    code, _, err = _run(capsys, command, "--data", str(data), "--cache-dir", str(tmp_path / "c"), *extra, "--out", out)
    assert code == 2 and f"--out {out}: cannot write in /proc" in err
    assert not (tmp_path / "c").exists()  # the dataset was never opened: no conversion, no cache


def test_an_unwritable_cluster_output_is_refused_before_reading_features(tmp_path, capsys):
    (tmp_path / "f.csv").write_text("bbox_name,Var1,feat_1\n")
    code, _, err = _run(capsys, "cluster", "--features", str(tmp_path / "f.csv"), "--out", "/proc/c/clusters.csv")
    assert code == 2 and "--out /proc/c/clusters.csv: cannot write in /proc" in err


def test_a_file_in_place_of_the_output_folder_is_named(tmp_path):
    (tmp_path / "gifs").write_text("x")
    with pytest.raises(ValueError, match="a file of that name exists; give a folder"):
        check_writable(str(tmp_path / "gifs"), folder=True)


def test_an_output_file_name_that_is_a_folder_is_named(tmp_path):
    with pytest.raises(ValueError, match="is a folder; give a file name inside it"):
        check_writable(str(tmp_path), folder=False)


def test_an_unknown_synapse_is_one_line(tmp_path, data, capsys):
    code, _, err = _run(capsys, "crop", "--data", str(data), "--cache-dir", str(tmp_path / "c"),
                        "--synapse", "bbox1/nope", "--out", str(tmp_path / "x.npy"))
    assert code == 2 and "synapse bbox1/nope is not in" in err and err.count("\n") == 1


def test_a_missing_data_folder_is_one_line(tmp_path, capsys):
    code, _, err = _run(capsys, "gif", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "g"))
    assert code == 2 and "nowhere: data folder not found" in err and err.count("\n") == 1


def test_a_missing_features_file_is_one_line(tmp_path, capsys):
    code, _, err = _run(capsys, "cluster", "--features", str(tmp_path / "f.csv"), "--out", str(tmp_path / "c.csv"))
    assert code == 2 and "f.csv" in err and "Traceback" not in err


#: ``python -m synapse_core ...`` with Ctrl-C handled as when started from a terminal: a test run started in the
#: background by a non-interactive shell (``cmd &``, e.g. under nohup) ignores SIGINT, and a child inherits that.
_AS_FROM_A_TERMINAL = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                       "sys.argv[0] = 'synapse_core'; runpy.run_module('synapse_core', run_name='__main__')")


@pytest.mark.slow
def test_ctrl_c_ends_with_one_line_and_exit_130(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _AS_FROM_A_TERMINAL, "demo", "--out", str(tmp_path / "DEMO")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # past the imports, inside the work: the first file of the dataset is written (a fixed sleep could land in a
    # library's import on a busy machine, where some imports swallow KeyboardInterrupt)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and not any(p.is_file() for p in tmp_path.rglob("*")):
        time.sleep(0.05)
    assert proc.poll() is None, "the demo ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().startswith("interrupted") and "Traceback" not in err and len(err.strip().splitlines()) == 1


def _old_set(folder):
    folder.mkdir(parents=True, exist_ok=True)
    with output_set(folder / "clusters.csv") as staged:
        for name in ("clusters.csv", "clusters_summary.csv", "clusters_map.png"):
            (staged.parent / name).write_text("old")
    return {p.name: p.read_text() for p in folder.iterdir() if not p.name.startswith(".")}


def test_a_failing_run_leaves_the_previous_set_untouched(tmp_path):
    before = _old_set(tmp_path / "out")
    with pytest.raises(RuntimeError), output_set(tmp_path / "out" / "clusters.csv") as staged:
        staged.write_text("new")
        (staged.parent / "clusters_summary.csv").write_text("new")
        raise RuntimeError("figure writer failed")
    after = {p.name: p.read_text() for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")}
    assert after == before


def test_a_killed_run_leaves_the_previous_set_and_the_next_run_clears_its_staging(tmp_path):
    before = _old_set(tmp_path / "out")
    code = ("import os, sys; from synapse_core.data.outputs import output_set\n"
            f"with output_set({str(tmp_path / 'out' / 'clusters.csv')!r}) as s:\n"
            "    s.write_text('new'); (s.parent / 'clusters_summary.csv').write_text('new'); os._exit(9)\n")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False)
    after = {p.name: p.read_text() for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")}
    assert after == before
    with output_set(tmp_path / "out" / "clusters.csv") as staged:
        staged.write_text("newer")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [".clusters.outputs.json", "clusters.csv"]  # old side files of the set and the staging are gone
    assert previous_set(tmp_path / "out" / "clusters.csv") == ["clusters.csv"]


def test_reported_paths_are_the_final_ones_for_a_relative_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with output_set("out/c.csv") as staged:  # relative, as typed; a writer may report absolute paths
        paths = {"table": str(staged), "summary": str((staged.parent / "c_summary.csv").absolute())}
    assert final_paths(paths, staged, "out/c.csv") == {"table": "out/c.csv", "summary": "out/c_summary.csv"}


@pytest.mark.slow
def test_cluster_cli_writes_its_files_as_one_recorded_set(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"bbox_name": ["b"] * 30, "Var1": [f"s{i}" for i in range(30)],
                       **{f"feat_{j}": rng.normal(size=30) + (np.arange(30) >= 15) * 4 for j in range(1, 5)}})
    df.to_csv(tmp_path / "f.csv", index=False)
    code, out, err = _run(capsys, "cluster", "--features", str(tmp_path / "f.csv"), "--out",
                          str(tmp_path / "out" / "c.csv"), "--k", "2", "--projection", "none", "--no-figures")
    assert code == 0, err
    recorded = json.loads((tmp_path / "out" / ".c.outputs.json").read_text())["files"]
    on_disk = sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith("."))
    assert recorded == on_disk and "c.csv" in on_disk and "c_summary.csv" in on_disk
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".staging-")]
    assert str(tmp_path / "out" / "c.csv") in out  # reported paths are the final ones


@pytest.mark.slow
def test_a_roots_file_that_is_a_folder_is_one_line_naming_it(tmp_path):
    code, _, err = cli("validate", "--data", str(tmp_path), env={"SYNAPSE_DATA_ROOTS_FILE": str(tmp_path)})
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert os.path.basename(str(tmp_path)) in err
